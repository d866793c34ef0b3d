/**
 * kill -9 of a real API process (`node api/src/main.ts`) at a chosen point inside a money path: the test holds
 * a row lock (an account's row, which is its ledger head) so that the API is blocked inside the very
 * statement it wants to interrupt, sees it waiting in `pg_stat_activity`, kills the process, then lets go.
 * No sleeps: each kill lands where it is aimed. After each restart the books are checked against figures
 * worked out here from the amounts chosen: balance = credited deposits - charged usage - reversed, holds 0,
 * every transfer credited once, every reversal once, every settlement once. Real PostgreSQL, anvil and
 * Ponder, and a real loopback OpenAI-speaking upstream (`hostile-upstream.ts`) whose answers wait until the
 * test lets them go; each reports 3 prompt and 10 completion tokens, 3 x 1 + 10 x 2 = 23 micro-USD at its
 * prices, so every answered call is charged 46 at the default markup of 2.
 *
 * `crash-recovery.test.ts` kills at random moments of steady flows and at each `CHAINMETER_CRASH_AT` step
 * of one call; this file kills inside a deep reorg's reversals, inside a crediting backlog's transaction,
 * with calls waiting at the upstream, and inside a group of settlements written together.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PONDER_FINALITY_BLOCKS } from '@chainmeter/schema';
import type { DevAccount } from '@chainmeter/testkit/accounts';
import { mineBlocks, reorg, setAutomine } from '@chainmeter/testkit/anvil';
import { mintUsdc, submitUsdcTransfer } from '@chainmeter/testkit/token';
import pg from 'pg';
import { createPublicClient, type Hash, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIndexerClient } from '../../src/modules/deposits/indexer.client.ts';
import { crashApi, expectLedgerSound, fundedWallet, sql } from '../support/faults.ts';
import { signIn } from '../support/graphql.ts';
import {
  chunk,
  completion,
  HOSTILE_MODEL,
  type HostileUpstream,
  startHostileUpstream,
} from '../support/hostile-upstream.ts';
import {
  type ApiProcess,
  devPayer,
  killableMeteringEnv,
  type Platform,
  spawnApiProcess,
  startPlatform,
} from '../support/platform.ts';
import { waitFor } from '../support/wait-for.ts';

const CONFIRMATIONS = 2;
/** What one answered call is charged: (3 prompt x 1 + 10 completion x 2) micro-USD x markup 2. */
const CALL_PRICE = 46n;
/** The usage every answer reports. */
const USAGE = { prompt_tokens: 3, completion_tokens: 10, total_tokens: 13 };
const AUDIT_CLI = fileURLToPath(new URL('../../../scripts/src/audit.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

let platform: Platform;
let upstream: HostileUpstream;
let dbUrl: string;
let api: ApiProcess | undefined;

function apiEnv(): Record<string, string> {
  return platform.apiEnv({
    LOG_LEVEL: process.env.CRASH_MONEY_LOG ?? 'fatal',
    LLM_BASE_URL: upstream.baseUrl,
    ...killableMeteringEnv(5_000),
  });
}

beforeAll(async () => {
  platform = await startPlatform({ confirmations: CONFIRMATIONS });
  if (!platform.database) throw new Error('the crash tests need PostgreSQL');
  dbUrl = platform.database.url;
  upstream = await startHostileUpstream();
  const rpc = platform.anvil.rpcUrl;
  for (let i = 0; i < 7; i++) await mintUsdc(rpc, platform.token, devPayer(i).address, 10_000_000n);
  // From here on, blocks are mined by the test only: each payment lands in the block it is meant for.
  await setAutomine(rpc, false);
}, 120_000);

afterAll(async () => {
  if (api) await crashApi(api).catch(() => {});
  await upstream?.stop();
  await platform?.close();
});

async function kill(): Promise<void> {
  if (api) await crashApi(api);
  api = undefined;
}

/** Transfers to the treasury, all mined in one new block (one per payer: their nonces are the pool's). */
async function payInOneBlock(payments: [DevAccount, bigint][]): Promise<Hash[]> {
  const rpc = platform.anvil.rpcUrl;
  const hashes: Hash[] = [];
  for (const [payer, amount] of payments) {
    hashes.push(await submitUsdcTransfer(rpc, platform.token, payer, platform.treasury, amount));
  }
  await mineBlocks(rpc, 1);
  return hashes;
}

/** A test's own transaction holding the row lock of an account (its ledger head) until `release`. */
async function lockAccount(accountId: string): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: dbUrl });
  client.on('error', () => {}); // the database is dropped under it when a test fails holding it
  await client.connect();
  await client.query('begin');
  const { rowCount } = await client.query('select 1 from accounts where id = $1 for update', [accountId]);
  if (rowCount !== 1) throw new Error(`no account ${accountId}`);
  return {
    async release() {
      await client.query('rollback');
      await client.end();
    },
  };
}

