/**
 * The API under hostile input (issue 5, "Security"; the threat model is docs/security.md). Three API
 * instances on one fresh PostgreSQL database, started in-process, against a real anvil node:
 * - `dev`: NODE_ENV=test, plain-http origin: limits named in errors, introspection on, no CORS;
 * - `prod`: NODE_ENV=production on an https origin with one CORS origin allowed: limits hidden,
 *   suggestions blocked, introspection off, Secure cookie;
 * - `prodIntrospection`: production with GRAPHQL_INTROSPECTION=true.
 * "Nothing ran" is proved by counting the SQL statements each instance sends, on the ORM and on the raw
 * `pg` hot path alike (support/sql-counter.ts): a refused document costs none, not even the authentication
 * of its bearer token, a session or an API key.
 */
import { randomBytes } from 'node:crypto';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createSiweMessage, parseSiweMessage } from 'viem/siwe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/env.ts';
import { MAX_REQUEST_BODY_BYTES } from '../src/http/body-limit.ts';
import { GRAPHQL_LIMITS } from '../src/http/graphql-security.ts';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { chunkedBody } from './support/chunked.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData, signIn, subscribe } from './support/graphql.ts';
import { countSql, type SqlCount } from './support/sql-counter.ts';
import { waitFor } from './support/wait-for.ts';

const CHAIN_ID = 31337;
const DEV_ORIGIN = 'http://localhost:4000';
const PROD_ORIGIN = 'https://chainmeter.example';
const ALLOWED_ORIGIN = 'https://app.example.com';
const CHALLENGE =
  'mutation($address: Address!, $chainId: Int!) { siweChallenge(address: $address, chainId: $chainId) }';
const SIGN_IN =
  'mutation($message: String!, $signature: String!) { signIn(message: $message, signature: $signature) { token } }';

let anvil: Anvil;
let database: TestDatabase;
let dev: RunningApi;
let prod: RunningApi;
let prodIntrospection: RunningApi;
const sqlCounts = new Map<RunningApi, SqlCount>();

function env(overrides: Record<string, string>) {
  return testApiConfig({
    PUBLIC_ORIGIN: DEV_ORIGIN,
    RPC_URL: anvil.rpcUrl,
    DATABASE_URL: database.url,
    // This file signs in many times from one address; the per-IP limits have their own tests.
    RATE_LIMIT_IP_PER_MINUTE: '10000',
    // No background settlement loop, solvency snapshots or x402 resubmission rounds: the SQL counter must see only what a request causes.
    METERING_RETRY_MS: '600000',
    SOLVENCY_SNAPSHOT_MS: '0',
    X402_RESUBMIT_MS: '3600000',
    ...overrides,
  });
}

beforeAll(async () => {
  anvil = await startAnvil();
  database = await createTestDatabase('cm_security');
  // Nor any other background worker (crediting, webhook delivery, auto top-up rounds): their polls would be
  // counted as the SQL of a refused document.
  const quiet = { crediting: false, webhookDelivery: false, autoTopUpIntervalMs: 3_600_000 };
  dev = await startApi(env({}), quiet);
  prod = await startApi(
    env({ NODE_ENV: 'production', PUBLIC_ORIGIN: PROD_ORIGIN, CORS_ORIGINS: ALLOWED_ORIGIN }),
    quiet,
  );
  prodIntrospection = await startApi(
    env({ NODE_ENV: 'production', PUBLIC_ORIGIN: PROD_ORIGIN, GRAPHQL_INTROSPECTION: 'true' }),
    quiet,
  );
  for (const api of [dev, prod, prodIntrospection]) sqlCounts.set(api, await countSql(api));
});

afterAll(async () => {
  for (const api of [dev, prod, prodIntrospection]) await api?.close();
  await database?.drop();
  await anvil?.stop();
});

const newWallet = () => privateKeyToAccount(generatePrivateKey());

interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  json: {
    data?: unknown;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  } | null;
}

async function post(
  api: RunningApi,
  body: BodyInit,
  headers: Record<string, string> = {},
  path = '/graphql',
): Promise<RawResponse> {
  const response = await fetch(`${api.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
  } as RequestInit);
  const text = await response.text();
  let json: RawResponse['json'] = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: response.headers, text, json };
}

const query = (document: string, variables: Record<string, unknown> = {}) =>
  JSON.stringify({ query: document, variables });

/** Runs `send` and returns how many SQL statements the instance issued meanwhile. */
async function sqlDuring<T>(api: RunningApi, send: () => Promise<T>): Promise<{ result: T; sql: number }> {
  const counter = sqlCounts.get(api) as SqlCount;
  const before = counter.count;
  const result = await send();
  return { result, sql: counter.count - before };
}

/** A new API key of the session's account (its secret). */
async function apiKeyOf(sessionToken: string): Promise<string> {
  const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
    dev.url,
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
    { input: { name: 'sql counter' } },
    sessionToken,
  );
  return createApiKey.secret;
}

function expectRefusedDocument(response: RawResponse, message: RegExp) {
  expect(response.json?.data, response.text).toBeUndefined();
  const refusal = response.json?.errors?.find((error) => message.test(error.message));
  expect(refusal, response.text).toBeDefined();
  expect(refusal?.extensions?.code).toBe('BAD_USER_INPUT');
}

/** A document over each armor limit; each also asks for `me`, which would authenticate and query. */
function hostileDocuments() {
  let nested = 'name';
  for (let level = 0; level < GRAPHQL_LIMITS.depth + 2; level++) nested = `ofType { ${nested} }`;
  const aliases = Array.from({ length: GRAPHQL_LIMITS.aliases + 1 }, (_, i) => `a${i}: id`).join(' ');
  const ledger =
    'ledger(first: 100) { edges { cursor node { id amount balanceAfter reason createdAt hash deposit { id chainId txHash logIndex blockNumber from amountToken credits status confirmations creditedAt } } } pageInfo { hasNextPage endCursor } }';
  const costly = Array.from({ length: 12 }, (_, i) => `m${i}: me { ${ledger} }`).join(' ');
  return {
    depth: {
      document: `{ me { id } __type(name: "Account") { fields { type { ${nested} } } } }`,
      dev: /depth limit of 12 exceeded/,
      prod: /^Syntax Error: Query too deep\.$/,
    },
    aliases: {
      document: `{ me { ${aliases} } }`,
      dev: /Aliases limit of 20 exceeded/,
      prod: /^Syntax Error: Too many aliases\.$/,
    },
    cost: {
      document: `{ ${costly} }`,
      dev: /Query Cost limit of 25000 exceeded/,
      prod: /^Syntax Error: Query too expensive\.$/,
    },
    tokens: {
      document: `{ me { ${'id '.repeat(GRAPHQL_LIMITS.tokens)} } }`,
      dev: /Token limit of 2000 exceeded/,
      prod: /^Syntax Error: Query too long\.$/,
    },
    directives: {
      document: `{ me { ${'id @include(if: true) '.repeat(GRAPHQL_LIMITS.directives + 1)} } }`,
      dev: /Directives limit of 20 exceeded/,
      prod: /^Syntax Error: Too many directives\.$/,
    },
  };
}

describe('hostile GraphQL documents', () => {
  it('a legitimate query within the limits does run (the SQL counter works)', async () => {
    const token = await signIn(dev.url, newWallet(), CHAIN_ID);
    const { result, sql } = await sqlDuring(dev, () =>
      post(dev, query('{ me { id ledger(first: 100) { edges { node { id deposit { id } } } } } }'), {
        authorization: `Bearer ${token}`,
      }),
    );
    expect(result.json?.errors, result.text).toBeUndefined();
    expect(sql).toBeGreaterThan(0);
    // An API key is looked up on the raw `pg` hot path, not through the ORM: counted all the same.
    const key = await apiKeyOf(token);
    const keyed = await sqlDuring(dev, () =>
      post(dev, query('{ __typename }'), { authorization: `Bearer ${key}` }),
    );
    expect(keyed.result.json?.errors, keyed.result.text).toBeUndefined();
    expect(keyed.sql, 'the API key lookup').toBeGreaterThan(0);
  });

  it('depth, aliases, cost, tokens and directives: refused before anything runs, with BAD_USER_INPUT', async () => {
    const token = await signIn(dev.url, newWallet(), CHAIN_ID);
    const credentials = { session: token, 'API key': await apiKeyOf(token) };
    for (const [credential, bearer] of Object.entries(credentials)) {
      for (const [limit, hostile] of Object.entries(hostileDocuments())) {
        const { result, sql } = await sqlDuring(dev, () =>
          post(dev, query(hostile.document), { authorization: `Bearer ${bearer}` }),
        );
        expect(result.status, limit).toBeLessThan(500);
        expectRefusedDocument(result, hostile.dev);
        expect(sql, `${credential}, ${limit}: SQL statements run for a refused document`).toBe(0);
      }
    }
  });

  it('in production the refusals name no limit and carry no stack trace', async () => {
    const token = await signIn(prodIntrospection.url, newWallet(), CHAIN_ID);
    // prodIntrospection: production messages, but __type allowed, so the depth rule is what refuses.
    for (const [limit, hostile] of Object.entries(hostileDocuments())) {
      const { result, sql } = await sqlDuring(prodIntrospection, () =>
        post(prodIntrospection, query(hostile.document), { authorization: `Bearer ${token}` }),
      );
      expectRefusedDocument(result, hostile.prod);
      expect(sql, limit).toBe(0);
      for (const error of result.json?.errors ?? []) {
        if (error.extensions?.code === 'BAD_USER_INPUT') expect(error.message, limit).not.toMatch(/\d/);
      }
      expect(result.text, limit).not.toMatch(/stack|\bat .+\.(ts|js):\d+|node_modules/i);
    }
  });

  it('refuses them over graphql-ws too, with an error rather than a dropped socket', async () => {
    const token = await signIn(dev.url, newWallet(), CHAIN_ID);
    const aliases = Array.from({ length: GRAPHQL_LIMITS.aliases + 1 }, (_, i) => `a${i}: balance`).join(' ');
    const tooMany = await subscribe(dev.url, `subscription { balanceUpdated { ${aliases} } }`, token);
    await expect(tooMany.waitFor(() => true, 10_000)).rejects.toThrow(/Aliases limit.*BAD_USER_INPUT/);
    await tooMany.close();
    const tooLong = await subscribe(
      dev.url,
      `subscription { balanceUpdated { ${'balance '.repeat(GRAPHQL_LIMITS.tokens)} } }`,
      token,
    );
    await expect(tooLong.waitFor(() => true, 10_000)).rejects.toThrow(/Token limit.*BAD_USER_INPUT/);
    await tooLong.close();
  });

  it('hides field and argument suggestions in production only', async () => {
    const typos = ['{ paymentConfi { chainId } }', '{ me { ledger(frist: 1) { edges { cursor } } } }'];
    for (const document of typos) {
      const development = await post(dev, query(document));
      expect(development.text).toMatch(/Did you mean/);
      const production = await post(prod, query(document));
      expect(production.json?.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(production.text).not.toMatch(/Did you mean|paymentConfig"|"first"/);
    }
  });

  it('refuses batched (array) bodies outright', async () => {
    const { result, sql } = await sqlDuring(dev, () =>
      post(dev, JSON.stringify([{ query: '{ me { id } }' }, { query: '{ me { id } }' }])),
    );
    expect(result.status).toBe(400);
    expect(result.json?.errors?.[0]?.message).toMatch(/Batching is not supported/);
    expect(sql).toBe(0);
  });

  it('refuses a body over the size limit with 413, declared or streamed', async () => {
    const huge = query('{ __typename }', { padding: 'x'.repeat(MAX_REQUEST_BODY_BYTES) });
    const declared = await post(prod, huge);
    expect(declared.status).toBe(413);
    expect(declared.json?.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(declared.json?.errors?.[0]?.message).toMatch(/Request body too large/);
    // Chunked, without content-length: the limit counts the bytes as they arrive.
    const streamed = await post(prod, chunkedBody(huge));
    expect(streamed.status).toBe(413);
    // Just under the limit is an ordinary request.
    const fits = await post(prod, query('{ __typename }', { padding: 'x'.repeat(1024 * 1024) }));
    expect(fits.json).toEqual({ data: { __typename: 'Query' } });
  });

  it('has no node(id) or nodes(ids) query', async () => {
    for (const document of ['{ node(id: "x") { id } }', '{ nodes(ids: ["x"]) { id } }']) {
      const result = await post(dev, query(document));
      expect(result.json?.errors?.[0]?.message).toMatch(/Cannot query field "nodes?" on type "Query"/);
    }
    const fields = await gqlData<{ __schema: { queryType: { fields: { name: string }[] } } }>(
      dev.url,
      '{ __schema { queryType { fields { name } } } }',
    );
    const names = fields.__schema.queryType.fields.map((field) => field.name);
    expect(names).toContain('me');
    expect(names).not.toContain('node');
    expect(names).not.toContain('nodes');
  });
});

describe('introspection policy', () => {
  const INTROSPECT = '{ __schema { types { name } } }';

  it('is on in development and test', async () => {
    const result = await post(dev, query(INTROSPECT));
    expect(result.json?.errors).toBeUndefined();
    expect(JSON.stringify(result.json?.data)).toContain('"LedgerEntry"');
  });

  it('is off in production: __schema and __type refused, __typename still fine', async () => {
    for (const document of [INTROSPECT, '{ __type(name: "Account") { fields { name } } }']) {
      const { result, sql } = await sqlDuring(prod, () => post(prod, query(document)));
      expect(result.json?.data, result.text).toBeUndefined();
      expect(result.json?.errors?.[0]?.message).toMatch(/introspection has been disabled/);
      expect(result.text).not.toContain('LedgerEntry');
      expect(sql).toBe(0);
    }
    expect((await post(prod, query('{ __typename }'))).json).toEqual({ data: { __typename: 'Query' } });
  });

  it('is on in production with GRAPHQL_INTROSPECTION=true, and the variable is validated', async () => {
    const result = await post(prodIntrospection, query(INTROSPECT));
    expect(result.json?.errors).toBeUndefined();
    expect(JSON.stringify(result.json?.data)).toContain('"LedgerEntry"');
    expect(() => env({ GRAPHQL_INTROSPECTION: 'yes' })).toThrow(ConfigError);
    expect(env({ GRAPHQL_INTROSPECTION: 'false' }).security.introspection).toBe(false);
  });
});

describe('sign-in with Ethereum: what siwe.test.ts does not cover', () => {
  async function challengeFor(api: RunningApi, address: string): Promise<string> {
    return (await gqlData<{ siweChallenge: string }>(api.url, CHALLENGE, { address, chainId: CHAIN_ID }))
      .siweChallenge;
  }

  function expectClearRefusal(result: Awaited<ReturnType<typeof gql>>, code: string, message: RegExp) {
    expect(result.status, JSON.stringify(result)).toBeLessThan(500);
    expect(result.data ?? null).toBeNull();
    expect(result.errors?.[0]?.extensions?.code, JSON.stringify(result)).toBe(code);
    expect(result.errors?.[0]?.message).toMatch(message);
  }

  it("refuses a message naming another address than the signer's, and a nonce issued to another address", async () => {
    const victim = newWallet();
    const attacker = newWallet();
    const victimsMessage = await challengeFor(dev, victim.address);
    // The attacker signs the victim's message as is: the signature is not the victim's.
    expectClearRefusal(
      await gql(dev.url, SIGN_IN, {
        message: victimsMessage,
        signature: await attacker.signMessage({ message: victimsMessage }),
      }),
      'UNAUTHENTICATED',
      /signature does not match/,
    );
    // The attacker rewrites it for their own address, keeping the victim's nonce: that nonce is not theirs.
    const fields = parseSiweMessage(victimsMessage);
    const rewritten = createSiweMessage({
      ...(fields as Parameters<typeof createSiweMessage>[0]),
      address: attacker.address,
    });
    expectClearRefusal(
      await gql(dev.url, SIGN_IN, {
        message: rewritten,
        signature: await attacker.signMessage({ message: rewritten }),
      }),
      'UNAUTHENTICATED',
      /unknown nonce/,
    );
    // Neither attempt burnt the victim's challenge.
    const signature = await victim.signMessage({ message: victimsMessage });
    expect((await gql(dev.url, SIGN_IN, { message: victimsMessage, signature })).errors).toBeUndefined();
  });

  it('refuses a truncated message wherever it is cut, never with a 500', async () => {
    const wallet = newWallet();
    const message = await challengeFor(dev, wallet.address);
    const lines = message.split('\n');
    for (let keep = 1; keep < lines.length; keep++) {
      const truncated = lines.slice(0, keep).join('\n');
      const result = await gql(dev.url, SIGN_IN, {
        message: truncated,
        signature: await wallet.signMessage({ message: truncated }),
      });
      expect(result.status, truncated).toBeLessThan(500);
      expect(['BAD_USER_INPUT', 'UNAUTHENTICATED'], truncated).toContain(
        result.errors?.[0]?.extensions?.code,
      );
      expect(result.errors?.[0]?.message).not.toMatch(/Unexpected error/);
    }
    // Cut mid-line too (the Issued At timestamp loses its end).
    const cut = message.slice(0, message.indexOf('Issued At: ') + 20);
    const result = await gql(dev.url, SIGN_IN, {
      message: cut,
      signature: await wallet.signMessage({ message: cut }),
    });
    expect(['BAD_USER_INPUT', 'UNAUTHENTICATED']).toContain(result.errors?.[0]?.extensions?.code);
    // The untouched message still signs in.
    const signature = await wallet.signMessage({ message });
    expect((await gql(dev.url, SIGN_IN, { message, signature })).errors).toBeUndefined();
  });

  it('answers an enormous message with a clear error (and one over the body limit with 413)', async () => {
    const wallet = newWallet();
    const message = await challengeFor(dev, wallet.address);
    const padded = `${message}\n${'Resources:\n- https://x.example/'.repeat(60_000)}`;
    expect(padded.length).toBeGreaterThan(1_000_000);
    const result = await gql(dev.url, SIGN_IN, { message: padded, signature: `0x${'ab'.repeat(65)}` });
    expect(result.status).toBeLessThan(500);
    expect(['BAD_USER_INPUT', 'UNAUTHENTICATED']).toContain(result.errors?.[0]?.extensions?.code);
    const overLimit = await post(
      dev,
      query(SIGN_IN, { message: 'x'.repeat(MAX_REQUEST_BODY_BYTES), signature: '0x00' }),
    );
    expect(overLimit.status).toBe(413);
  });
});

describe('credentials are never echoed', () => {
  const secrets = {
    session: `cms_${randomBytes(32).toString('base64url')}`,
    apiKey: `cm_${randomBytes(32).toString('base64url')}`,
    other: `sk-${randomBytes(24).toString('hex')}`,
  };

  function expectNoSecret(text: string, secret: string) {
    expect(text).not.toContain(secret);
    // Not even most of it (a prefix shown for display is fine, the random part is not).
    expect(text).not.toContain(secret.slice(-24));
  }

  it('in GraphQL errors, for unknown, revoked and malformed credentials, by header or cookie', async () => {
    const wallet = newWallet();
    const revoked = await signIn(dev.url, wallet, CHAIN_ID);
    await gqlData(dev.url, 'mutation { signOut }', {}, revoked);
    for (const secret of [...Object.values(secrets), revoked]) {
      for (const headers of [
        { authorization: `Bearer ${secret}` } as Record<string, string>,
        { cookie: `cm_session=${secret}` },
      ]) {
        for (const document of ['mutation { signOut }', '{ me { apiKeys { id } } }', '{ me { id } }']) {
          for (const api of [dev, prod]) {
            const response = await post(api, query(document), headers);
            expectNoSecret(response.text, secret);
            expectNoSecret(JSON.stringify([...response.headers]), secret);
          }
        }
      }
    }
    const refused = await post(dev, query('mutation { signOut }'), { authorization: `Bearer ${revoked}` });
    expect(refused.json?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('in REST errors', async () => {
    for (const secret of Object.values(secrets)) {
      const models = await fetch(`${dev.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
      expect(models.status).toBe(401);
      expectNoSecret(await models.text(), secret);
      const completion = await post(
        dev,
        JSON.stringify({ model: 'chainmeter-dev', messages: [{ role: 'user', content: 'hi' }] }),
        { authorization: `Bearer ${secret}` },
        '/v1/chat/completions',
      );
      expect(completion.status).toBe(401);
      expectNoSecret(completion.text, secret);
      const exported = await fetch(`${dev.url}/v1/usage/export?format=json`, {
        headers: { cookie: `cm_session=${secret}` },
      });
      expect(exported.status).toBe(401);
      expectNoSecret(await exported.text(), secret);
    }
  });

  it('in graphql-ws errors', async () => {
    for (const secret of Object.values(secrets)) {
      const subscription = await subscribe(dev.url, 'subscription { balanceUpdated { balance } }', secret);
      const error = await subscription
        .waitFor(() => true, 10_000)
        .then(
          () => null,
          (failure: Error) => failure.message,
        );
      expect(error).toMatch(/UNAUTHENTICATED/);
      expectNoSecret(error ?? '', secret);
      await subscription.close();
    }
  });
});

