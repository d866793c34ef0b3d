/**
 * Request forgery and bad input (issue 9, items 6 to 11; threat model: docs/security.md), over real HTTP
 * against API instances started in-process on one fresh PostgreSQL database:
 * - CSRF: the browser request shapes another site can send without a preflight (a urlencoded form,
 *   multipart, text/plain, a GET, an SSE GET) carrying the session cookie, each refused with nothing done;
 *   JSON with the cookie, the web client's GET with the CSRF header, and Bearer in any shape still work;
 * - every scalar, cursor and `first` range-checked: BAD_USER_INPUT with a message, never a masked 500;
 * - the cost limit counts `first: $n` like the literal;
 * - X-Forwarded-For believed only from TRUSTED_PROXIES;
 * - a prompt larger than the per-minute token budget: 400 / BAD_USER_INPUT, not 429 forever;
 * - only a key created with the AUDITOR scope, by an auditor, reads other accounts.
 * Wallet signatures are verified locally, so no chain is needed (RPC_URL is a closed port).
 */
import { randomUUID } from 'node:crypto';
import { getAddress, type PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../scripts/src/devnet/postgres.ts';
import { ConfigError, loadConfig } from '../src/env.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { gql, gqlData } from './support/graphql.ts';
import { countSql } from './support/sql-counter.ts';

const CHAIN_ID = 31337;
const ORIGIN = 'http://localhost:4000';
const IP_LIMIT = 3;
/** Tokens per minute of the main instance: a prompt over it can never pass. */
const TOKENS_PER_MINUTE = 2_000;

let database: TestDatabase;
let api: RunningApi;
let untrusted: RunningApi;
let trusted: RunningApi;
let sqlCount: { count: number };
const auditor = privateKeyToAccount(generatePrivateKey());

function env(overrides: Record<string, string>) {
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    PUBLIC_ORIGIN: ORIGIN,
    // Never called: wallet signatures are verified locally. A closed port.
    RPC_URL: 'http://127.0.0.1:9',
    CHAIN_ID: String(CHAIN_ID),
    USDC_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
    DATABASE_URL: database.url,
    LOG_LEVEL: 'silent',
    AUDITOR_ADDRESSES: auditor.address,
    RATE_LIMIT_IP_PER_MINUTE: '10000',
    RATE_LIMIT_TOKENS_PER_MINUTE: String(TOKENS_PER_MINUTE),
    // No background settlement loop: the SQL counter sees only what a request causes.
    METERING_RETRY_MS: '600000',
    ...overrides,
  });
  // In-memory limits per instance; the prefix keeps them apart anyway.
  return { ...config, rateLimits: { ...config.rateLimits, keyPrefix: `cm:rl:test:${randomUUID()}` } };
}

beforeAll(async () => {
  database = await createTestDatabase('cm_forgery');
  api = await startApi(env({}), { crediting: false });
  untrusted = await startApi(env({ RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT) }), { crediting: false });
  trusted = await startApi(
    env({ RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT), TRUSTED_PROXIES: '127.0.0.1/32, ::1/128' }),
    { crediting: false },
  );
  sqlCount = countSql(api);
}, 60_000);

afterAll(async () => {
  for (const instance of [api, untrusted, trusted]) await instance?.close();
  await database?.drop();
});

const newWallet = () => privateKeyToAccount(generatePrivateKey());
const CHALLENGE =
  'mutation($address: Address!, $chainId: Int!) { siweChallenge(address: $address, chainId: $chainId) }';
const SIGN_IN =
  'mutation($message: String!, $signature: String!) { signIn(message: $message, signature: $signature) { token } }';
const CREATE_KEY = 'mutation { createApiKey(input: { name: "forged" }) { secret } }';
const KEY_NAMES = '{ me { apiKeys { name } } }';