/** Waits until a session of the API's database waits for a lock inside a statement containing `fragment`. */
async function blockedIn(fragment: string): Promise<number> {
  return waitFor(
    `a statement with "${fragment}" to wait for a lock`,
    async () => {
      const [row] = await sql<{ pid: number }>(
        dbUrl,
        `select pid from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and position($1 in query) > 0`,
        [fragment],
      );
      if (row) return row.pid;
      const waiting = await sql<{ query: string }>(
        dbUrl,
        "select query from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
      );
      throw new Error(`waiting for locks: ${JSON.stringify(waiting.map((w) => w.query))}`);
    },
    30_000,
  );
}

/** Waits until no session of the killed process is left on the database (its backends notice, and end). */
async function deadSessionsGone(): Promise<void> {
  await waitFor(
    'the killed process to have no session left',
    async () => {
      const [row] = await sql<{ n: number }>(
        dbUrl,
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
      );
      return row?.n === 0;
    },
    30_000,
  );
}

async function accountIdOf(wallet: string): Promise<string> {
  const [row] = await sql<{ id: string }>(dbUrl, 'select id from accounts where lower(wallet_address) = $1', [
    wallet.toLowerCase(),
  ]);
  if (!row) throw new Error(`no account for ${wallet}`);
  return row.id;
}

interface Books {
  balance: bigint;
  held: bigint;
  debt: bigint;
}

async function books(accountId: string): Promise<Books> {
  const [row] = await sql<{ balance: string; held: string; debt: string }>(
    dbUrl,
    'select balance::text, held::text, debt::text from accounts where id = $1',
    [accountId],
  );
  if (!row) throw new Error(`no account ${accountId}`);
  return { balance: BigInt(row.balance), held: BigInt(row.held), debt: BigInt(row.debt) };
}

/** Each transfer's deposit: its status and the ledger entries that name it (DEPOSIT and ADJUSTMENTs). */
async function depositsOf(hashes: readonly Hash[]) {
  return sql<{ tx_hash: string; status: string; amount: string; deposits: string; adjustments: string[] }>(
    dbUrl,
    `select d.tx_hash, d.status, d.amount::text as amount,
       (select count(*) from ledger_entries e where e.deposit_id = d.id and e.reason = 'DEPOSIT')::text as deposits,
       array(select e.amount::text from ledger_entries e
              where e.reference_id = d.id::text and e.reason = 'ADJUSTMENT' order by e.seq) as adjustments
       from deposits d where d.tx_hash = any($1::text[]) order by d.block_number, d.log_index`,
    [hashes.map((h) => h.toLowerCase())],
  );
}

async function creditedCount(hashes: readonly Hash[]): Promise<number> {
  const [row] = await sql<{ n: number }>(
    dbUrl,
    "select count(*)::int as n from deposits where status = 'CREDITED' and tx_hash = any($1::text[])",
    [hashes.map((h) => h.toLowerCase())],
  );
  return row?.n ?? 0;
}

/** A new wallet signed in, credited `amount` micro-USD by an ADJUSTMENT (the ledger's own statement). */
function newFundedWallet(amount: bigint): Promise<{ accountId: string; token: string }> {
  if (!api) throw new Error('no API');
  return fundedWallet(api.url, dbUrl, platform.chainId, amount, 'crash-money-setup');
}

interface Call {
  /** The text of its message, by which the upstream knows it. */
  marker: string;
  /** The request id, once the whole answer arrived; null when the call failed (the process died under it). */
  answered: Promise<string | null>;
  done: boolean;
  /** Lets the upstream answer (a call made `held`). */
  release(): void;
}

let calls = 0;

