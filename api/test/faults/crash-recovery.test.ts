/**
 * kill -9 of a real API process (`node api/src/main.ts`) at many different moments while payments, and
 * then metered completions, are in flight; after every crash the database must be whole (balance = sum of
 * entries, hash chains verify, holds = open calls), and after the last restart: every confirmed transfer
 * credited exactly once, every completion that returned an answer billed exactly once, every hold
 * released or settled. Real anvil, Ponder, PostgreSQL and the dev model server over HTTP.
 */
import { randomInt } from 'node:crypto';
import { mineBlocks, setAutomine } from '@chainmeter/testkit/anvil';
import { mintUsdc, submitUsdcTransfer } from '@chainmeter/testkit/token';
import type { Hash } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevModelServer, startDevModelServer } from '../../src/dev-model/dev-model.server.ts';
import { crashApi, expectLedgerSound, fundedWallet, sql } from '../support/faults.ts';
import { gqlData } from '../support/graphql.ts';
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
/** Delays (ms) after the API answers /healthz before it is killed: start-up, first rounds, steady state. */
const KILL_DELAYS = [0, 30, 80, 150, 250, 400, 600, 900];
/**
 * Completions answered in a cycle before its kill (which then lands 0-40 ms later, mid-flow): at start-up,
 * after the first calls, in full flow. Counted, not timed, so a slow machine crashes as much work as a fast one.
 */
const ANSWERS_BEFORE_KILL = [0, 1, 2, 4, 6, 8, 3, 5, 0, 2];
/** At least this many transfers are paid across the crediting crashes, however slow the machine. */
const MIN_TRANSFERS = 31;

let platform: Platform;
let dev: DevModelServer;
/** A slow model: a stream runs long enough for a crash to land between its progress records. */
let slowDev: DevModelServer;
let dbUrl: string;
let api: ApiProcess | undefined;

function apiEnv(): Record<string, string> {
  return platform.apiEnv({
    LOG_LEVEL: 'fatal',
    LLM_BASE_URL: dev.baseUrl,
    // Streams are slow enough for a kill to land in one; a killed process's holds expire 5 s on.
    ...killableMeteringEnv(5_000),
  });
}

beforeAll(async () => {
  platform = await startPlatform({ confirmations: CONFIRMATIONS });
  if (!platform.database) throw new Error('the crash tests need PostgreSQL');
  dbUrl = platform.database.url;
  // Streams are paced so that a kill can land in the middle of one.
  dev = await startDevModelServer({ chunkDelayMs: 3 });
  slowDev = await startDevModelServer({ chunkDelayMs: 100 });
});

afterAll(async () => {
  if (api) await crashApi(api).catch(() => {});
  await dev?.stop();
  await slowDev?.stop();
  await platform?.close();
});

/** Kills the running API (if any) after `delayMs`, then checks that the crash left nothing half-done. */
async function killAfter(delayMs: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, delayMs)); // the moment of the fault, not a wait
  if (api) await crashApi(api);
  api = undefined;
  await expectLedgerSound(dbUrl);
}

