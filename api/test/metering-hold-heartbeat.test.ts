/**
 * A call that runs longer than METERING_HOLD_TTL_MS (a long stream) keeps its hold and is billed: the
 * process that placed the hold refreshes it while the call runs, so neither its own expiry loop nor
 * another replica's takes it for the hold of a crashed process. Two API replicas on one PostgreSQL, the
 * real dev model streaming slowly, the official `openai` client.
 */

import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import OpenAI from 'openai';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type DevModelServer, startDevModelServer } from '../src/dev-model/dev-model.server.ts';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gqlData, signIn } from './support/graphql.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { UNLIMITED_RATES } from './support/platform.ts';
import { waitFor } from './support/wait-for.ts';

/**
 * The heartbeat beats every 50 ms (METERING_STREAM_PROGRESS_MS, shorter than a third of the TTL): a
 * running call loses its hold only if its process does not get to run for about 3 s, far more than a
 * loaded machine ever starves it, while the stream (over 50 chunks, 100 ms apart at the least, so 5 s or
 * more) is sure to outlive the TTL it was placed with, whatever the machine's speed.
 */
const HOLD_TTL_MS = 3_000;
const PROGRESS_MS = 50;
const CHUNK_DELAY_MS = 100;

let database: TestDatabase;
let dev: DevModelServer;
let replicaA: RunningApi;
let replicaB: RunningApi;

function config() {
  return testApiConfig({
    DATABASE_URL: database.url,
    LLM_BASE_URL: dev.baseUrl,
    // The longest silence between chunks (100 ms here); it must stay under the TTL.
    LLM_TIMEOUT_MS: String(HOLD_TTL_MS - 100),
    METERING_HOLD_TTL_MS: String(HOLD_TTL_MS),
    METERING_STREAM_PROGRESS_MS: String(PROGRESS_MS),
    // Both replicas look for expired holds every 20 ms.
    METERING_RETRY_MS: '20',
    ...UNLIMITED_RATES,
  });
}

beforeAll(async () => {
  database = await createTestDatabase('cm_hold_heartbeat');
  dev = await startDevModelServer({ chunkDelayMs: CHUNK_DELAY_MS });
  replicaA = await startApi(config(), { crediting: false });
  replicaB = await startApi(config(), { crediting: false });
});

afterAll(async () => {
  await replicaA?.close();
  await replicaB?.close();
  await dev?.stop();
  await database?.drop();
});

async function sql<T>(query: string, params: unknown[] = []): Promise<T[]> {
  return replicaB.services.orm.em.fork().execute<T[]>(query, params);
}

it('a stream that outlives the hold TTL keeps its hold on every replica and is billed', async () => {
  const token = await signIn(replicaA.url, privateKeyToAccount(generatePrivateKey()), 31337);
  const { me } = await gqlData<{ me: { id: string } }>(replicaA.url, '{ me { id } }', {}, token);
  await appendLedgerEntry(replicaA.services.orm.em.fork(), {
    accountId: me.id,
    amount: 1_000_000n,
    reason: 'ADJUSTMENT',
    referenceId: 'test-setup',
  });
  const client = new OpenAI({ baseURL: `${replicaA.url}/v1`, apiKey: token, maxRetries: 0 });
  // "Echo", ":", the first 48 tokens of the message and 4 to 11 filler words: over 50 chunks, 100 ms apart.
  const words = Array.from({ length: 48 }, (_, i) => `word${i}`).join(' ');
  const stream = await client.chat.completions.create({
    model: 'chainmeter-dev',
    messages: [{ role: 'user', content: words }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let content = '';
  let usage: OpenAI.CompletionUsage | undefined;
  let checkedMidway = false;
  for await (const chunk of stream) {
    content += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
    if (checkedMidway) continue;
    // The database's clock says when the call has outlived the TTL its hold was placed with: from then on
    // only the heartbeat keeps it, and both replicas' expiry loops (every 20 ms) would have taken it.
    const [row] = await sql<{ status: string; future: boolean; outlived: boolean }>(
      `select status, hold_expires_at > now() as future,
         now() > created_at + make_interval(secs => ?) + interval '100 milliseconds' as outlived
         from usage_records where account_id = ?`,
      [HOLD_TTL_MS / 1000, me.id],
    );
    if (row?.outlived) {
      checkedMidway = true;
      // Still held, its expiry pushed into the future.
      expect({ status: row.status, future: row.future }).toEqual({ status: 'HELD', future: true });
      const [account] = await sql<{ held: string }>('select held::text as held from accounts where id = ?', [
        me.id,
      ]);
      expect(BigInt(account!.held)).toBeGreaterThan(0n);
    }
  }
  expect(checkedMidway, 'the stream outlived the TTL of its hold').toBe(true);
  expect(content.length).toBeGreaterThan(0);
  expect(usage?.completion_tokens).toBeGreaterThan(0);

  await waitFor('the stream to be settled', async () => {
    const [row] = await sql<{ status: string }>('select status from usage_records where account_id = ?', [
      me.id,
    ]);
    return row?.status === 'BILLED';
  });
  const rows = await sql<{ status: string; flags: string[]; user_price: string; completion_tokens: number }>(
    'select status, flags, user_price::text as user_price, completion_tokens from usage_records where account_id = ?',
    [me.id],
  );
  expect(rows).toHaveLength(1);
  expect(rows[0]?.flags).not.toContain('HOLD_EXPIRED');
  expect(rows[0]?.completion_tokens).toBe(usage?.completion_tokens);
  const entries = await sql<{ amount: string }>(
    `select amount::text as amount from ledger_entries where account_id = ? and reason = 'USAGE'`,
    [me.id],
  );
  expect(entries.map((entry) => BigInt(entry.amount))).toEqual([-BigInt(rows[0]!.user_price)]);
  const [account] = await sql<{ held: string; balance: string }>(
    'select held::text as held, balance::text as balance from accounts where id = ?',
    [me.id],
  );
  expect(account).toEqual({ held: '0', balance: (1_000_000n - BigInt(rows[0]!.user_price)).toString() });
  expect((await checkLedgerInvariants(replicaB.services.orm.em.fork())).problems).toEqual([]);
});
