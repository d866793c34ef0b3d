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
 * - only a key created with the AUDITOR scope, by an auditor, reads other accounts; a session learns which
 *   scopes it may give a new key (`Account.availableApiKeyScopes`).
 * Wallet signatures are verified locally, so no chain is needed (RPC_URL is a closed port).
 */
import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import type { PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/env.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData, subscribe } from './support/graphql.ts';
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
  const config = testApiConfig({
    HOST: '127.0.0.1',
    PUBLIC_ORIGIN: ORIGIN,
    DATABASE_URL: database.url,
    // A POST without Authorization would be a call paid per request (x402.test.ts): keyed calls only here.
    X402: 'off',
    AUDITOR_ADDRESSES: auditor.address,
    RATE_LIMIT_IP_PER_MINUTE: '10000',
    RATE_LIMIT_TOKENS_PER_MINUTE: String(TOKENS_PER_MINUTE),
    // No background settlement loop nor solvency snapshots: the SQL counter sees only what a request causes.
    METERING_RETRY_MS: '600000',
    SOLVENCY_SNAPSHOT_MS: '0',
    ...overrides,
  });
  // In-memory limits per instance; the prefix keeps them apart anyway.
  return { ...config, rateLimits: { ...config.rateLimits, keyPrefix: `cm:rl:test:${randomUUID()}` } };
}

beforeAll(async () => {
  database = await createTestDatabase('cm_forgery');
  // Nor any other background worker's polls (webhook delivery, auto top-up rounds).
  api = await startApi(env({}), { crediting: false, webhookDelivery: false, autoTopUpIntervalMs: 3_600_000 });
  untrusted = await startApi(env({ RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT) }), { crediting: false });
  trusted = await startApi(
    env({ RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT), TRUSTED_PROXIES: '127.0.0.1/32, ::1/128' }),
    { crediting: false },
  );
  sqlCount = await countSql(api);
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

const cursor = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

