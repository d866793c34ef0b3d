/**
 * The database is lost between a call's hold and its settlement: the upstream has answered, and neither the
 * charge nor the UNSETTLED record of it can be written. A completion's answer must then not leave (were the
 * process to die before a retry, the sweep would release its hold: a free call); the caller gets a retryable
 * 503 and, once the database is back, the call is released with nothing charged. A stream's answer has left
 * already: its charge is retried from memory and lands once the database is back. The same for a completion
 * whose hold a sweep released while it ran (its process could not extend it): nothing charged, no answer.
 *
 * The API runs in this process against the real PostgreSQL through a TCP proxy the test cuts (every
 * connection reset, new ones refused) at the moment the upstream, the real dev model over HTTP, has answered.
 */
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlFor } from '../../src/db/sql.ts';
import { type DevModelServer, startDevModelServer } from '../../src/dev-model/dev-model.server.ts';
import { applySettlement } from '../../src/modules/metering/settlement.store.ts';
import { releasedUnanswered } from '../../src/modules/metering/settlement.ts';
import { type RunningApi, startApi } from '../../src/server.ts';
import { testApiConfig } from '../support/config.ts';
import { type CuttableProxy, sql, startCuttableProxy } from '../support/faults.ts';
import { gqlData } from '../support/graphql.ts';
import { UNLIMITED_RATES } from '../support/platform.ts';
import { fundedUser } from '../support/users.ts';
import { waitFor } from '../support/wait-for.ts';

const BALANCE = 5_000_000n; // micro-USD

let database: TestDatabase;
let proxy: CuttableProxy;
let dev: DevModelServer;
let api: RunningApi;
let accountId: string;
let client: OpenAI;
/** Set by a test: the next answered call cuts the database before its settlement. */
let cutOnAnswer = false;
/** Set by a test: the next settlement finds its record released by a sweep (its hold expired meanwhile). */
let sweptBeforeSettlement = false;

beforeAll(async () => {
  database = await createTestDatabase('cm_withheld');
  const direct = new URL(database.url);
  proxy = await startCuttableProxy(`http://${direct.hostname}:${direct.port}`);
  const throughProxy = new URL(database.url);
  throughProxy.port = new URL(proxy.url).port;
  dev = await startDevModelServer();
  api = await startApi(
    testApiConfig({
      DATABASE_URL: throughProxy.toString(),
      LLM_BASE_URL: dev.baseUrl,
      METERING_RETRY_MS: '50',
      X402: 'off',
      ...UNLIMITED_RATES,
    }),
    {
      crediting: false,
      meteringFaults: {
        afterAnswer: () => {
          if (!cutOnAnswer) return;
          cutOnAnswer = false;
          proxy.cut();
        },
        beforeSettlement: async (usageId, attempt) => {
          if (!sweptBeforeSettlement || attempt !== 1) return;
          sweptBeforeSettlement = false;
          // What a replica's sweep does to a hold whose heartbeat stopped for a whole TTL: the same statement,
          // at a time the hold had expired by.
          await applySettlement(
            sqlFor(api.services.orm),
            usageId,
            releasedUnanswered('TEST_SWEPT', 'released by the test as an expired hold'),
            { expiredAt: new Date(Date.now() + 86_400_000) },
          );
        },
      },
    },
  );
  const user = await fundedUser(api, BALANCE);
  accountId = user.accountId;
  const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
    api.url,
    'mutation { createApiKey(input: { name: "withheld" }) { secret } }',
    {},
    user.token,
  );
  client = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: createApiKey.secret, maxRetries: 0 });
}, 60_000);

afterAll(async () => {
  proxy?.restore();
  await api?.close();
  await proxy?.close();
  await dev?.stop();
  await database?.drop();
});

interface Books {
  balance: bigint;
  held: bigint;
  usageEntries: number;
}

async function books(): Promise<Books> {
  const [row] = await sql<{ balance: string; held: string; entries: number }>(
    database.url,
    `select balance::text, held::text,
       (select count(*)::int from ledger_entries where account_id = a.id and reason = 'USAGE') as entries
     from accounts a where id = $1`,
    [accountId],
  );
  if (!row) throw new Error('no account');
  return { balance: BigInt(row.balance), held: BigInt(row.held), usageEntries: row.entries };
}

async function usage(requestIdOrLatest?: string) {
  const [row] = await sql<{ status: string; flags: string[]; user_price: string | null }>(
    database.url,
    `select status, flags, user_price::text from usage_records where account_id = $1
       and ($2::text is null or request_id = $2) order by created_at desc limit 1`,
    [accountId, requestIdOrLatest ?? null],
  );
  return row;
}

const request = {
  model: 'chainmeter-dev',
  messages: [{ role: 'user' as const, content: 'Is my answer withheld?' }],
  max_tokens: 16,
};

/** A completion that must be refused: a retryable 503 in OpenAI's shape, as the official client sees it. */
async function unanswered(why: string): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await client.chat.completions.create(request).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, why).toBeInstanceOf(OpenAI.APIError);
  const refusal = error as InstanceType<typeof OpenAI.APIError>;
  expect(refusal.status).toBe(503);
  expect(refusal.code).toBe('service_unavailable');
  expect(refusal.headers?.get('retry-after')).toBe('1');
  return refusal;
}

describe('the database lost between the hold and the settlement', () => {
  it('a completion is not answered (503, retryable), then released with nothing charged', async () => {
    const before = await books();
    cutOnAnswer = true;
    const refusal = await unanswered('the answer must not leave without its charge on record');
    expect(refusal.message).toMatch(/nothing was charged/);

    proxy.restore();
    await waitFor(
      'the withheld call to be released',
      async () => (await usage())?.status === 'RELEASED',
      15_000,
    );
    const row = await usage();
    expect(row?.flags).toEqual(['ANSWER_WITHHELD']);
    expect(row?.user_price).toBe('0');
    expect(await books()).toEqual({ ...before, held: 0n });
  }, 60_000);

  it('a stream, already answered, is charged once the database is back', async () => {
    const before = await books();
    cutOnAnswer = true;
    const stream = await client.chat.completions.create({ ...request, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text.length).toBeGreaterThan(0);

    proxy.restore();
    await waitFor('the stream to be billed', async () => (await usage())?.status === 'BILLED', 15_000);
    const row = await usage();
    const price = BigInt(row?.user_price ?? '0');
    expect(price).toBeGreaterThan(0n);
    expect(await books()).toEqual({
      balance: before.balance - price,
      held: 0n,
      usageEntries: before.usageEntries + 1,
    });
  }, 60_000);

  it('a completion whose hold a sweep released while it ran is not answered: nothing was charged', async () => {
    const before = await books();
    sweptBeforeSettlement = true;
    const refusal = await unanswered('an answer whose call is released must not leave');
    expect(refusal.message).toMatch(/released before it was answered.*nothing was charged/);
    const row = await usage();
    expect(row?.status).toBe('RELEASED');
    expect(row?.flags).toEqual(['TEST_SWEPT']);
    expect(await books()).toEqual({ ...before, held: 0n });
  }, 60_000);

  it('with the database back, a completion is answered and charged as usual', async () => {
    const before = await books();
    const completion = await client.chat.completions.create(request);
    expect(completion.choices[0]?.message.content).toBeTruthy();
    const row = await usage();
    expect(row?.status).toBe('BILLED');
    expect(await books()).toEqual({
      balance: before.balance - BigInt(row?.user_price ?? '0'),
      held: 0n,
      usageEntries: before.usageEntries + 1,
    });
  }, 60_000);
});
