/**
 * The low-balance alert end to end: `setLowBalanceAlert` through GraphQL, charges made by a burst of metered
 * calls (the official `openai` client against the real dev model server, on two API replicas), adjustments,
 * and the webhook outbox read straight from PostgreSQL (the deliveries themselves are the webhooks module's
 * tests). BALANCE_LOW must be written once per downward crossing, however many charges race past it.
 *
 * Figures by hand: a call with the one message "burst" and `max_tokens: 16` holds 21 micro-USD and costs 17
 * (the dev model's $0.15 / $0.60 per million tokens at markup 1.5; see key-budgets.test.ts).
 */
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import OpenAI from 'openai';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevModelServer, startDevModelServer } from '../src/dev-model/dev-model.server.ts';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData, signIn } from './support/graphql.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { UNLIMITED_RATES } from './support/platform.ts';

let database: TestDatabase;
let dev: DevModelServer;
let apiA: RunningApi;
let apiB: RunningApi;

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
  database = await createTestDatabase('cm_low_balance');
  dev = await startDevModelServer();
  apiA = await startApi(config(), { crediting: false });
  apiB = await startApi(config(), { crediting: false });
}, 60_000);

afterAll(async () => {
  await apiA?.close();
  await apiB?.close();
  await dev?.stop();
  await database?.drop();
});

interface User {
  token: string;
  accountId: string;
}

const sql = <T>(text: string, params: unknown[] = []) =>
  apiA.services.orm.em.fork().execute<T[]>(text, params);

async function newUser(balance: bigint): Promise<User> {
  const token = await signIn(apiA.url, privateKeyToAccount(generatePrivateKey()), 31337);
  const { me } = await gqlData<{ me: { id: string } }>(apiA.url, '{ me { id } }', {}, token);
  await adjust(me.id, balance);
  // Every event type, written straight to its table: what is under test is the outbox.
  await sql(
    `insert into webhook_endpoints (account_id, url, secret, events)
     values (?, 'https://example.com/hook', 'whsec_test', '{BALANCE_LOW,KEY_LIMIT_REACHED}')`,
    [me.id],
  );
  return { token, accountId: me.id };
}

/** An ADJUSTMENT, written by the same ledger statement as crediting and reorg reversals. */
async function adjust(accountId: string, amount: bigint) {
  await appendLedgerEntry(apiA.services.orm.em.fork(), {
    accountId,
    amount,
    reason: 'ADJUSTMENT',
    referenceId: 'test',
  });
}

async function setAlert(user: User, threshold: string | null) {
  return gqlData<{ setLowBalanceAlert: { balance: string; lowBalanceThreshold: string | null } }>(
    apiA.url,
    'mutation($t: Credits) { setLowBalanceAlert(threshold: $t) { balance lowBalanceThreshold } }',
    { t: threshold },
    user.token,
  );
}

async function lowEvents(user: User): Promise<unknown[]> {
  const rows = await sql<{ data: unknown }>(
    `select data from webhook_deliveries where account_id = ? and event_type = 'BALANCE_LOW' order by created_at, id`,
    [user.accountId],
  );
  return rows.map((row) => (typeof row.data === 'string' ? JSON.parse(row.data) : row.data));
}

async function balance(user: User): Promise<bigint> {
  const [row] = await sql<{ balance: string }>('select balance::text as balance from accounts where id = ?', [
    user.accountId,
  ]);
  return BigInt(row?.balance ?? -1);
}

/** `n` parallel "burst" calls spread over both replicas; how many were served. */
async function burst(user: User, n: number): Promise<number> {
  const statuses = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new OpenAI({
        baseURL: `${(i % 2 ? apiA : apiB).url}/v1`,
        apiKey: user.token,
        maxRetries: 0,
      }).chat.completions
        .create({ model: 'chainmeter-dev', messages: [{ role: 'user', content: 'burst' }], max_tokens: 16 })
        .then(
          () => 200,
          (error: unknown) => (error instanceof OpenAI.APIError ? (error.status ?? 0) : 0),
        ),
    ),
  );
  await apiA.services.metering.whenIdle();
  await apiB.services.metering.whenIdle();
  return statuses.filter((status) => status === 200).length;
}

