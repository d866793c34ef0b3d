/**
 * The API's dependencies fail one after another under a running API process: the indexer stops, the chain
 * RPC is cut, PostgreSQL restarts, Redis dies. Each time the API keeps serving what it can (reads, sign-in,
 * metered calls), says clearly what it cannot (/readyz 503 naming the failing check, errors with a code),
 * and once the dependency is back it catches up with nothing lost (payments made meanwhile are credited
 * exactly once, subscriptions flow again). PostgreSQL and Redis are throwaway servers of this file (a free
 * port each), so restarting them disturbs no other test file.
 */

import { mineBlocks } from '@chainmeter/testkit/anvil';
import { mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevModelServer, startDevModelServer } from '../../src/dev-model/dev-model.server.ts';
import {
  type CuttableProxy,
  crashApi,
  expectLedgerSound,
  type ScratchPostgres,
  type ScratchRedis,
  sql,
  startCuttableProxy,
  startScratchPostgres,
  startScratchRedis,
} from '../support/faults.ts';
import { gql, gqlData, signIn, subscribe } from '../support/graphql.ts';
import {
  type ApiProcess,
  devPayer,
  type Platform,
  spawnApiProcess,
  startPlatform,
} from '../support/platform.ts';
import { waitFor } from '../support/wait-for.ts';

const CONFIRMATIONS = 2;
const payer = devPayer(6);

let platform: Platform;
let rpcProxy: CuttableProxy;
let postgres: ScratchPostgres;
let redis: ScratchRedis;
let dev: DevModelServer;
let dbUrl: string;
let api: ApiProcess;
let token: string;
let apiKey: string;
/** Every payment sent, in micro-USD: what the payer's balance must reach. */
let paid = 0n;

interface Readyz {
  ready: boolean;
  failing: string[];
  checks: Record<string, { ok: boolean; error?: string }>;
}

async function readyz(): Promise<{ status: number; body: Readyz }> {
  const response = await fetch(`${api.url}/readyz`);
  return { status: response.status, body: (await response.json()) as Readyz };
}

/** Polls /readyz until `accept` holds; returns that answer. */
async function readyzUntil(
  what: string,
  accept: (probe: { status: number; body: Readyz }) => boolean,
  timeoutMs = 10_000,
): Promise<{ status: number; body: Readyz }> {
  let last: { status: number; body: Readyz } | undefined;
  await waitFor(
    what,
    async () => {
      last = await readyz();
      return accept(last);
    },
    timeoutMs,
  );
  return last as { status: number; body: Readyz };
}

async function balance(): Promise<bigint> {
  const { me } = await gqlData<{ me: { balance: string } }>(api.url, '{ me { balance } }', {}, token);
  // Credits scalar: decimal credits with up to 3 fractional digits; 1 credit = 1,000 micro-USD.
  const [whole = '0', fraction = ''] = me.balance.split('.');
  return BigInt(whole) * 1000n + BigInt(fraction.padEnd(3, '0'));
}

/** A payment on the chain itself (not through the platform's RPC path), confirmed. */
async function pay(amount: bigint): Promise<void> {
  await transferUsdc(platform.anvil.rpcUrl, platform.token, payer, platform.treasury, amount);
  await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS);
  paid += amount;
}

async function creditedInFull(what: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(what, async () => (await balance()) === paid - (await spentByCalls()), timeoutMs);
}

async function spentByCalls(): Promise<bigint> {
  const [row] = await sql<{ spent: string }>(
    dbUrl,
    `select coalesce(-sum(amount), 0)::text as spent from ledger_entries where reason = 'USAGE'`,
  );
  return BigInt(row?.spent ?? '0');
}

async function completion(): Promise<{ status: number; body: string }> {
  const response = await fetch(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({
      model: 'chainmeter-dev',
      messages: [{ role: 'user', content: 'still there?' }],
      max_tokens: 16,
    }),
  });
  return { status: response.status, body: await response.text() };
}

beforeAll(async () => {
  [postgres, redis, dev] = await Promise.all([
    startScratchPostgres(),
    startScratchRedis(),
    startDevModelServer(),
  ]);
  dbUrl = await postgres.createDatabase('cm_faults');
  platform = await startPlatform({
    confirmations: CONFIRMATIONS,
    indexerRpcUrl: async (anvilRpcUrl) => {
      rpcProxy = await startCuttableProxy(anvilRpcUrl);
      return rpcProxy.url;
    },
  });
  api = await spawnApiProcess(
    platform.apiEnv({
      DATABASE_URL: dbUrl,
      REDIS_URL: redis.url,
      RPC_URL: rpcProxy.url,
      LLM_BASE_URL: dev.baseUrl,
      LOG_LEVEL: 'warn',
      METRICS_CACHE_MS: '0',
      RATE_LIMIT_IP_PER_MINUTE: '100000',
    }),
  );
  await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 1_000_000_000n);
  token = await signIn(api.url, payer, platform.chainId);
  const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
    api.url,
    'mutation { createApiKey(input: { name: "faults" }) { secret } }',
    {},
    token,
  );
  apiKey = createApiKey.secret;
  await pay(20_000_000n);
  await creditedInFull('the first payment');
}, 180_000);

afterAll(async () => {
  if (api && api.child.exitCode !== null) console.log(`API exited ${api.child.exitCode}:\n${api.logs()}`);
  if (api) await crashApi(api).catch(() => {});
  await platform?.close();
  await rpcProxy?.close();
  await dev?.stop();
  await redis?.kill().catch(() => {});
  await postgres?.destroy();
});