describe('bad input is BAD_USER_INPUT with a message, never a masked 500', () => {
  interface Case {
    document: string;
    variables?: Record<string, unknown>;
    /** The caller: a user's session (default) or the auditor's. */
    as?: 'user' | 'auditor';
  }

  it('for every scalar, cursor and page size out of range', async () => {
    const user = await signInWithCookie(newWallet());
    const auditorSession = await signInWithCookie(auditor);
    const uuid = randomUUID();
    const createKey = (input: Record<string, unknown>): Case => ({
      document: 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
      variables: { input: { name: 'bad', ...input } },
    });
    const page = (field: string, args: string): Case => ({
      document: `{ me { ${field}(${args}) { edges { cursor } } } }`,
    });
    const complete = (input: Record<string, unknown>): Case => ({
      document: 'mutation($input: CompletionInput!) { createCompletion(input: $input) { id } }',
      variables: {
        input: { model: 'chainmeter-dev', messages: [{ role: 'user', content: 'hi' }], ...input },
      },
    });
    const cases: Record<string, Case> = {
      // 2^63 micro-USD = 9,223,372,036,854,775.808 credits: one micro-USD more than a bigint column holds.
      'spendLimit 2^63 micro-USD': createKey({ spendLimit: '9223372036854775.808' }),
      'spendLimit 10^23 credits': createKey({ spendLimit: '99999999999999999999999' }),
      'spendLimit below -(2^63 - 1)': createKey({ spendLimit: '-9223372036854775.808' }),
      'expiresAt February 31st': createKey({ expiresAt: '2099-02-31T00:00:00Z' }),
      'expiresAt without an offset': createKey({ expiresAt: '2099-01-01T00:00:00' }),
      'expiresAt year 0': createKey({ expiresAt: '0000-01-01T00:00:00Z' }),
      'expiresAt six-digit year': createKey({ expiresAt: '+275760-09-13T00:00:00Z' }),
      'usage filter from year 0': {
        document: '{ me { usage(filter: { from: "0000-12-31T00:00:00Z" }) { edges { cursor } } } }',
      },
      'usageSummary to 24:00 of day 32': {
        document:
          '{ me { usageSummary(from: "2026-01-01T00:00:00Z", to: "2026-01-32T00:00:00Z", groupBy: DAY) { key } } }',
      },
      'ledger first 101': page('ledger', 'first: 101'),
      'ledger first -1': page('ledger', 'first: -1'),
      'usage first 2^31 - 1': page('usage', 'first: 2147483647'),
      // seq is an integer column: 9,999,999,999 > 2,147,483,647.
      'ledger cursor past int4': page('ledger', `after: "${cursor('ledger:9999999999')}"`),
      'ledger cursor negative': page('ledger', `after: "${cursor('ledger:-5')}"`),
      'ledger cursor not base64': page('ledger', 'after: "%%%"'),
      // block_number is a bigint column: 10^20 > 2^63 - 1.
      'deposit cursor past int8': page(
        'deposits',
        `after: "${cursor(`deposit:100000000000000000000:0:${uuid}`)}"`,
      ),
      'deposit cursor log index past int4': page(
        'deposits',
        `after: "${cursor(`deposit:1:9999999999:${uuid}`)}"`,
      ),
      'deposit cursor id not a uuid': page('deposits', `after: "${cursor('deposit:1:0:not-a-uuid')}"`),
      'deposit cursor of another kind': page('deposits', `after: "${cursor('ledger:5')}"`),
      // -8,640,000,000,000,000 ms is a valid JS date in the year -271821: no database holds it.
      'usage cursor year -271821': page('usage', `after: "${cursor(`usage:-8640000000000000:${uuid}`)}"`),
      'usage cursor id not a uuid': page('usage', `after: "${cursor('usage:0:x')}"`),
      'audit entry cursor past int4': {
        document: `{ audit { ledgerEntries(after: "${cursor(`audit-entry:${uuid}:9999999999`)}") { edges { cursor } } } }`,
        as: 'auditor',
      },
      'audit accounts first 10^6': {
        document: '{ audit { accounts(first: 1000000) { edges { cursor } } } }',
        as: 'auditor',
      },
      'maxTokens 0': complete({ maxTokens: 0 }),
      'maxTokens -1': complete({ maxTokens: -1 }),
      'maxTokens 2^31 - 1': complete({ maxTokens: 2147483647 }),
      'temperature -1': complete({ temperature: -1 }),
      'temperature 1e308': complete({ temperature: 1e308 }),
      'accountProof of a short address': { document: '{ accountProof(walletAddress: "0x12") { json } }' },
      // PostgreSQL text cannot hold a NUL character.
      'key name with a NUL': createKey({ name: 'a\u0000b' }),
      'usage filter model with a NUL': {
        document: '{ me { usage(filter: { model: "a\\u0000b" }) { edges { cursor } } } }',
      },
      'usage filter apiKeyId not an id': {
        document: '{ me { usage(filter: { apiKeyId: "x" }) { edges { cursor } } } }',
      },
      'completion model with a NUL': complete({ model: 'chainmeter-dev\u0000' }),
      'siweChallenge on chain -1': {
        document: `mutation { siweChallenge(address: "${newWallet().address}", chainId: -1) }`,
      },
    };
    const failures: string[] = [];
    for (const [name, { document, variables, as }] of Object.entries(cases)) {
      const token = as === 'auditor' ? auditorSession.token : user.token;
      const result = await gql(api.url, document, variables, token);
      const error = result.errors?.[0];
      const ok =
        result.status < 500 &&
        error?.extensions?.code === 'BAD_USER_INPUT' &&
        !/Unexpected error/.test(error.message) &&
        error.message.length > 10;
      if (!ok) failures.push(`${name}: ${result.status} ${JSON.stringify(result.errors ?? result.data)}`);
    }
    expect(failures).toEqual([]);
    // None of the refused createApiKey calls made a key.
    expect(await keyNames(user.token)).toEqual([]);
  });

  it("REST: the usage export's from and to, the same way (400, never a broken stream)", async () => {
    const { token } = await signInWithCookie(newWallet());
    for (const from of ['-271821-04-20T00:00:00Z', '2026-02-31', '2026-11-01T00:00:00', 'yesterday']) {
      const answer = await send(`${api.url}/v1/usage/export?format=json&from=${encodeURIComponent(from)}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(answer.status, `${from}: ${answer.text}`).toBe(400);
      expect(answer.text).toMatch(/ISO-8601/);
    }
    for (const from of ['2026-11-01', '2026-11-01T00:00:00+01:00', '0001-01-01T00:00:00Z']) {
      const answer = await send(`${api.url}/v1/usage/export?format=json&from=${encodeURIComponent(from)}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(answer.json, from).toEqual([]);
    }
  });

  it('REST: a model id with a NUL character is a 400, not a failed usage write', async () => {
    const { token } = await signInWithCookie(newWallet());
    const answer = await send(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chainmeter-dev\u0000', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(answer.status, answer.text).toBe(400);
    expect(answer.text).toMatch(/'model' is required/);
  });

  it('accepts the extremes that do fit', async () => {
    const { token } = await signInWithCookie(newWallet());
    // 2^63 - 1 micro-USD, the largest bigint, is 9,223,372,036,854,775.807 credits.
    const { createApiKey } = await gqlData<{
      createApiKey: { apiKey: { spendLimit: string; expiresAt: string } };
    }>(
      api.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { spendLimit expiresAt } } }',
      {
        input: {
          name: 'max',
          spendLimit: '9223372036854775.807',
          expiresAt: '9999-12-31T23:59:59.999+00:00',
        },
      },
      token,
    );
    expect(createApiKey.apiKey).toEqual({
      spendLimit: '9223372036854775.807',
      expiresAt: '9999-12-31T23:59:59.999Z',
    });
    // An offset is read as such: 23:30 at -02:00 is 01:30 UTC on the next day.
    const summary = await gqlData<{ me: { usageSummary: unknown[] } }>(
      api.url,
      '{ me { usageSummary(from: "0001-01-01T00:00:00Z", to: "2026-12-31T23:30:00-02:00", groupBy: DAY) { key } } }',
      {},
      token,
    );
    expect(summary.me.usageSummary).toEqual([]);
  });
});