describe('kill -9 of the API while payments are being credited', () => {
  it('credits every confirmed transfer exactly once across 10 crashes', async () => {
    const rpc = platform.anvil.rpcUrl;
    const payers = [0, 1, 2, 3, 4, 5].map(devPayer);
    for (const payer of payers) await mintUsdc(rpc, platform.token, payer.address, 10_000_000_000n);
    await setAutomine(rpc, false);

    const sent = new Map<Hash, { from: string; amount: bigint }>();
    let paying = true;
    let payError: unknown;
    // A steady stream: a block every few tens of milliseconds with 1-3 transfers from distinct wallets.
    const payments = (async () => {
      let round = 0;
      while (paying || sent.size < MIN_TRANSFERS) {
        const count = 1 + (round % 3);
        for (let i = 0; i < count; i++) {
          const payer = payers[(round + i) % payers.length] ?? payers[0];
          if (!payer) throw new Error('no payer');
          const amount = 1_000_000n + BigInt(randomInt(1, 1_000_000));
          const hash = await submitUsdcTransfer(rpc, platform.token, payer, platform.treasury, amount);
          sent.set(hash, { from: payer.address, amount });
        }
        await mineBlocks(rpc, 1);
        round++;
        // Paced to about ten blocks a second: a backlog builds while the API starts, then a steady flow.
        await new Promise((resolve) => setTimeout(resolve, 80));
      }
    })().catch((error: unknown) => {
      payError = error;
    });

    let crashes = 0;
    for (let cycle = 0; cycle < 10; cycle++) {
      api = await spawnApiProcess(apiEnv());
      const delay = KILL_DELAYS[cycle % KILL_DELAYS.length] ?? 0;
      await killAfter(delay + randomInt(0, 40));
      crashes++;
    }
    paying = false;
    await payments;
    expect(payError).toBeUndefined();
    await mineBlocks(rpc, CONFIRMATIONS + 1);
    await setAutomine(rpc, true);

    api = await spawnApiProcess(apiEnv());
    const credited = await waitFor(
      `${sent.size} credited deposits`,
      async () => {
        const [row] = await sql<{ n: string }>(
          dbUrl,
          "select count(*)::text as n from deposits where status = 'CREDITED'",
        );
        return Number(row?.n) === sent.size ? sent.size : 0;
      },
      60_000,
    );
    expect(crashes).toBe(10);
    expect(credited).toBe(sent.size);

    // Exactly the transfers we sent, each credited once for its amount, to its sender.
    const deposits = await sql<{ tx_hash: string; amount: string; wallet_address: string; entries: string }>(
      dbUrl,
      `select d.tx_hash, d.amount::text as amount, a.wallet_address, count(e.id)::text as entries
         from deposits d join accounts a on a.id = d.account_id
         left join ledger_entries e on e.deposit_id = d.id
        where d.status = 'CREDITED' group by d.id, a.wallet_address`,
    );
    const expectedBalance = new Map<string, bigint>();
    for (const deposit of deposits) {
      const payment = sent.get(deposit.tx_hash as Hash);
      expect(payment, `deposit ${deposit.tx_hash} was never sent`).toBeDefined();
      expect(BigInt(deposit.amount)).toBe(payment?.amount);
      expect(deposit.wallet_address.toLowerCase()).toBe(payment?.from.toLowerCase());
      expect(deposit.entries).toBe('1');
    }
    for (const { from, amount } of sent.values()) {
      expectedBalance.set(from.toLowerCase(), (expectedBalance.get(from.toLowerCase()) ?? 0n) + amount);
    }
    const balances = await sql<{ wallet_address: string; balance: string }>(
      dbUrl,
      'select wallet_address, balance::text as balance from accounts',
    );
    for (const account of balances) {
      expect(BigInt(account.balance), account.wallet_address).toBe(
        expectedBalance.get(account.wallet_address.toLowerCase()) ?? 0n,
      );
    }
    const report = await expectLedgerSound(dbUrl);
    expect(report.creditedDeposits).toBe(sent.size);
  }, 180_000);
});

interface Caller {
  accountId: string;
  key: string;
}

type Outcome = { requestId: string; streamed: boolean };

/** A new wallet signed in on `url`, credited `amount` micro-USD by an ADJUSTMENT; its account and session. */
function newFundedWallet(url: string, amount: bigint): Promise<{ accountId: string; token: string }> {
  return fundedWallet(url, dbUrl, platform.chainId, amount, 'crash-test-setup');
}

/** Usage records still HELD or UNSETTLED (of one account, or of all). */
async function openCalls(accountId?: string): Promise<number> {
  const [row] = await sql<{ n: string }>(
    dbUrl,
    `select count(*)::text as n from usage_records
      where status in ('HELD', 'UNSETTLED') and ($1::uuid is null or account_id = $1::uuid)`,
    [accountId ?? null],
  );
  return Number(row?.n);
}