/**
 * One OpenAI-compatible call through `url` with a session token; `held`: its answer waits at the upstream
 * until `release`.
 */
function call(url: string, token: string, streamed: boolean, { held = false } = {}): Call {
  const marker = `cm-${++calls}`;
  let release = () => {};
  const gate = held
    ? new Promise<void>((resolve) => {
        release = resolve;
      })
    : undefined;
  upstream.script(
    marker,
    streamed
      ? {
          gate,
          events: [
            chunk({ role: 'assistant', content: 'Gated answer.' }),
            chunk({}, { finish_reason: 'stop' }),
            chunk(null, { extra: { choices: [], usage: USAGE } }),
          ],
        }
      : { gate, body: completion([{ content: 'Gated answer.' }], { usage: USAGE }) },
  );
  const state: Call = { marker, done: false, answered: Promise.resolve(null), release: () => release() };
  state.answered = (async () => {
    try {
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          model: HOSTILE_MODEL,
          messages: [{ role: 'user', content: marker }],
          max_tokens: 10,
          stream: streamed,
          ...(streamed ? { stream_options: { include_usage: true } } : {}),
        }),
      });
      const requestId = response.headers.get('x-request-id');
      const text = await response.text();
      if (response.status !== 200 || !requestId) return null;
      const whole = streamed ? text.includes('data: [DONE]') : text.includes('Gated answer.');
      return whole ? requestId : null;
    } catch {
      return null;
    } finally {
      state.done = true;
    }
  })();
  return state;
}

/** Waits until each of `held` is waiting at the upstream (its hold placed). */
async function atUpstream(what: string, held: readonly Call[]): Promise<void> {
  await waitFor(what, () => held.every((c) => upstream.received(c.marker).length === 1));
}

interface UsageRow {
  id: string;
  account_id: string;
  request_id: string;
  status: string;
  user_price: string;
  flags: string[];
  charged: string[];
}

async function usageOf(accountIds: string[]): Promise<UsageRow[]> {
  return sql<UsageRow>(
    dbUrl,
    `select u.id, u.account_id, u.request_id, u.status, u.user_price::text as user_price, u.flags,
       array(select e.amount::text from ledger_entries e where e.reference_id = u.id::text and e.reason = 'USAGE')
         as charged
       from usage_records u where u.account_id = any($1::uuid[]) order by u.created_at`,
    [accountIds],
  );
}

async function openCalls(accountIds: string[]): Promise<number> {
  const [row] = await sql<{ n: number }>(
    dbUrl,
    `select count(*)::int as n from usage_records
      where status in ('HELD', 'UNSETTLED') and account_id = any($1::uuid[])`,
    [accountIds],
  );
  return row?.n ?? 0;
}

/** The audit CLI (`npm run audit`) as a real process over the database: its exit code and JSON report. */
function runAudit(): Promise<{
  code: number | null;
  report: { consistent: boolean; discrepancies: unknown[] };
}> {
  const args = [
    AUDIT_CLI,
    '--quiet',
    '--rpc',
    platform.anvil.rpcUrl,
    '--database',
    dbUrl,
    '--token',
    platform.token,
    '--treasury',
    platform.treasury,
    '--confirmations',
    String(CONFIRMATIONS),
    '--format',
    'json',
  ];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number }).code ?? null) : 0;
      try {
        resolve({ code, report: JSON.parse(stdout) });
      } catch {
        reject(new Error(`audit exited ${code}: ${stderr}`));
      }
    });
  });
}

