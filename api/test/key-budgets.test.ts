/**
 * Keys with budgets end to end: a spend limit per UTC period (`limitReset`) and `allowedModels`, through the
 * official `openai` client against `/v1` and through GraphQL, on a real PostgreSQL database with the real dev
 * model server as the upstream. The clock of the holds is the test's own (`AppServicesOptions.clock`), set
 * in the future of the real one (so no hold looks expired to the sweep) and moved across a UTC midnight.
 * Two API replicas share that clock and the database.
 *
 * The figures, worked out by hand (the dev model at $0.15 / $0.60 per million tokens, markup 1.5): a call
 * with the one message "burst" and `max_tokens: 16` holds 21 micro-USD (prompt bound 25 tokens x 0.15 +
 * 16 x 0.60 = 13.35 -> 14, x 1.5 = 21) and costs 17 (9 prompt + 16 completion tokens: 10.95 -> 11, x 1.5 =
 * 16.5 -> 17).
 */
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevModelServer, startDevModelServer } from '../src/dev-model/dev-model.server.ts';

import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData } from './support/graphql.ts';
import { UNLIMITED_RATES } from './support/platform.ts';
import { fundedUser, type TestUser } from './support/users.ts';

const DEV = 'chainmeter-dev';
const HOLD = 21n;
const PRICE = 17n;
const DAY = 86_400_000;

let database: TestDatabase;
let dev: DevModelServer;
let apiA: RunningApi;
let apiB: RunningApi;
/** The clock of both replicas' holds: two days ahead of the real one, 40 s before a UTC midnight. */
let now: Date;
const midnight = new Date(Math.floor(Date.now() / DAY) * DAY + 2 * DAY);

function config() {
  return testApiConfig({
    DATABASE_URL: database.url,
    LLM_BASE_URL: dev.baseUrl,
    LLM_TIMEOUT_MS: '4000',
    PRICE_MARKUP: '1.5',
    METERING_RETRY_MS: '50',
    ...UNLIMITED_RATES,
  });
}

beforeAll(async () => {
  database = await createTestDatabase('cm_key_budgets');
  dev = await startDevModelServer();
  now = new Date(midnight.getTime() - 40_000);
  apiA = await startApi(config(), { crediting: false, clock: () => now });
  apiB = await startApi(config(), { crediting: false, clock: () => now });
}, 60_000);

afterAll(async () => {
  await apiA?.close();
  await apiB?.close();
  await dev?.stop();
  await database?.drop();
});

type User = TestUser;

const newUser = (balance: bigint): Promise<User> => fundedUser(apiA, balance);

interface KeyView {
  id: string;
  spendLimit: string | null;
  limitReset: string | null;
  allowedModels: string[] | null;
  spent: string;
  spentThisPeriod: string;
}
const KEY_FIELDS = 'id spendLimit limitReset allowedModels spent spentThisPeriod';

async function createKey(user: User, input: Record<string, unknown>): Promise<KeyView & { secret: string }> {
  const { createApiKey } = await gqlData<{ createApiKey: { secret: string; apiKey: KeyView } }>(
    apiA.url,
    `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`,
    { input: { name: 'budget', ...input } },
    user.token,
  );
  return { ...createApiKey.apiKey, secret: createApiKey.secret };
}

async function keyView(user: User, id: string): Promise<KeyView> {
  const { me } = await gqlData<{ me: { apiKeys: KeyView[] } }>(
    apiA.url,
    `{ me { apiKeys { ${KEY_FIELDS} } } }`,
    {},
    user.token,
  );
  const key = me.apiKeys.find((k) => k.id === id);
  if (!key) throw new Error(`no key ${id}`);
  return key;
}

async function keyRow(id: string) {
  const [row] = await apiA.services.orm.em.fork().execute<
    {
      spent: string;
      held: string;
      period_spent: string;
      period_start: string | null;
    }[]
  >(
    `select spent::text as spent, held::text as held, period_spent::text as period_spent,
       to_char(period_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as period_start from api_keys where id = ?`,
    [id],
  );
  if (!row) throw new Error(`no key ${id}`);
  return row;
}