describe('subscriptions', () => {
  it("are authorized at subscribe time: a signed-out session's token is refused", async () => {
    const token = await signIn(dev.url, newWallet(), CHAIN_ID);
    await gqlData(dev.url, 'mutation { signOut }', {}, token);
    for (const document of [
      'subscription { balanceUpdated { balance } }',
      'subscription { depositUpdated { id } }',
    ]) {
      const subscription = await subscribe(dev.url, document, token);
      await expect(subscription.waitFor(() => true, 10_000)).rejects.toThrow(/UNAUTHENTICATED/);
      await subscription.close();
    }
  });

  it("deliver one account's balance events to that account only", async () => {
    const [alice, bob] = [newWallet(), newWallet()];
    const tokens = [await signIn(dev.url, alice, CHAIN_ID), await signIn(dev.url, bob, CHAIN_ID)];
    const ids = await Promise.all(
      tokens.map(
        async (token) => (await gqlData<{ me: { id: string } }>(dev.url, '{ me { id } }', {}, token)).me.id,
      ),
    );
    const streams = await Promise.all(
      tokens.map((token) =>
        subscribe<{ balanceUpdated: { balance: string; entry: { id: string } } }>(
          dev.url,
          'subscription { balanceUpdated { balance entry { id } } }',
          token,
        ),
      ),
    );
    // Each account gets an entry, published exactly as the crediting worker publishes (by account id). A
    // subscription is live on the server some time after its socket is acknowledged (its context is
    // authenticated first), so each event is published again until it has arrived: what is checked is
    // where every copy went.
    const [aliceStream, bobStream] = streams as [(typeof streams)[0], (typeof streams)[0]];
    const entries: { id: string }[] = [];
    for (const [index, accountId] of ids.entries()) {
      const entry = await appendLedgerEntry(dev.services.orm.em.fork(), {
        accountId: accountId as string,
        amount: BigInt(1_000 * (index + 1)),
        reason: 'ADJUSTMENT',
        referenceId: `security-test-${index}`,
      });
      entries.push(entry);
      const stream = index === 0 ? aliceStream : bobStream;
      await waitFor(`account ${index}'s balanceUpdated event`, () => {
        if (stream.events.some((event) => event.balanceUpdated.entry.id === entry.id)) return true;
        dev.services.pubsub.publish('balanceUpdated', accountId as string, { ledgerEntryId: entry.id });
        return false;
      });
    }
    // Delivered where they belong; nothing crossed over. 1,000 micro-USD is 1 credit.
    expect(new Set(aliceStream.events.map((event) => event.balanceUpdated.entry.id))).toEqual(
      new Set([entries[0]?.id]),
    );
    expect(new Set(bobStream.events.map((event) => event.balanceUpdated.entry.id))).toEqual(
      new Set([entries[1]?.id]),
    );
    expect(new Set(aliceStream.events.map((event) => event.balanceUpdated.balance))).toEqual(new Set(['1']));
    expect(new Set(bobStream.events.map((event) => event.balanceUpdated.balance))).toEqual(new Set(['2']));
    for (const stream of streams) await stream.close();
  });
});