describe('kill -9 inside a crediting transaction of a backlog', () => {
  it('credits every confirmed transfer exactly once after the restart', async () => {
    const payers = [0, 1, 2, 3].map(devPayer);
    api = await spawnApiProcess(apiEnv());
    const first = await payInOneBlock(payers.map((p, i) => [p, 10_000n + BigInt(i)]));
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS);
    await waitFor(
      'the first payments to be credited',
      async () => (await creditedCount(first)) === 4,
      30_000,
    );
    await kill();

    // A backlog builds while no API runs: 6 blocks of 4 payments, all confirmed.
    const backlog: Hash[] = [];
    const amounts = new Map<string, bigint>(payers.map((p, i) => [p.address, 10_000n + BigInt(i)]));
    for (let block = 1; block <= 6; block++) {
      const payments = payers.map((p, i): [DevAccount, bigint] => [p, 1_000n * BigInt(block) + BigInt(i)]);
      backlog.push(...(await payInOneBlock(payments)));
      for (const [p, amount] of payments) amounts.set(p.address, (amounts.get(p.address) ?? 0n) + amount);
    }
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS);

    // The last payer's account is locked by the test: the API's crediting transaction waits for it after
    // it has locked the other accounts of the batch. Killed there.
    const lock = await lockAccount(await accountIdOf(payers[3]?.address as string));
    api = await spawnApiProcess(apiEnv());
    await blockedIn('from accounts where wallet_address = any(');
    await kill();
    await lock.release();
    await deadSessionsGone();
    expect(await creditedCount(backlog)).toBe(0);
    await expectLedgerSound(dbUrl);

    // More payments while it is down, then the restart.
    const last = await payInOneBlock(payers.map((p, i) => [p, 100n + BigInt(i)]));
    for (const [i, p] of payers.entries())
      amounts.set(p.address, (amounts.get(p.address) ?? 0n) + 100n + BigInt(i));
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS);
    api = await spawnApiProcess(apiEnv());
    const all = [...first, ...backlog, ...last];
    await waitFor(
      'every payment to be credited',
      async () => (await creditedCount(all)) === all.length,
      60_000,
    );

    const deposits = await depositsOf(all);
    expect(deposits).toHaveLength(32);
    for (const deposit of deposits)
      expect([deposit.status, deposit.deposits, deposit.adjustments]).toEqual(['CREDITED', '1', []]);
    // By hand: payer i paid 10,000 + i, then 1,000 x block + i in each of the 6 blocks, then 100 + i.
    for (const [i, payer] of payers.entries()) {
      const expected = 10_000n + 21_000n + 100n + 8n * BigInt(i);
      expect(amounts.get(payer.address)).toBe(expected);
      expect(await books(await accountIdOf(payer.address))).toEqual({
        balance: expected,
        held: 0n,
        debt: 0n,
      });
    }
    await expectLedgerSound(dbUrl);
  }, 120_000);
});