/** An endpoint for every event type, written straight to its table (the deliveries are not under test). */
async function subscribeToWebhooks(user: User): Promise<void> {
  await apiA.services.orm.em.fork().execute(
    `insert into webhook_endpoints (account_id, url, secret, events)
     values (?, 'https://example.com/hook', 'whsec_test', '{KEY_LIMIT_REACHED,BALANCE_LOW}')`,
    [user.accountId],
  );
}

/** The data of the account's outbox events of `type`, oldest first. */
async function outbox(user: User, type: string): Promise<unknown[]> {
  const rows = await apiA.services.orm.em
    .fork()
    .execute<{ data: unknown }[]>(
      'select data from webhook_deliveries where account_id = ? and event_type = ? order by created_at, id',
      [user.accountId, type],
    );
  return rows.map((row) => (typeof row.data === 'string' ? JSON.parse(row.data) : row.data));
}

async function usageCount(accountId: string): Promise<number> {
  const [row] = await apiA.services.orm.em
    .fork()
    .execute<{ n: number }[]>('select count(*)::int as n from usage_records where account_id = ?', [
      accountId,
    ]);
  return row?.n ?? 0;
}

const client = (api: RunningApi, secret: string) =>
  new OpenAI({ baseURL: `${api.url}/v1`, apiKey: secret, maxRetries: 0 });

/** One "burst" call; its HTTP status (200, or the refusal's) and the OpenAI error code. */
async function call(
  api: RunningApi,
  secret: string,
  model = DEV,
): Promise<{ status: number; code?: string }> {
  try {
    await client(api, secret).chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'burst' }],
      max_tokens: 16,
    });
    return { status: 200 };
  } catch (error) {
    if (error instanceof OpenAI.APIError) return { status: error.status ?? 0, code: String(error.code) };
    throw error;
  }
}

async function idle() {
  await apiA.services.metering.whenIdle();
  await apiB.services.metering.whenIdle();
}