describe('the cost limit counts first: $n exactly like the literal', () => {
  const LEDGER_FIELDS =
    'edges { cursor node { id amount balanceAfter reason createdAt hash deposit { id chainId txHash logIndex blockNumber from amountToken credits status confirmations creditedAt } } } pageInfo { hasNextPage endCursor }';
  /** Twelve aliased `me { ledger(first: N) {...} }`: over the limit at N = 100 (security.test.ts, literal). */
  const costly = (first: string) =>
    Array.from({ length: 12 }, (_, i) => `m${i}: me { ledger(first: ${first}) { ${LEDGER_FIELDS} } }`).join(
      ' ',
    );

  it('refuses a huge or merely large $n before anything runs, with the literal message', async () => {
    const { token } = await signInWithCookie(newWallet());
    for (const n of [100, 2147483647]) {
      const literal = await gql(api.url, `{ ${costly(String(n))} }`, {}, token);
      const literalError = literal.errors?.[0];
      expect(literalError?.message).toMatch(/Query Cost limit of 25000 exceeded/);
      const before = sqlCount.count;
      const variable = await gql(api.url, `query($n: Int) { ${costly('$n')} }`, { n }, token);
      // Refused before authentication: no SQL at all.
      expect(sqlCount.count - before, `n = ${n}`).toBe(0);
      expect(variable.data ?? null, JSON.stringify(variable)).toBeNull();
      expect(variable.errors?.[0]?.message, `n = ${n}`).toBe(literalError?.message);
      expect(variable.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    // A default value counts too, with an empty or an absent variables object.
    const defaulted = await gql(api.url, `query($n: Int = 100) { ${costly('$n')} }`, {}, token);
    expect(defaulted.errors?.[0]?.message).toMatch(/Query Cost limit of 25000 exceeded/);
    const noVariables = await send(`${api.url}/graphql`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: `query($n: Int = 100) { ${costly('$n')} }` }),
    });
    expect(noVariables.json?.errors?.[0]?.message).toMatch(/Query Cost limit of 25000 exceeded/);
    // The same document with a small $n runs.
    const small = await gql(api.url, `query($n: Int) { ${costly('$n')} }`, { n: 1 }, token);
    expect(small.errors, JSON.stringify(small.errors)).toBeUndefined();
  });

  it('refuses it over graphql-ws too, before the operation runs', async () => {
    const { token } = await signInWithCookie(newWallet());
    const refused = await subscribe(api.url, `query($n: Int) { ${costly('$n')} }`, token, { n: 100 });
    await expect(refused.waitFor(() => true, 10_000)).rejects.toThrow(
      /Query Cost limit of 25000 exceeded.*BAD_USER_INPUT/,
    );
    expect(refused.events).toEqual([]);
    await refused.close();
  });
});

