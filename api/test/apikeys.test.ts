/**
 * API keys and rate limits through the public GraphQL API: two API instances on one fresh PostgreSQL
 * database (two replicas), sharing one Redis for their limits. No chain is needed: sign-in signatures of
 * plain wallets are checked locally.
 */
import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import pg from 'pg';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiConfig } from '../src/env.ts';
import { RateLimitedError } from '../src/modules/ratelimit/ratelimit.service.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { type GraphQLResponse, gql, gqlData } from './support/graphql.ts';

const CHAIN_ID = 31337;
const REDIS_URL = 'redis://127.0.0.1:6379';
const IP_LIMIT = 6;

let database: TestDatabase;
let apiA: RunningApi;
let apiB: RunningApi;

/** Both replicas: same database, same Redis, same (test-unique) key prefix, so one shared budget. */
function replicaConfig(
  database: TestDatabase,
  keyPrefix: string,
  env: Record<string, string> = {},
): ApiConfig {
  const config = testApiConfig({
    HOST: '127.0.0.1',
    DATABASE_URL: database.url,
    REDIS_URL,
    RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT),
    RATE_LIMIT_REQUESTS_PER_MINUTE: '4',
    // The tests stand in for the load balancer on loopback: its X-Forwarded-For names the client.
    TRUSTED_PROXIES: '127.0.0.1/32,::1/128',
    ...env,
  });
  return { ...config, rateLimits: { ...config.rateLimits, keyPrefix } };
}

beforeAll(async () => {
  database = await createTestDatabase('cm_apikeys');
  const keyPrefix = `cm:rl:test:${randomUUID()}`;
  apiA = await startApi(replicaConfig(database, keyPrefix), { crediting: false });
  apiB = await startApi(replicaConfig(database, keyPrefix), { crediting: false });
}, 60_000);

afterAll(async () => {
  await apiA?.close();
  await apiB?.close();
  await database?.drop();
});

const CREATE = `mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { secret apiKey { id name prefix createdAt lastUsedAt revokedAt expiresAt spendLimit spent } }
}`;
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }';
const ME =
  '{ me { id walletAddress balance apiKeys { id name prefix spendLimit spent revokedAt lastUsedAt } } }';

interface CreatedKey {
  secret: string;
  apiKey: { id: string; name: string; prefix: string; spendLimit: string | null; spent: string };
}

/** Each test signs in from its own (forwarded) IP, so the per-IP budgets of different tests never mix. */
function fromIp(ip: string) {
  const call = async <T>(
    url: string,
    query: string,
    variables: Record<string, unknown> = {},
    token?: string,
  ) => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-forwarded-for': ip,
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, ...((await response.json()) as GraphQLResponse<T>) };
  };
  return { call };
}

let ipCounter = 0;
const nextIp = () => `198.51.100.${++ipCounter}`;

async function signedInUser(url = apiA.url) {
  const wallet = privateKeyToAccount(generatePrivateKey());
  const ip = fromIp(nextIp());
  const challenge = await ip.call<{ siweChallenge: string }>(
    url,
    'mutation($address: Address!, $chainId: Int!) { siweChallenge(address: $address, chainId: $chainId) }',
    { address: wallet.address, chainId: CHAIN_ID },
  );
  const message = challenge.data?.siweChallenge;
  if (!message) throw new Error(JSON.stringify(challenge.errors));
  const signed = await ip.call<{ signIn: { token: string } }>(
    url,
    'mutation($message: String!, $signature: String!) { signIn(message: $message, signature: $signature) { token } }',
    { message, signature: await wallet.signMessage({ message }) },
  );
  const session = signed.data?.signIn.token;
  if (!session) throw new Error(JSON.stringify(signed.errors));
  return { wallet, session };
}

async function createKey(token: string, input: Record<string, unknown>, url = apiA.url): Promise<CreatedKey> {
  const result = await fromIp(nextIp()).call<{ createApiKey: CreatedKey }>(url, CREATE, { input }, token);
  if (result.errors?.length || !result.data) throw new Error(JSON.stringify(result.errors));
  return result.data.createApiKey;
}

function codeOf(result: GraphQLResponse<unknown>): string | undefined {
  return result.errors?.[0]?.extensions?.code;
}