describe('CORS', () => {
  async function preflight(api: RunningApi, origin: string, path = '/graphql') {
    return fetch(`${api.url}${path}`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    });
  }

  it('is off by default: no origin is allowed, not even a reflected one', async () => {
    for (const path of ['/graphql', '/v1/chat/completions']) {
      const response = await preflight(dev, 'https://evil.example', path);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    }
    const simple = await post(dev, query('{ __typename }'), { origin: 'https://evil.example' });
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('allows exactly the CORS_ORIGINS origins, never with credentials', async () => {
    const allowed = await preflight(prod, ALLOWED_ORIGIN);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    expect(allowed.headers.get('access-control-allow-credentials')).not.toBe('true');
    expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    const actual = await post(prod, query('{ __typename }'), { origin: ALLOWED_ORIGIN });
    expect(actual.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    const other = await preflight(prod, 'https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('*');
    expect(() => env({ CORS_ORIGINS: '*' })).toThrow(ConfigError);
    expect(() => env({ CORS_ORIGINS: 'https://app.example.com/path' })).toThrow(ConfigError);
  });
});

describe('the session cookie', () => {
  async function signInCookie(api: RunningApi): Promise<string> {
    const wallet = newWallet();
    const { siweChallenge } = await gqlData<{ siweChallenge: string }>(api.url, CHALLENGE, {
      address: wallet.address,
      chainId: CHAIN_ID,
    });
    const response = await post(
      api,
      query(SIGN_IN, {
        message: siweChallenge,
        signature: await wallet.signMessage({ message: siweChallenge }),
      }),
    );
    expect(response.json?.errors, response.text).toBeUndefined();
    return response.headers.get('set-cookie') ?? '';
  }

  it('is httpOnly and SameSite=Lax, and Secure when PUBLIC_ORIGIN is https', async () => {
    const plain = (await signInCookie(dev)).split(';').map((part) => part.trim().toLowerCase());
    expect(plain[0]).toMatch(/^cm_session=cms_/);
    expect(plain).toContain('httponly');
    expect(plain).toContain('samesite=lax');
    expect(plain).toContain('path=/');
    expect(plain).not.toContain('secure');
    const secure = (await signInCookie(prod)).split(';').map((part) => part.trim().toLowerCase());
    expect(secure).toContain('httponly');
    expect(secure).toContain('samesite=lax');
    expect(secure).toContain('secure');
  });
});