describe('kill -9 while a deep reorg is reversed', () => {
  it('reverses each removed credit exactly once, with the right debts, and audits clean', async () => {
    const rpc = platform.anvil.rpcUrl;
    const [a, b, c] = [devPayer(4), devPayer(5), devPayer(6)];
    api ??= await spawnApiProcess(apiEnv());
    // Below the fork: these stay on chain.
    const stable = await payInOneBlock([
      [a, 1_000n],
      [b, 100n],
      [c, 100n],
    ]);
    // The four blocks a reorg will replace: four credits it removes.
    const doomed = [
      ...(await payInOneBlock([
        [a, 2_000n],
        [b, 300n],
        [c, 500n],
      ])),
      ...(await payInOneBlock([[c, 700n]])),
    ];
    await mineBlocks(rpc, CONFIRMATIONS);
    await waitFor(
      'every payment to be credited',
      async () => (await creditedCount([...stable, ...doomed])) === 7,
      30_000,
    );
    const [accountA, accountB, accountC] = [
      await accountIdOf(a.address),
      await accountIdOf(b.address),
      await accountIdOf(c.address),
    ];

    // Spent before the reorg, by real calls: A twice, B three times, 46 micro-USD each.
    const tokens = new Map<string, string>();
    for (const [payer, times] of [
      [a, 2],
      [b, 3],
    ] as const) {
      const token = await signIn(api.url, payer, platform.chainId);
      tokens.set(payer.address, token);
      for (let i = 0; i < times; i++) expect(await call(api.url, token, false).answered).not.toBeNull();
    }
    expect(await books(accountA)).toEqual({ balance: 3_000n - 2n * CALL_PRICE, held: 0n, debt: 0n });
    expect(await books(accountB)).toEqual({ balance: 400n - 3n * CALL_PRICE, held: 0n, debt: 0n });
    expect(await books(accountC)).toEqual({ balance: 1_300n, held: 0n, debt: 0n });
    // B has one more call waiting at the upstream when its process dies: its hold stays on B's account until
    // it expires (nothing is charged for it), whether the reversal comes before that or after.
    const inFlight = call(api.url, tokens.get(b.address) as string, false, { held: true });
    await atUpstream("B's last call at the upstream", [inFlight]);
    expect((await books(accountB)).held).toBeGreaterThan(0n);

    // Every API is down (a deploy, a crash) when a reorg 4 blocks deep removes the four credits; the chain
    // then goes on past Ponder's window, and A pays 4,000 more, confirmed.
    await kill();
    inFlight.release(); // to a process that is gone
    expect(await inFlight.answered).toBeNull();
    await reorg(rpc, 4);
    await mineBlocks(rpc, PONDER_FINALITY_BLOCKS + 5);
    const newer = await payInOneBlock([[a, 4_000n]]);
    await mineBlocks(rpc, CONFIRMATIONS);
    const chainHead = await createPublicClient({ transport: http(rpc) }).getBlockNumber({ cacheTime: 0 });
    const indexer = createIndexerClient(platform.indexer.url);
    await waitFor(
      'the indexer to catch up',
      async () => (await indexer.head()).blockNumber === chainHead,
      30_000,
    );

    // C's account is locked by the test. The API that comes back credits A's new payment (its own
    // transaction), then reverses the removed credits (one transaction, in chain order): A's and B's are
    // taken back, then it waits for C's account. Killed there.
    const lock = await lockAccount(accountC);
    api = await spawnApiProcess(apiEnv());
    await blockedIn('ledger_head from accounts where id =');
    expect(await creditedCount(newer)).toBe(1);
    await kill();
    await lock.release();
    await deadSessionsGone();
    // Nothing of the reversal stands: all or nothing.
    for (const deposit of await depositsOf(doomed)) {
      expect([deposit.status, deposit.adjustments]).toEqual(['CREDITED', []]);
    }
    expect((await books(accountA)).balance).toBe(7_000n - 2n * CALL_PRICE);
    await expectLedgerSound(dbUrl);

    api = await spawnApiProcess(apiEnv());
    await waitFor(
      'the four removed credits to be reversed',
      async () => (await depositsOf(doomed)).every((d) => d.status === 'REORGED'),
      30_000,
    );
    // By hand. A: 1,000 + 2,000 + 4,000 - 92 spent - 2,000 reversed. B: 100 + 300 - 138 spent leaves 262 of
    // the 300 to take back; 38 is owed. (A reversal while the dead call's hold was still on B takes what was
    // not held, and the rest once the hold is released.) C: 100 + 500 + 700 - 1,200 reversed.
    await waitFor(
      "B's hold released and the reversal complete",
      async () => (await books(accountB)).held === 0n && (await books(accountB)).debt === 38n,
      30_000,
    );
    expect(await books(accountA)).toEqual({ balance: 4_908n, held: 0n, debt: 0n });
    expect(await books(accountB)).toEqual({ balance: 0n, held: 0n, debt: 38n });
    expect(await books(accountC)).toEqual({ balance: 100n, held: 0n, debt: 0n });
    const sum = (amounts: string[]) => amounts.reduce((total, amount) => total + BigInt(amount), 0n);
    expect((await depositsOf(doomed)).map((d) => [d.amount, d.deposits, sum(d.adjustments)])).toEqual([
      ['2000', '1', -2_000n],
      ['300', '1', -262n],
      ['500', '1', -500n],
      ['700', '1', -700n],
    ]);
    expect((await depositsOf(doomed)).map((d) => d.adjustments.length)).toEqual([
      1,
      expect.any(Number),
      1,
      1,
    ]);

    // B pays again after the restart: the debt is paid first, from this credit.
    const later = await payInOneBlock([[b, 500n]]);
    await mineBlocks(rpc, CONFIRMATIONS);
    await waitFor('the new payment to be credited', async () => (await creditedCount(later)) === 1, 30_000);
    // B: 100 + 300 + 500 credited - 138 spent - 300 reversed (262 taken back + 38 of debt paid).
    expect(await books(accountB)).toEqual({ balance: 462n, held: 0n, debt: 0n });
    const adjustmentsB = (await depositsOf(doomed))[1]?.adjustments ?? [];
    expect([sum(adjustmentsB), adjustmentsB.at(-1)]).toEqual([-300n, '-38']);
    const usage = await usageOf([accountA, accountB]);
    expect(usage.map((u) => [u.status, u.charged])).toEqual([
      ...Array(5).fill(['BILLED', ['-46']]),
      ['RELEASED', []],
    ]);
    await expectLedgerSound(dbUrl);

    const audit = await runAudit();
    expect(audit.report.discrepancies).toEqual([]);
    expect([audit.code, audit.report.consistent]).toEqual([0, true]);
  }, 120_000);
});