describe('API keys over GraphQL', () => {
  let alice: Awaited<ReturnType<typeof signedInUser>>;
  let bob: Awaited<ReturnType<typeof signedInUser>>;

  beforeAll(async () => {
    alice = await signedInUser();
    bob = await signedInUser(apiB.url);
  });

  it('shows the secret once, never in apiKeys, and the key authenticates on both replicas', async () => {
    const created = await createKey(alice.session, { name: 'integration', spendLimit: '12.5' });
    expect(created.secret).toMatch(/^cm_[A-Za-z0-9_-]{43}$/);
    expect(created.apiKey).toMatchObject({ name: 'integration', spendLimit: '12.5', spent: '0' });
    expect(created.secret.startsWith(created.apiKey.prefix)).toBe(true);

    const listed = await gqlData<{ me: { apiKeys: { id: string }[] } }>(apiA.url, ME, {}, alice.session);
    expect(listed.me.apiKeys.map((key) => key.id)).toContain(created.apiKey.id);
    expect(JSON.stringify(listed)).not.toContain(created.secret.slice(3));

    for (const url of [apiA.url, apiB.url]) {
      const viaKey = await gqlData<{ me: { walletAddress: string } }>(url, ME, {}, created.secret);
      expect(viaKey.me.walletAddress).toBe(alice.wallet.address);
    }
    const seen = await gqlData<{ me: { apiKeys: { id: string; lastUsedAt: string | null }[] } }>(
      apiA.url,
      ME,
      {},
      alice.session,
    );
    expect(seen.me.apiKeys.find((key) => key.id === created.apiKey.id)?.lastUsedAt).not.toBeNull();
  });

  it('refuses bad input with BAD_USER_INPUT', async () => {
    const ip = fromIp(nextIp());
    for (const input of [
      { name: '' },
      { name: 'x'.repeat(101) },
      { name: 'a', spendLimit: '0' },
      { name: 'a', spendLimit: '-1' },
      { name: 'a', expiresAt: new Date(Date.now() - 1000).toISOString() },
    ]) {
      expect(codeOf(await ip.call(apiA.url, CREATE, { input }, alice.session))).toBe('BAD_USER_INPUT');
    }
  });

  it('a revoked key is refused at once, on the other replica too', async () => {
    const { secret, apiKey } = await createKey(alice.session, { name: 'to revoke' });
    expect((await gqlData<{ me: unknown }>(apiB.url, ME, {}, secret)).me).not.toBeNull();
    const revoked = await fromIp(nextIp()).call<{ revokeApiKey: { revokedAt: string } }>(
      apiA.url,
      REVOKE,
      { id: apiKey.id },
      alice.session,
    );
    expect(revoked.data?.revokeApiKey.revokedAt).toBeTruthy();
    for (const url of [apiB.url, apiA.url]) {
      expect((await gqlData<{ me: unknown }>(url, ME, {}, secret)).me).toBeNull();
      const denied = await gql(url, REVOKE, { id: apiKey.id }, secret);
      expect(codeOf(denied)).toBe('UNAUTHENTICATED');
      expect(JSON.stringify(denied)).not.toContain(secret.slice(3));
    }
  });

  it('an expired key is refused at once on every replica', async () => {
    const { secret, apiKey } = await createKey(alice.session, {
      name: 'short-lived',
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    expect((await gqlData<{ me: unknown }>(apiA.url, ME, {}, secret)).me).not.toBeNull();
    // Time passes (the clock is the database row's): the expiry is now behind us.
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query(`update api_keys set expires_at = now() - interval '1 millisecond' where id = $1`, [
      apiKey.id,
    ]);
    await client.end();
    for (const url of [apiA.url, apiB.url]) {
      expect((await gqlData<{ me: unknown }>(url, ME, {}, secret)).me).toBeNull();
    }
  });

  it("nobody can see or revoke someone else's key", async () => {
    const { secret, apiKey } = await createKey(bob.session, { name: "bob's" }, apiB.url);
    const aliceView = await gqlData<{ me: { apiKeys: { id: string }[] } }>(apiA.url, ME, {}, alice.session);
    expect(aliceView.me.apiKeys.map((key) => key.id)).not.toContain(apiKey.id);
    const attempt = await fromIp(nextIp()).call(apiA.url, REVOKE, { id: apiKey.id }, alice.session);
    const missing = await fromIp(nextIp()).call(apiA.url, REVOKE, { id: randomUUID() }, alice.session);
    expect(codeOf(attempt)).toBe('NOT_FOUND');
    expect(attempt.errors?.[0]?.message).toBe(missing.errors?.[0]?.message);
    // Bob's key is untouched.
    const bobView = await gqlData<{ me: { walletAddress: string } }>(apiA.url, ME, {}, secret);
    expect(bobView.me.walletAddress).toBe(bob.wallet.address);
  });

  it('a key cannot create or revoke keys', async () => {
    const { secret, apiKey } = await createKey(alice.session, { name: 'no minting' });
    const ip = fromIp(nextIp());
    expect(codeOf(await ip.call(apiA.url, CREATE, { input: { name: 'child' } }, secret))).toBe('FORBIDDEN');
    expect(codeOf(await ip.call(apiA.url, REVOKE, { id: apiKey.id }, secret))).toBe('FORBIDDEN');
    const keys = await gqlData<{ me: { apiKeys: { name: string; revokedAt: string | null }[] } }>(
      apiA.url,
      ME,
      {},
      alice.session,
    );
    expect(keys.me.apiKeys.some((key) => key.name === 'child')).toBe(false);
    expect(keys.me.apiKeys.find((key) => key.name === 'no minting')?.revokedAt).toBeNull();
  });

  it('key management needs a session', async () => {
    const result = await fromIp(nextIp()).call(apiA.url, CREATE, { input: { name: 'anon' } });
    expect(codeOf(result)).toBe('UNAUTHENTICATED');
  });
});

describe('rate limits', () => {
  it('siweChallenge and signIn are limited per IP, across both replicas (shared Redis)', async () => {
    const attacker = fromIp(nextIp());
    const bystander = fromIp(nextIp());
    const wallet = privateKeyToAccount(generatePrivateKey());
    const challenge = 'mutation($address: Address!) { siweChallenge(address: $address, chainId: 31337) }';
    const results = [];
    for (let i = 0; i < IP_LIMIT; i++) {
      results.push(await attacker.call(i % 2 ? apiA.url : apiB.url, challenge, { address: wallet.address }));
    }
    expect(results.every((result) => !result.errors)).toBe(true);
    for (const url of [apiA.url, apiB.url]) {
      const refused = await attacker.call(url, challenge, { address: wallet.address });
      expect(codeOf(refused)).toBe('RATE_LIMITED');
      const retryAfter = (refused.errors?.[0]?.extensions as { retryAfter?: number } | undefined)?.retryAfter;
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    // signIn has its own budget per IP, also shared by the replicas; past it, an attempt is refused
    // before its message is even looked at.
    const badSignIn = 'mutation { signIn(message: "x", signature: "0x00") { token } }';
    for (let i = 0; i < IP_LIMIT; i++) {
      expect(codeOf(await attacker.call(i % 2 ? apiA.url : apiB.url, badSignIn))).toBe('BAD_USER_INPUT');
    }
    expect(codeOf(await attacker.call(apiA.url, badSignIn))).toBe('RATE_LIMITED');
    // Another IP is not affected.
    expect((await bystander.call(apiB.url, challenge, { address: wallet.address })).errors).toBeUndefined();
  });

  it('key management is limited per IP', async () => {
    const { session } = await signedInUser();
    const ip = fromIp(nextIp());
    for (let i = 0; i < IP_LIMIT; i++) {
      const created = await ip.call(
        i % 2 ? apiA.url : apiB.url,
        CREATE,
        { input: { name: `k${i}` } },
        session,
      );
      expect(created.errors).toBeUndefined();
    }
    expect(codeOf(await ip.call(apiA.url, CREATE, { input: { name: 'one more' } }, session))).toBe(
      'RATE_LIMITED',
    );
  });

  it('per key: two replicas count against one budget', async () => {
    const { session } = await signedInUser();
    const { secret } = await createKey(session, { name: 'limited' });
    const viewerA = await viewerThrough(apiA, secret);
    const viewerB = await viewerThrough(apiB, secret);
    // RATE_LIMIT_REQUESTS_PER_MINUTE=4, shared through Redis.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? apiA : apiB).services.rateLimits.consume(i % 2 ? viewerA : viewerB, { requests: 1 }),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(4);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(RateLimitedError);
    }
  });

  it('in memory (no REDIS_URL), the N+1st call is refused', async () => {
    const memoryDb = await createTestDatabase('cm_apikeys_mem');
    const api = await startApi(
      replicaConfig(memoryDb, `cm:rl:test:${randomUUID()}`, { REDIS_URL: '', RATE_LIMIT_IP_PER_MINUTE: '3' }),
      { crediting: false },
    );
    try {
      expect(api.services.config.redisUrl).toBeUndefined();
      const ip = fromIp(nextIp());
      const challenge =
        'mutation { siweChallenge(address: "0x0000000000000000000000000000000000000001", chainId: 31337) }';
      for (let i = 0; i < 3; i++) expect((await ip.call(api.url, challenge)).errors).toBeUndefined();
      expect(codeOf(await ip.call(api.url, challenge))).toBe('RATE_LIMITED');
    } finally {
      await api.close();
      await memoryDb.drop();
    }
  });
});

/** The viewer an API instance resolves for a key, as its GraphQL context would. */
async function viewerThrough(api: RunningApi, secret: string) {
  const { resolveCaller } = await import('../src/http/caller.ts');
  const caller = await resolveCaller(api.services, { authorization: [secret] });
  if (!caller) throw new Error('the key did not authenticate');
  return caller.viewer;
}