describe('a dependency down under a running API', () => {
  it('indexer down: reads, sign-in and calls go on, /readyz says why; payments meanwhile are credited once it is back', async () => {
    await platform.indexer.stop();
    const down = await readyzUntil(
      '/readyz to report the indexer',
      (probe) => probe.status === 503 && probe.body.failing.includes('indexer'),
    );
    expect(down.body.checks.indexer?.error).toMatch(/indexer/i);
    expect(down.body.checks.database?.ok).toBe(true);

    const before = await balance();
    expect(before).toBeGreaterThan(0n);
    const other = privateKeyToAccount(`0x${'11'.repeat(32)}`);
    expect(await signIn(api.url, other, platform.chainId)).toMatch(/^cms_/);
    expect((await completion()).status).toBe(200);

    await pay(3_000_000n);
    await pay(4_000_000n);
    await platform.restartIndexer();
    await creditedInFull('the payments made while the indexer was down');
    await waitFor('/readyz 200 again', async () => (await readyz()).status === 200);
  }, 180_000);

  it('chain RPC cut: /readyz reports the chain, the API keeps serving; the indexer catches up when it returns', async () => {
    rpcProxy.cut();
    const probe = await readyzUntil(
      '/readyz to report the chain',
      (result) => result.body.checks.chain?.ok === false,
    );
    expect(probe.body.checks.chain?.error).toBeTruthy();

    expect(await balance()).toBe(paid - (await spentByCalls()));
    const other = privateKeyToAccount(`0x${'22'.repeat(32)}`);
    const signedIn = await signIn(api.url, other, platform.chainId).then(
      (value) => value,
      (error: unknown) => error as Error,
    );
    expect(signedIn, 'an EOA signs in without the RPC').toMatch(/^cms_/);
    expect((await completion()).status).toBe(200);

    // The chain goes on without us: a payment the indexer cannot see yet.
    await pay(5_000_000n);
    rpcProxy.restore();
    await creditedInFull('the payment made while the RPC was cut', 60_000);
    await waitFor('/readyz 200 again', async () => (await readyz()).status === 200, 30_000);
  }, 180_000);

  it('PostgreSQL restarted: clear errors and a 503 while it is down, then everything resumes and catches up', async () => {
    await postgres.stop();
    const down = await readyzUntil(
      '/readyz to report the database',
      (result) => result.status === 503 && result.body.failing.includes('database'),
    );
    expect(down.body.checks.database?.error).toBeTruthy();
    const read = await gql(api.url, '{ me { balance } }', {}, token);
    expect(read.errors?.length, 'a read fails with an error, not a hang or a wrong answer').toBeGreaterThan(
      0,
    );
    expect(read.errors?.[0]?.message).toMatch(/temporarily unavailable: the database cannot be reached/);
    expect(read.data?.me ?? null).toBeNull();
    // Public data that needs no database is still served.
    const config = await gqlData<{ paymentConfig: { confirmations: number } }>(
      api.url,
      '{ paymentConfig { confirmations } }',
    );
    expect(config.paymentConfig.confirmations).toBe(CONFIRMATIONS);
    const call = await completion();
    console.log(`PostgreSQL down: GraphQL ${JSON.stringify(read.errors)}; /v1 ${call.status} ${call.body}`);
    // OpenAI's error shape, saying what is wrong and that it is worth a retry.
    expect(call.status).toBe(503);
    expect(JSON.parse(call.body)).toMatchObject({
      error: {
        type: 'server_error',
        code: 'service_unavailable',
        message: expect.stringMatching(/database/),
      },
    });

    await pay(6_000_000n); // indexed meanwhile, credited once the database is back
    await postgres.start();
    await creditedInFull('the payment made while PostgreSQL was down', 60_000);
    expect((await completion()).status).toBe(200);
    await waitFor('/readyz 200 again', async () => (await readyz()).status === 200, 30_000);
  }, 180_000);

  it('Redis gone: calls, reads and crediting go on (rate limits in memory); subscriptions flow again once it is back', async () => {
    await redis.kill();
    expect((await completion()).status).toBe(200);
    await pay(7_000_000n);
    await creditedInFull('the payment made while Redis was down');
    // Crediting published a balance event into the dead Redis: the API must log it lost, not die of it.
    await waitFor(
      'the lost pub/sub event to be logged (or the API to exit)',
      () => api.logs().includes('pub/sub event lost') || api.child.exitCode !== null,
      15_000,
    );
    expect(api.child.exitCode, `the API died with Redis:\n${api.logs().slice(-2_000)}`).toBeNull();
    const probe = await readyz();
    console.log(`/readyz with Redis down: ${probe.status} ${JSON.stringify(probe.body.failing)}`);

    await redis.start();
    const updates = await subscribe<{ balanceUpdated: { balance: string } }>(
      api.url,
      'subscription { balanceUpdated { balance } }',
      token,
    );
    try {
      // The subscriber reconnects to Redis in the background: pay until an update comes through.
      await waitFor(
        'a balance update over Redis pub/sub',
        async () => {
          if (updates.events.length > 0) return true;
          await pay(1_000n);
          await creditedInFull('a small payment');
          return updates.events.length > 0;
        },
        30_000,
      );
    } finally {
      await updates.close();
    }
    expect((await completion()).status).toBe(200);
  }, 120_000);

  it('nothing lost or doubled through all of it', async () => {
    await creditedInFull('every payment');
    const [row] = await sql<{ n: string }>(
      dbUrl,
      "select count(*)::text as n from deposits where status = 'CREDITED'",
    );
    expect(Number(row?.n)).toBeGreaterThanOrEqual(6);
    const held = await sql<{ held: string }>(
      dbUrl,
      'select coalesce(sum(held), 0)::text as held from accounts',
    );
    expect(held[0]?.held).toBe('0');
    await expectLedgerSound(dbUrl);
  });
});
