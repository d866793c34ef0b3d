/**
 * A call that runs longer than METERING_HOLD_TTL_MS (a long stream) keeps its hold and is billed: the
 * process that placed the hold refreshes it while the call runs, so neither its own expiry loop nor
 * another replica's takes it for the hold of a crashed process. Two API replicas on one PostgreSQL, the
 * real dev model streaming slowly, the official `openai` client.
 */
import OpenAI from 'openai';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../scripts/src/devnet/postgres.ts';
import { loadConfig } from '../src/env.ts';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import { type DevModelServer, startDevModelServer } from '../src/modules/metering/dev-model.server.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { gqlData, signIn } from './support/graphql.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { UNLIMITED_RATES } from './support/platform.ts';
import { waitFor } from './support/wait-for.ts';

const HOLD_TTL_MS = 1_000;
const CHUNK_DELAY_MS = 50;

let database: TestDatabase;
let dev: DevModelServer;
let replicaA: RunningApi;
let replicaB: RunningApi;

function config() {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    PUBLIC_ORIGIN: 'http://localhost:4000',
    CHAIN_ID: '31337',
    USDC_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
    DATABASE_URL: database.url,
    LOG_LEVEL: 'silent',
    LLM_BASE_URL: dev.baseUrl,
    LLM_TIMEOUT_MS: '900',
    METERING_HOLD_TTL_MS: String(HOLD_TTL_MS),
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
  // About 60 chunks, 50 ms apart: some 3 s, three times the TTL; each gap is far below LLM_TIMEOUT_MS.
  const words = Array.from({ length: 48 }, (_, i) => `word${i}`).join(' ');
  const started = performance.now();
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
    if (!checkedMidway && performance.now() - started > 2 * HOLD_TTL_MS) {
      checkedMidway = true;
      // Twice the TTL into the call: still held, its expiry pushed into the future.
      const [row] = await sql<{ status: string; future: boolean }>(
        'select status, hold_expires_at > now() as future from usage_records where account_id = ?',
        [me.id],
      );
      expect(row).toEqual({ status: 'HELD', future: true });
      const [account] = await sql<{ held: string }>('select held::text as held from accounts where id = ?', [
        me.id,
      ]);
      expect(BigInt(account!.held)).toBeGreaterThan(0n);
    }
  }
  expect(checkedMidway).toBe(true);
  expect(performance.now() - started).toBeGreaterThan(2 * HOLD_TTL_MS);
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