/** Signs in with a JSON POST (what the web client does) and returns the session token and its cookie. */
async function signInWithCookie(wallet: PrivateKeyAccount): Promise<{ token: string; cookie: string }> {
  const { siweChallenge } = await gqlData<{ siweChallenge: string }>(api.url, CHALLENGE, {
    address: wallet.address,
    chainId: CHAIN_ID,
  });
  const response = await fetch(`${api.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: SIGN_IN,
      variables: { message: siweChallenge, signature: await wallet.signMessage({ message: siweChallenge }) },
    }),
  });
  const body = (await response.json()) as { data: { signIn: { token: string } } };
  const cookie = (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  expect(cookie).toMatch(/^cm_session=cms_/);
  return { token: body.data.signIn.token, cookie };
}

async function keyNames(token: string): Promise<string[]> {
  const { me } = await gqlData<{ me: { apiKeys: { name: string }[] } }>(api.url, KEY_NAMES, {}, token);
  return me.apiKeys.map((key) => key.name);
}

interface Answer {
  status: number;
  text: string;
  json: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] } | null;
  headers: Headers;
}

async function send(url: string, init: RequestInit): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let json: Answer['json'] = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, text, json, headers: response.headers };
}

describe('CSRF: the session cookie acts only on requests a browser preflights', () => {
  /** What a page on another site can make a signed-in browser send to /graphql without a preflight. */
  function forgedShapes(cookie: string): Record<string, { url: string; init: RequestInit }> {
    const operations = JSON.stringify({ query: CREATE_KEY });
    const multipart = new FormData();
    multipart.append('operations', operations);
    multipart.append('map', '{}');
    return {
      // <form method="post" action=".../graphql"><input name="query" value="mutation {...}"></form>
      'urlencoded form': {
        url: `${api.url}/graphql`,
        init: {
          method: 'POST',
          headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ query: CREATE_KEY }).toString(),
        },
      },
      // <form enctype="multipart/form-data">: the GraphQL multipart request shape.
      multipart: {
        url: `${api.url}/graphql`,
        init: { method: 'POST', headers: { cookie }, body: multipart },
      },
      // fetch(url, { method: 'POST', mode: 'no-cors', credentials: 'include', body: '{"query":...}' })
      'text/plain': {
        url: `${api.url}/graphql`,
        init: {
          method: 'POST',
          headers: { cookie, 'content-type': 'text/plain;charset=UTF-8' },
          body: operations,
        },
      },
    };
  }

  it('refuses a form, multipart and text/plain POST carrying the cookie: no key is created', async () => {
    const { token, cookie } = await signInWithCookie(newWallet());
    for (const [shape, { url, init }] of Object.entries(forgedShapes(cookie))) {
      const answer = await send(url, init);
      expect(answer.json?.data ?? null, `${shape}: ${answer.text}`).toBeNull();
      if (shape === 'text/plain') {
        // yoga does not read a text/plain body at all (415), cookie or not.
        expect(answer.status, shape).toBe(415);
        continue;
      }
      expect(answer.status, shape).toBe(403);
      expect(answer.json?.errors?.[0]?.extensions?.code, shape).toBe('FORBIDDEN');
      expect(answer.json?.errors?.[0]?.message, shape).toMatch(/application\/json|x-graphql-yoga-csrf/);
    }
    expect(await keyNames(token)).toEqual([]);
  });

  it('refuses a GET carrying the cookie (a link, an image, an EventSource), queries and SSE alike', async () => {
    const { token, cookie } = await signInWithCookie(newWallet());
    await gqlData(api.url, 'mutation { createApiKey(input: { name: "mine" }) { secret } }', {}, token);
    const read = await send(`${api.url}/graphql?query=${encodeURIComponent(KEY_NAMES)}`, {
      headers: { cookie, accept: 'application/graphql-response+json' },
    });
    expect(read.status, read.text).toBe(403);
    expect(read.text).not.toContain('mine');
    // The GET-based SSE subscription (EventSource sends the cookie, and no custom header).
    const subscription = encodeURIComponent('subscription { balanceUpdated { balance } }');
    const sse = await fetch(`${api.url}/graphql?query=${subscription}`, {
      headers: { cookie, accept: 'text/event-stream' },
    });
    const first = await readFirstEvent(sse);
    expect(first, `status ${sse.status}`).toMatch(/FORBIDDEN/);
    // A mutation over GET never ran anyway (yoga allows only queries there); still nothing new.
    await send(`${api.url}/graphql?query=${encodeURIComponent(CREATE_KEY)}`, { headers: { cookie } });
    expect(await keyNames(token)).toEqual(['mine']);
  });

  it('never sets the session cookie on a request that was not preflighted (no login CSRF)', async () => {
    const wallet = newWallet();
    const { siweChallenge } = await gqlData<{ siweChallenge: string }>(api.url, CHALLENGE, {
      address: wallet.address,
      chainId: CHAIN_ID,
    });
    const signature = await wallet.signMessage({ message: siweChallenge });
    const form = await send(`${api.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        query: SIGN_IN,
        variables: JSON.stringify({ message: siweChallenge, signature }),
      }).toString(),
    });
    expect(form.headers.get('set-cookie')).toBeNull();
  });

  it('accepts the cookie on JSON and on the web client GET with the CSRF header; Bearer works in any shape', async () => {
    const { token, cookie } = await signInWithCookie(newWallet());
    const json = await send(`${api.url}/graphql`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'mutation { createApiKey(input: { name: "json" }) { secret } }' }),
    });
    expect(json.json?.errors, json.text).toBeUndefined();
    // urql's GET for queries, with the header every web client request carries.
    const get = await send(`${api.url}/graphql?query=${encodeURIComponent(KEY_NAMES)}`, {
      headers: { cookie, 'x-graphql-yoga-csrf': '1' },
    });
    expect(get.json, get.text).toEqual({ data: { me: { apiKeys: [{ name: 'json' }] } } });
    // A Bearer credential is never sent by a browser on its own: a form-shaped request with it is fine.
    const bearerForm = await send(`${api.url}/graphql`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        query: 'mutation { createApiKey(input: { name: "bearer form" }) { secret } }',
      }).toString(),
    });
    expect(bearerForm.json?.errors, bearerForm.text).toBeUndefined();
    expect((await keyNames(token)).sort()).toEqual(['bearer form', 'json']);
  });

  it('REST: a cookie never authorizes a completion; it only reads (models, the export link)', async () => {
    const { cookie } = await signInWithCookie(newWallet());
    const body = JSON.stringify({ model: 'chainmeter-dev', messages: [{ role: 'user', content: 'hi' }] });
    for (const contentType of ['application/json', 'text/plain', 'application/x-www-form-urlencoded']) {
      const answer = await send(`${api.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { cookie, 'content-type': contentType },
        body,
      });
      expect(answer.status, contentType).toBe(401);
    }
    const exported = await fetch(`${api.url}/v1/usage/export?format=json`, { headers: { cookie } });
    expect(exported.status).toBe(200);
    expect(await exported.json()).toEqual([]);
  });
});

/** The first SSE event's text (or the body, when the answer is not a stream), bounded in time. */
async function readFirstEvent(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const decoder = new TextDecoder();
  let text = '';
  const deadline = AbortSignal.timeout(10_000);
  try {
    while (!deadline.aborted && !text.includes('\n\n')) {
      const next = await Promise.race([
        reader.read(),
        new Promise<never>((_, reject) =>
          deadline.addEventListener('abort', () => reject(new Error('no event within 10 s'))),
        ),
      ]);
      if (next.done) break;
      text += decoder.decode(next.value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text;
}