/** Request ids of the calls that got their whole answer. */
async function answeredIds(calls: readonly Call[]): Promise<Set<string>> {
  const ids = await Promise.all(calls.map((c) => c.answered));
  return new Set(ids.filter((id): id is string => id !== null));
}

describe('kill -9 with calls waiting at the upstream', () => {
  it('charges each answered call once and nothing for the calls whose answers never left', async () => {
    api ??= await spawnApiProcess(apiEnv());
    const x = await newFundedWallet(100_000n);
    const y = await newFundedWallet(100_000n);
    const url = api.url;
    const plan: [typeof x, boolean][] = [
      [x, false],
      [x, true],
      [x, false],
      [y, false],
      [y, true],
      [y, false],
    ];
    const held = plan.map(([wallet, streamed]) => ({
      wallet,
      call: call(url, wallet.token, streamed, { held: true }),
    }));
    await atUpstream(
      'six calls at the upstream',
      held.map((h) => h.call),
    );
    // X's first (JSON) and Y's stream are answered, charged before their answer leaves; four still wait when
    // the process dies.
    const [answeredJson, , , , answeredStream] = held.map((h) => h.call) as Call[];
    answeredJson?.release();
    answeredStream?.release();
    await waitFor('two calls answered', () => held.filter((h) => h.call.done).length === 2);
    await kill();
    const answered = await answeredIds(held.map((h) => h.call));
    expect(answered.size).toBe(2);
    expect(answered).toEqual(await answeredIds([answeredJson, answeredStream] as Call[]));
    for (const h of held) h.call.release(); // to a process that is gone
    await expectLedgerSound(dbUrl);

    api = await spawnApiProcess(apiEnv());
    const accounts = [x.accountId, y.accountId];
    await waitFor('every hold released or settled', async () => (await openCalls(accounts)) === 0, 30_000);
    const usage = await usageOf(accounts);
    expect(usage).toHaveLength(6);
    for (const record of usage) {
      if (answered.has(record.request_id)) {
        expect([record.status, record.user_price, record.charged]).toEqual(['BILLED', '46', ['-46']]);
      } else {
        // README "A process that dies": released, streams included (none had produced anything).
        expect([record.status, record.charged, record.flags]).toEqual(['RELEASED', [], ['HOLD_EXPIRED']]);
      }
    }
    // By hand: 100,000 credited, less 46 for the one call of each that was answered.
    for (const wallet of [x, y]) {
      expect(await books(wallet.accountId)).toEqual({ balance: 100_000n - CALL_PRICE, held: 0n, debt: 0n });
    }
    await expectLedgerSound(dbUrl);
  }, 90_000);
});

/** The records among `ids` that a statement holds locked (a probe that skips locked rows sees the others). */
async function lockedAmong(ids: readonly string[]): Promise<string[]> {
  const free = await sql<{ id: string }>(
    dbUrl,
    'select id from usage_records where id = any($1::uuid[]) for update skip locked',
    [ids],
  );
  const unlocked = new Set(free.map((row) => row.id));
  return ids.filter((id) => !unlocked.has(id));
}

