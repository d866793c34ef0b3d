/**
 * `npm run soak`: the production shape of docker-compose.yml, natively (stack.ts), under mixed load
 * (load.ts) and scheduled faults (faults.ts), then the end checks (checks.ts) and a table of what each fault
 * did (report.ts), printed and written to `.data/soak/<run>/report.md`. Exits 0 when every end check passes,
 * 1 when one fails, 2 when the soak could not run. Needs nginx (Debian's package) and the machine's
 * PostgreSQL; starts everything else itself. Not part of `npm test`: `.ci/run` runs a one-minute soak.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gqlData, signIn } from '@chainmeter/api/testing/graphql';
import pg from 'pg';
import type { Hash, PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { loadSoakEnv } from '../env.ts';
import { BlockWatcher, fundWallets, treasuryTransfers } from './chain.ts';
import { type Check, checkBooks, checkCalls, checkDeposits, runAudit } from './checks.ts';
import { type FaultRecord, faultSchedule, injectFault } from './faults.ts';
import { CompletionLoad, DepositLoad, type LoadKind, SubscriptionLoad } from './load.ts';
import { requireNginx } from './nginx.ts';
import { parseSoakOptions, SOAK_USAGE, type SoakOptions } from './options.ts';
import { answers200, sleep, unexpectedExits, waitUntil } from './processes.ts';
import { type CreditTiming, formatTable, type Phase, phaseRows } from './report.ts';
import {
  countLiveAmong,
  creditedAmong,
  readBooks,
  readDeposits,
  readLedgerTimes,
  readPaidCallSettlements,
  readUsage,
} from './soak.store.ts';
import { CHAIN_ID, CONFIRMATIONS, HOLD_TTL_MS, startStack } from './stack.ts';
import { payingFetch, settlementOf } from './x402.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WALLETS = 100;
/** Wallets that also sign in, hold an API key and call the model; the first SUBSCRIBERS of them subscribe. */
const CALLERS = 20;
const SUBSCRIBERS = 10;
const WALLET_USDC = 1_000_000_000n; // 1,000 USDC each
const CALLER_FIRST_DEPOSIT = 100_000_000n; // 100 USDC: the calls' credits
/** Wallets that pay per request (x402) instead of holding credits. */
const PAYERS = 4;

const say = (line: string) => console.log(`soak: ${line}`);