describe('BALANCE_LOW', () => {
  it('fires exactly once when a burst of charges crosses the threshold, and again after a deposit re-arms it', async () => {
    // 1,000 micro-USD, threshold 0.5 credits = 500: the balance crosses it after 30 charges of 17 (490).
    const user = await newUser(1_000n);
    expect((await setAlert(user, '0.5')).setLowBalanceAlert).toEqual({
      balance: '1',
      lowBalanceThreshold: '0.5',
    });
    expect(await lowEvents(user)).toEqual([]);
    const served = await burst(user, 40);
    expect(served).toBe(40);
    expect(await balance(user)).toBe(1_000n - 40n * 17n); // 320
    expect(await lowEvents(user)).toHaveLength(1);
    const [first] = (await lowEvents(user)) as { balance: string; threshold: string }[];
    expect(first?.threshold).toBe('0.5');
    // The balance right after the crossing charge: somewhere in 483..490 micro-USD (a batch may settle several).
    expect(Number(first?.balance)).toBeLessThan(0.5);
    expect(Number(first?.balance)).toBeGreaterThanOrEqual(0.32);

    // More charges below the threshold fire nothing.
    await burst(user, 6);
    expect(await lowEvents(user)).toHaveLength(1);
    // A deposit back to the threshold exactly re-arms it (not below any more)...
    await adjust(user.accountId, 500n - (await balance(user)));
    expect(await balance(user)).toBe(500n);
    expect(await lowEvents(user)).toHaveLength(1);
    // ...and the next charge below fires again, once.
    await burst(user, 3);
    expect(await lowEvents(user)).toEqual([
      first,
      { balance: expect.stringMatching(/^0\.4(83|66|49)$/), threshold: '0.5' },
    ]);
    expect((await checkLedgerInvariants(apiA.services.orm.em.fork())).problems).toEqual([]);
  });

  it('adjustments and reorg-style reversals cross it too; off means off; a threshold above the balance fires at once', async () => {
    const user = await newUser(10_000n);
    await setAlert(user, '5');
    await adjust(user.accountId, -4_000n); // 6,000: above
    expect(await lowEvents(user)).toEqual([]);
    await adjust(user.accountId, -1_001n); // 4,999: below
    expect(await lowEvents(user)).toEqual([{ balance: '4.999', threshold: '5' }]);
    await adjust(user.accountId, 2_000n);
    await adjust(user.accountId, -3_000n); // 3,999: crossed again
    expect(await lowEvents(user)).toHaveLength(2);
    // Off: nothing fires.
    expect((await setAlert(user, null)).setLowBalanceAlert.lowBalanceThreshold).toBeNull();
    await adjust(user.accountId, 5_000n);
    await adjust(user.accountId, -5_000n);
    expect(await lowEvents(user)).toHaveLength(2);
    // A threshold set above the balance (3,999) is a crossing: it fires now, once.
    await setAlert(user, '10');
    expect((await lowEvents(user)).at(-1)).toEqual({ balance: '3.999', threshold: '10' });
    await setAlert(user, '20');
    await adjust(user.accountId, -1n);
    expect(await lowEvents(user)).toHaveLength(3);
  });

  it('refuses a threshold of zero or less, and needs a signed-in caller', async () => {
    const user = await newUser(1n);
    for (const threshold of ['0', '-1']) {
      const result = await gql(
        apiA.url,
        'mutation($t: Credits) { setLowBalanceAlert(threshold: $t) { id } }',
        { t: threshold },
        user.token,
      );
      expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    const anonymous = await gql(apiA.url, 'mutation { setLowBalanceAlert(threshold: "1") { id } }');
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