describe('X-Forwarded-For is believed only from a TRUSTED_PROXIES peer', () => {
  /** siweChallenge calls from this test's loopback socket, each claiming another client in X-Forwarded-For. */
  async function challengeCodes(instance: RunningApi, calls: number): Promise<(string | undefined)[]> {
    const codes: (string | undefined)[] = [];
    for (let i = 0; i < calls; i++) {
      const response = await fetch(`${instance.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `203.0.113.${i + 1}` },
        body: JSON.stringify({
          query: CHALLENGE,
          variables: { address: newWallet().address, chainId: CHAIN_ID },
        }),
      });
      const body = (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
      codes.push(body.errors?.[0]?.extensions?.code);
    }
    return codes;
  }

  it('unset: a spoofed X-Forwarded-For does not escape the per-IP limit', async () => {
    // IP_LIMIT (3) calls per minute from 127.0.0.1, whatever each one claims to be.
    expect(await challengeCodes(untrusted, IP_LIMIT + 2)).toEqual([
      undefined,
      undefined,
      undefined,
      'RATE_LIMITED',
      'RATE_LIMITED',
    ]);
  });

  it('with 127.0.0.1/32 trusted, each forwarded client has its own budget', async () => {
    expect(await challengeCodes(trusted, IP_LIMIT + 2)).toEqual(Array(IP_LIMIT + 2).fill(undefined));
  });

  it('validates TRUSTED_PROXIES and refuses the removed TRUSTED_PROXY_HOPS', () => {
    expect(env({ TRUSTED_PROXIES: '10.0.0.0/8, fd00::/8, 192.0.2.7' }).trustedProxies).toEqual([
      '10.0.0.0/8',
      'fd00::/8',
      '192.0.2.7',
    ]);
    expect(() => env({ TRUSTED_PROXIES: '10.0.0.0/33' })).toThrow(
      /TRUSTED_PROXIES: "10.0.0.0\/33" is not a CIDR/,
    );
    expect(() => env({ TRUSTED_PROXY_HOPS: '1' })).toThrow(ConfigError);
    expect(() => env({ TRUSTED_PROXY_HOPS: '1' })).toThrow(/TRUSTED_PROXY_HOPS: removed.*TRUSTED_PROXIES/);
  });
});

describe('a prompt larger than the per-minute token budget', () => {
  // 10,000 bytes of prompt bound at least 2,500 tokens (4 bytes a token at best), over TOKENS_PER_MINUTE (2,000).
  const HUGE = 'word '.repeat(2_000);

  it('is a 400 in OpenAI shape on REST, every time (not a 429 that never clears)', async () => {
    const { token } = await signInWithCookie(newWallet());
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await send(`${api.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'chainmeter-dev', messages: [{ role: 'user', content: HUGE }] }),
      });
      expect(answer.status, answer.text).toBe(400);
      expect(answer.headers.get('retry-after')).toBeNull();
      const error = (answer.json as unknown as { error: Record<string, unknown> }).error;
      expect(error.type).toBe('invalid_request_error');
      expect(error.param).toBe('messages');
      expect(error.message).toMatch(/more than the 2000 tokens per minute .* could never pass/);
    }
  });

  it('is BAD_USER_INPUT on GraphQL', async () => {
    const { token } = await signInWithCookie(newWallet());
    const result = await gql(
      api.url,
      'mutation($input: CompletionInput!) { createCompletion(input: $input) { id } }',
      { input: { model: 'chainmeter-dev', messages: [{ role: 'user', content: HUGE }] } },
      token,
    );
    expect(result.errors?.[0]?.extensions?.code, JSON.stringify(result.errors)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toMatch(/tokens per minute/);
  });
});