describe('kill -9 while a group of settlements is written', () => {
  it('applies each settlement of the group exactly once, even when it commits after the kill', async () => {
    api ??= await spawnApiProcess(apiEnv());
    const x = await newFundedWallet(100_000n);
    const y = await newFundedWallet(100_000n);
    const z = await newFundedWallet(100_000n);
    const url = api.url;
    const first = call(url, x.token, false, { held: true });
    await atUpstream('the first call at the upstream', [first]);
    const group = [y, y, y, y, x].map((wallet) => call(url, wallet.token, false, { held: true }));
    await atUpstream('the group at the upstream', group);
    const never = call(url, z.token, false, { held: true });
    await atUpstream('the last call at the upstream', [never]);
    const accounts = [x.accountId, y.accountId, z.accountId];
    const records = await usageOf(accounts);
    expect(records.map((r) => r.status)).toEqual(Array(7).fill('HELD'));
    const firstId = records.find((r) => r.account_id === x.accountId)?.id as string;
    const groupIds = records.filter((r) => r.id !== firstId && r.account_id !== z.accountId).map((r) => r.id);

    // X's and Y's ledger heads are locked by the test. The first answer's settlement goes out alone (the
    // batcher was idle) and waits for X; the five answers that come meanwhile queue behind it, and go out
    // together once X is let go, to wait for Y.
    const lockX = await lockAccount(x.accountId);
    const lockY = await lockAccount(y.accountId);
    first.release();
    // The usual path: the one guarded statement (the locking path locks its rows before it writes them, so
    // it never waits in this statement).
    await blockedIn('guard as materialized');
    for (const c of group) c.release();
    await waitFor('the group answered by the upstream', () =>
      group.every((c) => upstream.received(c.marker)[0]?.answered),
    );
    await lockX.release();
    expect(await first.answered).not.toBeNull();
    await blockedIn('guard as materialized');
    const inGroup = await lockedAmong(groupIds);
    expect(inGroup.length, 'settlements written together').toBeGreaterThan(1);
    console.log(`settlements in the statement the kill interrupted: ${inGroup.length} of 5`);
    await kill();
    expect(await answeredIds(group)).toEqual(new Set());
    never.release(); // to a process that is gone

    // The dead process's statement still waits for Y, holding its records. The restarted process's sweep
    // leaves those, and Y's other holds (Y's account is locked), for a later round, and releases every other
    // expired hold meanwhile (Z's among them) instead of queueing behind the lock.
    api = await spawnApiProcess(apiEnv());
    const onY = new Set(records.filter((r) => r.account_id === y.accountId).map((r) => r.id));
    const zId = records.find((r) => r.account_id === z.accountId)?.id as string;
    const unlocked = [zId, ...groupIds.filter((id) => !inGroup.includes(id) && !onY.has(id))];
    await waitFor('the expired holds off Y no statement holds, released while Y is still locked', async () =>
      (await usageOf(accounts)).every((u) => !unlocked.includes(u.id) || u.status === 'RELEASED'),
    );
    expect(
      (await usageOf(accounts)).filter((u) => onY.has(u.id)).map((u) => u.status),
      "Y's holds wait for its account",
    ).toEqual(Array(onY.size).fill('HELD'));
    expect(await lockedAmong(groupIds), 'the dead statement still holds its records').toEqual(inGroup);
    await lockY.release();
    await waitFor('every hold released or settled', async () => (await openCalls(accounts)) === 0, 30_000);

    // The statement sent before the kill committed once Y was free (PostgreSQL ran it to its end, alone in
    // its implicit transaction): those calls are charged once, though their answers never left (README "A
    // process that dies": billed if its settlement was committed). The sweep found them settled.
    const usage = new Map((await usageOf(accounts)).map((u) => [u.id, u]));
    expect(usage.get(firstId)?.charged).toEqual(['-46']);
    for (const id of groupIds) {
      const record = usage.get(id);
      if (inGroup.includes(id)) expect([record?.status, record?.charged]).toEqual(['BILLED', ['-46']]);
      else
        expect([record?.status, record?.charged, record?.flags]).toEqual(['RELEASED', [], ['HOLD_EXPIRED']]);
    }
    const zRecord = [...usage.values()].find((u) => u.account_id === z.accountId);
    expect([zRecord?.status, zRecord?.charged, zRecord?.flags]).toEqual(['RELEASED', [], ['HOLD_EXPIRED']]);
    expect(await never.answered).toBeNull();
    // By hand: 100,000 each, less 46 per charged call.
    const chargedOf = (accountId: string) =>
      BigInt([...usage.values()].filter((u) => u.account_id === accountId && u.status === 'BILLED').length);
    expect(chargedOf(x.accountId) + chargedOf(y.accountId)).toBe(1n + BigInt(inGroup.length));
    for (const wallet of [x, y, z]) {
      expect(await books(wallet.accountId)).toEqual({
        balance: 100_000n - chargedOf(wallet.accountId) * CALL_PRICE,
        held: 0n,
        debt: 0n,
      });
    }
    await expectLedgerSound(dbUrl);
  }, 90_000);
});