/** One OpenAI-compatible call; resolves with the request id when the full answer arrived, else null. */
async function callCompletion(url: string, caller: Caller, streamed: boolean): Promise<Outcome | null> {
  try {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${caller.key}` },
      body: JSON.stringify({
        model: 'chainmeter-dev',
        messages: [{ role: 'user', content: `crash test ${randomInt(0, 1_000_000)}` }],
        max_tokens: 24,
        stream: streamed,
        ...(streamed ? { stream_options: { include_usage: true } } : {}),
      }),
    });
    const requestId = response.headers.get('x-request-id');
    const text = await response.text();
    if (response.status !== 200 || !requestId) return null;
    if (streamed) return text.includes('data: [DONE]') ? { requestId, streamed } : null;
    const body = JSON.parse(text) as { choices?: { message?: { content?: string } }[] };
    return body.choices?.[0]?.message?.content ? { requestId, streamed } : null;
  } catch {
    return null; // the process died under the call: its outcome is unknown to the client
  }
}

describe('a crash at each step of a metered call (CHAINMETER_CRASH_AT)', () => {
  /** What the books must say once the restarted API has recovered a call that crashed at `point`. */
  const expected = {
    // Nothing was asked of the upstream: the hold is released, nothing charged.
    'after-hold': { status: 'RELEASED', entries: '0', upstreamCalls: 0, streamed: false },
    // A stream died with its process once its progress was recorded: billed for what had been generated.
    'mid-stream': { status: 'BILLED', entries: '1', upstreamCalls: 1, streamed: true },
    // The upstream answered but the client never got the answer: released, nothing charged.
    'after-answer': { status: 'RELEASED', entries: '0', upstreamCalls: 1, streamed: false },
    // The charge was committed; the answer was lost with the process: billed exactly once, never twice.
    'after-settlement': { status: 'BILLED', entries: '1', upstreamCalls: 1, streamed: false },
  } as const;

  it.each(Object.keys(expected) as (keyof typeof expected)[])(
    '%s: the call is refused to the client, and recovered once on restart',
    async (point) => {
      if (api) await crashApi(api);
      const { streamed } = expected[point];
      const upstream = streamed ? slowDev : dev;
      api = await spawnApiProcess({
        ...apiEnv(),
        NODE_ENV: 'test',
        CHAINMETER_CRASH_AT: point,
        LLM_BASE_URL: upstream.baseUrl,
        METERING_STREAM_PROGRESS_MS: '20',
      });
      const { accountId, token } = await newFundedWallet(api.url, 10_000_000n);
      const upstreamBefore = upstream.requestCount();
      // A session token: the call needs no other request that could crash the process first.
      expect(await callCompletion(api.url, { accountId, key: token }, streamed)).toBeNull();
      await waitFor('the API process to die', () => api?.child.exitCode !== null || api.child.signalCode);
      expect(upstream.requestCount() - upstreamBefore).toBe(expected[point].upstreamCalls);
      api = await spawnApiProcess(apiEnv());
      await waitFor(
        'the crashed call to be recovered',
        async () => (await openCalls(accountId)) === 0,
        30_000,
      );
      const records = await sql<{
        status: string;
        entries: string;
        user_price: string;
        balance: string;
        flags: string[];
        completion_tokens: number;
      }>(
        dbUrl,
        `select u.status, count(e.id)::text as entries, u.user_price::text as user_price, u.flags, u.completion_tokens,
           (select balance::text from accounts where id = u.account_id) as balance
           from usage_records u left join ledger_entries e on e.reference_id = u.id::text and e.reason = 'USAGE'
          where u.account_id = $1 group by u.id`,
        [accountId],
      );
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ status: expected[point].status, entries: expected[point].entries });
      expect(BigInt(records[0]?.balance ?? '0')).toBe(10_000_000n - BigInt(records[0]?.user_price ?? '0'));
      if (point === 'mid-stream') {
        expect(records[0]?.flags).toEqual(['STREAM_INTERRUPTED', 'USAGE_ESTIMATED']);
        expect(records[0]?.completion_tokens).toBeGreaterThan(0);
        expect(BigInt(records[0]?.user_price ?? '0')).toBeGreaterThan(0n);
      }
      await expectLedgerSound(dbUrl);
    },
    60_000,
  );
});

describe('kill -9 of the API while completions are being settled', () => {
  it('bills every answered completion exactly once and releases every other hold', async () => {
    api ??= await spawnApiProcess(apiEnv());
    const callers: Caller[] = [];
    for (let i = 0; i < 3; i++) {
      const { accountId, token } = await newFundedWallet(api.url, 50_000_000n);
      const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
        api.url,
        'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
        { input: { name: `crash ${i}` } },
        token,
      );
      callers.push({ accountId, key: createApiKey.secret });
    }

    const answered: Outcome[] = [];
    let attempted = 0;
    for (let cycle = 0; cycle < 10; cycle++) {
      api ??= await spawnApiProcess(apiEnv());
      const url = api.url;
      let calling = true;
      // Six clients at once, each calling back to back until the process dies under them.
      const clients = Array.from({ length: 6 }, async (_, index) => {
        const caller = callers[index % callers.length] as Caller;
        while (calling) {
          attempted++;
          const outcome = await callCompletion(url, caller, (index + cycle) % 3 === 0);
          if (outcome) answered.push(outcome);
          else break;
        }
      });
      const target = answered.length + (ANSWERS_BEFORE_KILL[cycle] ?? 0);
      await waitFor(`${target} answered calls`, () => answered.length >= target, 60_000);
      await killAfter(randomInt(0, 40));
      calling = false;
      await Promise.all(clients);
    }

    api = await spawnApiProcess(apiEnv());
    // The restarted process settles what was left UNSETTLED and releases holds past their TTL.
    await waitFor('every hold released or settled', async () => (await openCalls()) === 0, 30_000);

    const records = await sql<{
      request_id: string;
      status: string;
      user_price: string;
      flags: string[];
      entries: string;
      charged: string | null;
    }>(
      dbUrl,
      `select u.request_id, u.status, u.user_price::text as user_price, u.flags, count(e.id)::text as entries,
         sum(e.amount)::text as charged
         from usage_records u left join ledger_entries e on e.reference_id = u.id::text and e.reason = 'USAGE'
        group by u.id`,
    );
    const byRequest = new Map(records.map((r) => [r.request_id, r]));
    const unbilled: string[] = [];
    for (const { requestId, streamed } of answered) {
      const record = byRequest.get(requestId);
      if (record?.status !== 'BILLED' || record.entries !== '1') {
        unbilled.push(`${requestId} (${streamed ? 'stream' : 'json'}): ${JSON.stringify(record)}`);
        continue;
      }
      expect(BigInt(record.charged ?? '0')).toBe(-BigInt(record.user_price));
    }
    expect(unbilled, `answered but not billed exactly once (of ${answered.length})`).toEqual([]);
    for (const record of records) {
      // Whatever the client saw, a record is billed once (BILLED / NEEDS_REVIEW) or not at all (RELEASED).
      expect(record.entries).toBe(record.status === 'RELEASED' ? '0' : '1');
    }
    const keys = await sql<{ held: string; spent: string; billed: string }>(
      dbUrl,
      `select k.held::text as held, k.spent::text as spent, coalesce(sum(u.user_price) filter
          (where u.status in ('BILLED', 'NEEDS_REVIEW')), 0)::text as billed
         from api_keys k left join usage_records u on u.api_key_id = k.id group by k.id`,
    );
    for (const key of keys) {
      expect(key.held).toBe('0');
      expect(key.spent).toBe(key.billed);
    }
    const [held] = await sql<{ held: string }>(
      dbUrl,
      'select coalesce(sum(held), 0)::text as held from accounts',
    );
    expect(held?.held).toBe('0');
    await expectLedgerSound(dbUrl);
    console.log(
      `completions: ${attempted} attempted, ${answered.length} answered, ${records.length} usage records`,
    );
  }, 180_000);
});