describe('a spend limit per period (limitReset)', () => {
  it('a DAILY key is refused at its limit and served again after 00:00 UTC', async () => {
    now = new Date(midnight.getTime() - 40_000);
    const user = await newUser(1_000_000n);
    // 55 micro-USD = 0.055 credits: room for 3 calls (a 4th would need 3 x 17 + 21 = 72).
    const key = await createKey(user, { spendLimit: '0.055', limitReset: 'DAILY' });
    await subscribeToWebhooks(user);
    expect(key).toMatchObject({ limitReset: 'DAILY', spendLimit: '0.055', spentThisPeriod: '0' });
    for (let i = 0; i < 3; i++) expect(await call(i % 2 ? apiB : apiA, key.secret)).toEqual({ status: 200 });
    await idle();
    expect(await call(apiA, key.secret)).toEqual({ status: 402, code: 'insufficient_credits' });
    expect(await call(apiB, key.secret)).toEqual({ status: 402, code: 'insufficient_credits' });
    expect(await keyView(user, key.id)).toMatchObject({ spent: '0.051', spentThisPeriod: '0.051' });

    // One second before midnight: still the same day.
    now = new Date(midnight.getTime() - 1_000);
    expect((await call(apiB, key.secret)).status).toBe(402);
    // Midnight UTC: a new day, a new budget.
    now = new Date(midnight.getTime());
    expect(await call(apiB, key.secret)).toEqual({ status: 200 });
    await idle();
    expect(await keyRow(key.id)).toMatchObject({
      spent: String(4n * PRICE),
      period_spent: String(PRICE),
      held: '0',
      period_start: midnight.toISOString(),
    });
    expect(await keyView(user, key.id)).toMatchObject({ spent: '0.068', spentThisPeriod: '0.017' });
    for (let i = 0; i < 2; i++) expect((await call(apiA, key.secret)).status).toBe(200);
    await idle();
    expect((await call(apiA, key.secret)).status).toBe(402);
    expect(await keyRow(key.id)).toMatchObject({
      spent: String(6n * PRICE),
      period_spent: String(3n * PRICE),
    });
    // KEY_LIMIT_REACHED: once in each day it was refused (three refusals on the first day), in the outbox.
    const base = { apiKeyId: key.id, name: 'budget', spendLimit: '0.055', limitReset: 'DAILY' };
    expect(await outbox(user, 'KEY_LIMIT_REACHED')).toEqual([
      { ...base, periodStart: new Date(midnight.getTime() - DAY).toISOString() },
      { ...base, periodStart: midnight.toISOString() },
    ]);
  });

  it('a burst of parallel calls on two replicas never spends more than the period allows, across the boundary', async () => {
    now = new Date(midnight.getTime() + DAY - 30_000);
    const user = await newUser(10_000_000n);
    const limit = 5n * HOLD; // 105 micro-USD
    const key = await createKey(user, { spendLimit: '0.105', limitReset: 'DAILY' });
    const burst = () =>
      Promise.all(Array.from({ length: 60 }, (_, i) => call(i % 2 ? apiA : apiB, key.secret)));
    const first = await burst();
    await idle();
    const firstOk = first.filter((r) => r.status === 200).length;
    expect(first.filter((r) => r.status !== 200).every((r) => r.status === 402)).toBe(true);
    // At least 5 fit (5 holds of 21), at most 6 calls of 17 fit in 105.
    expect(firstOk).toBeGreaterThanOrEqual(5);
    expect(BigInt(firstOk) * PRICE).toBeLessThanOrEqual(limit);
    // The next day, the same burst: the period's spend starts again from 0 once, however many holds race.
    now = new Date(midnight.getTime() + DAY);
    const second = await burst();
    await idle();
    const secondOk = second.filter((r) => r.status === 200).length;
    expect(secondOk).toBeGreaterThanOrEqual(5);
    expect(BigInt(secondOk) * PRICE).toBeLessThanOrEqual(limit);
    expect(await keyRow(key.id)).toEqual({
      spent: String(BigInt(firstOk + secondOk) * PRICE),
      period_spent: String(BigInt(secondOk) * PRICE),
      held: '0',
      period_start: new Date(midnight.getTime() + DAY).toISOString(),
    });
    expect(await usageCount(user.accountId)).toBe(firstOk + secondOk);
  });

  it('refuses a limit reset without a spend limit', async () => {
    const user = await newUser(1n);
    const result = await gql(
      apiA.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
      { input: { name: 'x', limitReset: 'WEEKLY' } },
      user.token,
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('allowedModels', () => {
  it('refuses another model before the rate limits, the hold and the upstream (REST and GraphQL)', async () => {
    now = new Date(midnight.getTime() + 3 * DAY);
    const user = await newUser(1_000_000n);
    const key = await createKey(user, { allowedModels: ['dev-no-cost', ' dev-no-cost '] });
    expect(key.allowedModels).toEqual(['dev-no-cost']);
    const upstreamBefore = dev.requestCount();
    expect(await call(apiA, key.secret, DEV)).toEqual({ status: 403, code: 'model_not_allowed' });
    expect(await call(apiB, key.secret, 'no-such-model')).toEqual({ status: 403, code: 'model_not_allowed' });
    const graphql = await gql(
      apiA.url,
      'mutation($input: CompletionInput!) { createCompletion(input: $input) { id } }',
      { input: { model: DEV, messages: [{ role: 'user', content: 'hi' }] } },
      key.secret,
    );
    expect(graphql.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'model_not_allowed' });
    expect(dev.requestCount()).toBe(upstreamBefore);
    expect(await usageCount(user.accountId)).toBe(0);
    expect(await keyRow(key.id)).toMatchObject({ held: '0', spent: '0' });
    // The allowed model is served, and /v1/models lists only it for this key.
    expect((await call(apiA, key.secret, 'dev-no-cost')).status).toBe(200);
    const models = await client(apiB, key.secret).models.list();
    expect(models.data.map((model) => model.id)).toEqual(['dev-no-cost']);
    // A session, and a key without a list, call any model.
    expect((await call(apiA, user.token, DEV)).status).toBe(200);
    const open = await createKey(user, {});
    expect(open.allowedModels).toBeNull();
    expect((await call(apiA, open.secret, DEV)).status).toBe(200);
  });

  it('refuses an empty or oversized list', async () => {
    const user = await newUser(1n);
    for (const allowedModels of [[], [''], Array.from({ length: 101 }, (_, i) => `m${i}`)]) {
      const result = await gql(
        apiA.url,
        'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
        { input: { name: 'x', allowedModels } },
        user.token,
      );
      expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
  });
});