async function soak(options: SoakOptions, runDir: string): Promise<boolean> {
  const stack = await startStack(runDir, say);
  // Ctrl-C: stop every part and drop the databases before leaving.
  const interrupted = () => {
    say('interrupted: stopping everything');
    void stack.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const db = new pg.Client({ connectionString: stack.apiDatabase.url });
  // Dropped under it when interrupted: not worth a crash report.
  db.on('error', () => {});
  const kinds: LoadKind[] = [];
  const watcher = new BlockWatcher(stack.rpcUrl);
  try {
    await db.connect();
    const wallets: PrivateKeyAccount[] = Array.from({ length: WALLETS }, () =>
      privateKeyToAccount(generatePrivateKey()),
    );
    // Pay-per-request wallets: they never sign in, they pay each call (x402).
    const payers: PrivateKeyAccount[] = Array.from({ length: PAYERS }, () =>
      privateKeyToAccount(generatePrivateKey()),
    );
    await fundWallets(stack.rpcUrl, stack.token, [...wallets, ...payers], WALLET_USDC);
    watcher.start();
    const deposits = new DepositLoad({
      rpcUrl: stack.rpcUrl,
      token: stack.token,
      treasury: stack.treasury,
      wallets,
      perSecond: options.depositsPerSecond,
      watcher,
    });

    // The callers pay first, sign in through nginx and make a key each; the load starts once they are credited.
    const callers = wallets.slice(0, CALLERS);
    const firstDeposits = await Promise.all(
      callers.map((wallet) => deposits.deposit(wallet, CALLER_FIRST_DEPOSIT)),
    );
    const sessions = [];
    for (const wallet of callers)
      sessions.push({ wallet: wallet.address, token: await signIn(stack.nginxUrl, wallet, CHAIN_ID) });
    const keys: string[] = [];
    for (const session of sessions) {
      const created = await gqlData<{ createApiKey: { secret: string } }>(
        stack.nginxUrl,
        'mutation { createApiKey(input: { name: "soak" }) { secret } }',
        {},
        session.token,
      );
      keys.push(created.createApiKey.secret);
    }
    const firstHashes = firstDeposits.map((deposit) => deposit.hash as Hash);
    await waitUntil(
      "the callers' first deposits to be credited",
      async () => (await creditedAmong(db, firstHashes)).size === CALLERS,
      {
        timeoutMs: 60_000,
        everyMs: 250,
      },
    );
    say(`${WALLETS} wallets funded, ${CALLERS} of them credited with a key each`);

    const subscriptions = new SubscriptionLoad({
      url: stack.nginxUrl,
      sessions: sessions.slice(0, SUBSCRIBERS),
    });
    const completions = new CompletionLoad({
      name: 'completions',
      url: stack.nginxUrl,
      // The callers' keys in turn.
      authorization: (n) => `Bearer ${keys[n % keys.length]}`,
      perSecond: options.callsPerSecond,
      maxInFlight: 32,
    });
    // Pay-per-request calls: the same calls without a key, each paid by an x402 payment the platform's
    // relayer settles on chain before serving (the exact scheme).
    const paidCalls = new CompletionLoad({
      name: 'x402 calls',
      url: stack.nginxUrl,
      authorization: () => undefined,
      fetch: payingFetch(stack.rpcUrl, stack.token, payers),
      paymentOf: settlementOf,
      perSecond: options.paidCallsPerSecond,
      maxInFlight: 8,
    });
    kinds.push(subscriptions, deposits, completions, paidCalls);
    subscriptions.start();
    await waitUntil('every subscription to connect', async () => subscriptions.allConnected(), {
      timeoutMs: 30_000,
    });

    const loadStart = Date.now();
    deposits.start();
    completions.start();
    if (options.paidCallsPerSecond > 0) paidCalls.start();
    say(
      `load: ${options.callsPerSecond} calls/s, ${options.depositsPerSecond} deposits/s from ${WALLETS} wallets, ${SUBSCRIBERS} subscriptions; for ${options.durationMs / 1000} s`,
    );

    const faults: FaultRecord[] = [];
    const settling: Promise<void>[] = [];
    const context = { stack, watcher, creditedAmong: (hashes: readonly Hash[]) => creditedAmong(db, hashes) };
    for (const [index, scheduled] of faultSchedule(options.durationMs).entries()) {
      await sleep(loadStart + scheduled.offsetMs - Date.now());
      const cycle = Math.floor(index / 5);
      say(`fault ${scheduled.kind} at ${((Date.now() - loadStart) / 1000).toFixed(0)} s`);
      const fault = await injectFault(scheduled.kind, cycle, context);
      faults.push(fault);
      say(`  ${fault.detail}; back after ${((fault.backAt - fault.at) / 1000).toFixed(1)} s`);
      if (fault.dropped?.length) {
        const dropped = fault.dropped;
        settling.push(
          waitUntil(
            'the API to drop the reorged transfers',
            async () => (await countLiveAmong(db, dropped)) === 0,
            {
              timeoutMs: 120_000,
              everyMs: 200,
            },
          ).then(() => {
            fault.settledAt = Date.now();
          }),
        );
      }
    }
    const lastBack = Math.max(0, ...faults.map((fault) => fault.backAt));
    await sleep(Math.max(loadStart + options.durationMs, lastBack + 5_000) - Date.now());
    await Promise.all([deposits.stop(), completions.stop(), paidCalls.stop()]);
    const loadEnd = Date.now();
    say(
      `load stopped after ${((loadEnd - loadStart) / 1000).toFixed(0)} s: ${completions.records.length} calls, ${deposits.records.length} deposits`,
    );

    // Drain: every transfer on chain confirmed and credited, every hold settled or expired.
    await Promise.all(settling);
    const drain = async (what: string) => {
      const lastBlock = [...watcher.blockOf.values()].reduce((max, block) => (block > max ? block : max), 0n);
      await waitUntil(
        `the chain to confirm ${what}`,
        async () => watcher.head >= lastBlock + BigInt(CONFIRMATIONS) + 1n,
        {
          timeoutMs: 30_000,
          everyMs: 250,
        },
      );
      await waitUntil(
        `every confirmed transfer to be credited (${what})`,
        async () => {
          const head = watcher.head - BigInt(CONFIRMATIONS);
          const onChain = await treasuryTransfers(stack.rpcUrl, stack.token, stack.treasury, head);
          return (
            (await creditedAmong(db, [...new Set(onChain.map((t) => t.txHash))])).size ===
            new Set(onChain.map((t) => t.txHash)).size
          );
        },
        { timeoutMs: 90_000, everyMs: 1_000 },
      );
    };
    await drain('the load');
    // Not fatal: 'nothing held' below reports what is still open.
    await waitUntil(
      'every hold to be settled or released',
      async () => {
        const books = await readBooks(db);
        return books.held === '0' && books.open_records === 0;
      },
      { timeoutMs: HOLD_TTL_MS + 60_000, everyMs: 500 },
    ).catch((error: unknown) => say((error as Error).message.split('\n')[0] as string));

    // Subscriptions recovered: one more deposit from each subscriber reaches its subscription.
    const before = subscriptions.records.map((record) => record.events.length);
    const probes = await Promise.all(
      subscriptions.records.map((record) =>
        deposits.deposit(wallets.find((w) => w.address === record.wallet) as PrivateKeyAccount, 1_000n),
      ),
    );
    await drain('the probes');
    const probeDeadline = Date.now() + 15_000;
    while (
      Date.now() < probeDeadline &&
      subscriptions.records.some((record, i) => record.events.length <= (before[i] ?? 0))
    )
      await sleep(100);
    const deaf = subscriptions.records.filter((record, i) => record.events.length <= (before[i] ?? 0));
    await subscriptions.stop();
    await watcher.stop();

    // End checks.
    const checks: Check[] = [];
    const indexerAlive = await answers200(`${stack.indexerUrl}/health`);
    checks.push({
      name: 'no part died on its own',
      ok: unexpectedExits.length === 0 && indexerAlive,
      detail: !indexerAlive
        ? 'Ponder does not answer /health'
        : unexpectedExits.length
          ? unexpectedExits
              .map((exit) => `${exit.name} at ${((exit.at - loadStart) / 1000).toFixed(0)} s (${exit.how})`)
              .join(', ')
          : 'every process the soak did not stop or kill is still running',
    });
    checks.push({
      name: 'subscriptions alive at the end',
      ok: deaf.length === 0 && probes.every((probe) => probe.hash),
      detail: `${subscriptions.records.length - deaf.length} of ${subscriptions.records.length} received the final deposit's balanceUpdated${deaf.length ? `; deaf: ${deaf.map((r) => `${r.transport} ${r.wallet}`).join(', ')}` : ''}`,
    });
    checks.push(
      await runAudit({
        rpcUrl: stack.rpcUrl,
        databaseUrl: stack.apiDatabase.url,
        env: {
          CHAIN_ID: String(CHAIN_ID),
          USDC_ADDRESS: stack.token,
          TREASURY_ADDRESS: stack.treasury,
          CONFIRMATIONS: String(CONFIRMATIONS),
        },
        runDir,
      }),
    );
    const books = await readBooks(db);
    checks.push(...checkBooks(books));
    const head = watcher.head - BigInt(CONFIRMATIONS);
    const chainTransfers = await treasuryTransfers(stack.rpcUrl, stack.token, stack.treasury, head);
    const depositRows = await readDeposits(db);
    const removed = new Set(faults.flatMap((fault) => fault.dropped ?? []).map((hash) => hash.toLowerCase()));
    // The settlements the load saw, and those the platform submitted again after the reorg removed them.
    const settlements = new Set([
      ...paidCalls.records.flatMap((call) => (call.paymentTx ? [call.paymentTx.toLowerCase()] : [])),
      ...(await readPaidCallSettlements(db)),
    ]);
    checks.push(
      ...checkDeposits(
        chainTransfers,
        depositRows,
        deposits.records,
        books.deposit_entries_twice,
        removed,
        settlements,
      ),
    );
    checks.push(...checkCalls([...completions.records, ...paidCalls.records], await readUsage(db)));

    // The table.
    const credits: CreditTiming[] = [];
    for (const row of depositRows) {
      if (row.status !== 'CREDITED' || !row.credited_at) continue;
      const confirmedAt = watcher.confirmedAt(BigInt(row.block_number), CONFIRMATIONS);
      if (confirmedAt !== undefined) credits.push({ confirmedAt, creditedAt: row.credited_at.getTime() });
    }
    const phases: Phase[] = [
      { name: 'baseline', detail: 'no fault', from: loadStart, to: faults[0]?.at ?? loadEnd },
      ...faults.map((fault, i) => ({
        name: fault.kind,
        detail: fault.detail,
        from: fault.at,
        to: faults[i + 1]?.at ?? loadEnd,
        backAt: fault.backAt,
        settledAt: fault.settledAt,
        dropped: fault.dropped?.length,
        droppedCredited: fault.droppedCredited,
      })),
    ];
    const balanceChanges = await readLedgerTimes(
      db,
      subscriptions.records.map((record) => record.wallet),
    );
    const rows = phaseRows(
      phases,
      completions.records,
      credits,
      subscriptions.records,
      loadStart,
      balanceChanges,
    );
    const served = completions.records.filter((call) => call.served).length;
    const duringLoad = (time: number) => time >= loadStart && time < loadEnd;
    const eventsReceived = subscriptions.records.reduce((n, r) => n + r.events.filter(duringLoad).length, 0);
    const eventsWritten = balanceChanges.filter(duringLoad).length;
    const lines = [
      `# Soak ${new Date(loadStart).toISOString()}`,
      '',
      `Load ${((loadEnd - loadStart) / 1000).toFixed(0)} s: ${options.callsPerSecond} metered calls/s offered (every 5th streamed) through nginx to 2 API replicas, ${options.depositsPerSecond} deposits/s from ${WALLETS} wallets, ${SUBSCRIBERS} balanceUpdated subscriptions (graphql-ws and SSE); CONFIRMATIONS ${CONFIRMATIONS}, 1 s blocks.`,
      `Calls: ${completions.records.length} sent, ${served} served (${(served / Math.max(1, (loadEnd - loadStart) / 1000)).toFixed(1)}/s), ${completions.records.length - served} failed, ${completions.skipped} not sent (32 already in flight). Paid (x402) calls: ${paidCalls.records.length} sent, ${paidCalls.records.filter((call) => call.served).length} served, ${settlements.size} settlements. Deposits: ${deposits.records.length} sent. Subscription events while the load ran: ${eventsReceived} received for ${eventsWritten} balance changes written.`,
      '',
      '## Faults',
      '',
      ...faults.map(
        (fault) =>
          `- ${fault.kind}: ${fault.detail}${fault.dropped ? ` (${fault.droppedCredited} of them already credited)` : ''}`,
      ),
      '',
      formatTable(rows),
      '',
      '## End checks',
      '',
      formatTable(
        checks.map((check) => ({
          check: check.name,
          result: check.ok ? 'pass' : 'FAIL',
          detail: check.detail,
        })),
      ),
      '',
    ];
    const report = lines.join('\n');
    console.log(`\n${report}`);
    const reportFile = path.join(runDir, 'report.md');
    writeFileSync(reportFile, report);
    if (options.reportFile) writeFileSync(path.resolve(options.reportFile), report);
    writeFileSync(
      path.join(runDir, 'records.json'),
      JSON.stringify(
        {
          loadStart,
          loadEnd,
          faults,
          credits,
          balanceChanges,
          calls: completions.records,
          subscriptions: subscriptions.records,
          deposits: deposits.records,
        },
        (_, value) => (typeof value === 'bigint' ? value.toString() : value),
      ),
    );
    say(`report: ${reportFile}${options.reportFile ? ` and ${options.reportFile}` : ''}; logs in ${runDir}`);
    const failed = checks.filter((check) => !check.ok);
    say(failed.length ? `FAILED: ${failed.map((check) => check.name).join(', ')}` : 'every end check passed');
    return failed.length === 0;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    for (const kind of kinds) await kind.stop().catch(() => {});
    await watcher.stop().catch(() => {});
    await db.end().catch(() => {});
    await stack.close();
  }
}

async function main(): Promise<number> {
  let options: SoakOptions;
  try {
    options = parseSoakOptions(process.argv.slice(2), loadSoakEnv());
  } catch (error) {
    console.error(`soak: ${(error as Error).message}\n\n${SOAK_USAGE}`);
    return 2;
  }
  try {
    requireNginx();
  } catch (error) {
    console.error(`soak: could not run: ${(error as Error).message}`);
    return 2;
  }
  const runDir = path.join(ROOT, '.data', 'soak', new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(runDir, { recursive: true });
  say(`run folder ${runDir}`);
  try {
    return (await soak(options, runDir)) ? 0 : 1;
  } catch (error) {
    console.error(`soak: could not run: ${(error as Error).stack ?? error}`);
    return 2;
  }
}

process.exitCode = await main();
process.exit();