describe('only a key created with the AUDITOR scope reads other accounts', () => {
  const AUDIT_READ = '{ audit { accounts(first: 1) { edges { cursor } } } }';
  const CREATE =
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }';

  it("an auditor's ordinary key reads its own account only; an AUDITOR key reads every account", async () => {
    const { token } = await signInWithCookie(auditor);
    // The audit query itself works for the auditor's session.
    expect((await gql(api.url, AUDIT_READ, {}, token)).errors).toBeUndefined();
    const plain = await gqlData<{ createApiKey: { secret: string } }>(
      api.url,
      CREATE,
      { input: { name: 'integration' } },
      token,
    );
    const refused = await gql(api.url, AUDIT_READ, {}, plain.createApiKey.secret);
    expect(refused.errors?.[0]?.extensions?.code, JSON.stringify(refused)).toBe('FORBIDDEN');
    const scoped = await gqlData<{ createApiKey: { secret: string } }>(
      api.url,
      CREATE,
      { input: { name: 'audit', scope: 'AUDITOR' } },
      token,
    );
    expect((await gql(api.url, AUDIT_READ, {}, scoped.createApiKey.secret)).errors).toBeUndefined();
    const listed = await gqlData<{ me: { apiKeys: { name: string; scope: string }[] } }>(
      api.url,
      '{ me { apiKeys { name scope } } }',
      {},
      token,
    );
    expect(listed.me.apiKeys.map((key) => `${key.name}:${key.scope}`).sort()).toEqual([
      'audit:AUDITOR',
      'integration:ACCOUNT',
    ]);
  });

  it('tells each caller the scopes it may give a new key: AUDITOR only to an auditor session', async () => {
    const SCOPES = '{ me { availableApiKeyScopes } }';
    const scopes = async (credential: string) =>
      (await gqlData<{ me: { availableApiKeyScopes: string[] } }>(api.url, SCOPES, {}, credential)).me
        .availableApiKeyScopes;
    const { token } = await signInWithCookie(auditor);
    expect(await scopes(token)).toEqual(['ACCOUNT', 'AUDITOR']);
    expect(await scopes((await signInWithCookie(newWallet())).token)).toEqual(['ACCOUNT']);
    // A key makes no keys, whatever its own scope.
    const scoped = await gqlData<{ createApiKey: { secret: string } }>(
      api.url,
      CREATE,
      { input: { name: 'audit-scopes', scope: 'AUDITOR' } },
      token,
    );
    expect(await scopes(scoped.createApiKey.secret)).toEqual([]);
  });

  it('refuses the AUDITOR scope to a wallet without the role', async () => {
    const { token } = await signInWithCookie(newWallet());
    const result = await gql(api.url, CREATE, { input: { name: 'sneaky', scope: 'AUDITOR' } }, token);
    expect(result.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(result.errors?.[0]?.message).toMatch(/auditor role/);
    expect(await keyNames(token)).toEqual([]);
  });
});
