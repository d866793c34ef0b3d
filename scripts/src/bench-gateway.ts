/**
 * Gateway benchmark (issue: metered completions). Not a test: it prints figures.
 *
 * Four processes, so that no side borrows another's event loop: the dev model (the upstream), the API
 * (the gateway, on a fresh PostgreSQL database), a peer gateway (Portkey's open-source AI gateway,
 * `@portkey-ai/gateway`, a dev dependency of this workspace: Node, no auth, no billing) and this one (the
 * load generator, plain `fetch` with keep-alive). The same non-streaming request is sent:
 * 1. straight to the upstream, through Portkey and through `POST /v1/chat/completions`, side by side in
 *    one run (interleaved rounds), at concurrency 1 and 50: latency p50/p99 of each, the latency each
 *    gateway adds and its throughput. The ChainMeter path does everything a real call does: API key
 *    lookup, rate limits, hold, upstream call, settlement (written before the answer leaves, so a crash
 *    cannot lose it); Portkey only forwards. The CPU time each gateway process used per call is read from
 *    /proc, and for ChainMeter that of the PostgreSQL server processes of its database too (the part of
 *    the work Portkey does not do that runs outside the API). `BENCH_PEER=off` leaves the peer out;
 * 2. for settled completions per second, on one hot account and spread over 100 accounts: the clock
 *    stops when the last of them is settled (usage row BILLED and ledger entry written), not when the
 *    last answer arrives.
 *
 * `node scripts/src/bench-gateway.ts` (or through `npm run bench`). Bounded request counts; about 40 s.
 * Another OpenAI-compatible upstream instead of the dev model: `BENCH_UPSTREAM_URL=<base URL, e.g.
 * http://127.0.0.1:4000/v1>` and `BENCH_MODEL=<model>`; its calls are BILLED (and so counted as settled)
 * when it sends `x-litellm-response-cost` or the model is priced in `LLM_PRICES`.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createOrm, migrateUp } from '@chainmeter/api/db/orm';
import { startDevModelServer } from '@chainmeter/api/dev-model/dev-model.server';
import { loadConfig } from '@chainmeter/api/env';
import { findOrCreateAccount } from '@chainmeter/api/modules/accounts/accounts.service';
import { createApiKey } from '@chainmeter/api/modules/apikeys/apikeys.service';
import { appendLedgerEntry } from '@chainmeter/api/modules/ledger/ledger.service';
import { startApi } from '@chainmeter/api/server';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase } from '@chainmeter/testkit/postgres';
import { spawnGroup } from '@chainmeter/testkit/process-group';
import pg from 'pg';
import { backendPids, countBilledSince, readBooks } from './bench/gateway.store.ts';
import { cpuMsOf } from './bench/stats.ts';
import { loadBenchConfig } from './env.ts';

const ACCOUNTS = 100;
const SERIAL_REQUESTS = 2_000; // per path, concurrency 1: enough samples for a steady p50
const PARALLEL_REQUESTS = 4_000; // per path, concurrency 50
const ROUNDS = 4; // the two paths alternate this many times, so drift hits both alike
const SETTLE_SPREAD = 5_000;
const SETTLE_HOT = 3_000;
const requestBody = (model: string) =>
  JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'How much does this benchmark prompt cost?' }],
    max_tokens: 32,
  });
const BALANCE = 1_000_000_000_000n; // micro-USD per account: never the limit here

// ---------------------------------------------------------------- child roles

async function runUpstream(): Promise<void> {
  const dev = await startDevModelServer();
  console.log(JSON.stringify({ url: dev.baseUrl }));
  process.on('SIGTERM', () => void dev.stop().then(() => process.exit(0)));
}

async function runApi(databaseUrl: string, upstreamUrl: string): Promise<void> {
  const prices = loadBenchConfig().LLM_PRICES;
  const api = await startApi(
    loadConfig({
      NODE_ENV: 'production',
      PORT: '0',
      CHAIN_ID: '31337',
      USDC_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
      DATABASE_URL: databaseUrl,
      LLM_BASE_URL: upstreamUrl,
      ...(prices ? { LLM_PRICES: prices } : {}),
      LOG_LEVEL: 'warn',
      RATE_LIMIT_REQUESTS_PER_MINUTE: '100000000',
      RATE_LIMIT_TOKENS_PER_MINUTE: '100000000000',
    }),
    { crediting: false },
  );
  console.log(JSON.stringify({ url: api.url }));
  process.on('SIGTERM', () => void api.close().then(() => process.exit(0)));
}

// ---------------------------------------------------------------- load generator

interface Child {
  url: string;
  process: ChildProcess;
}

function startChild(args: string[], nodeArgs: string[] = []): Promise<Child> {
  const child = spawnGroup(process.execPath, [...nodeArgs, fileURLToPath(import.meta.url), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start within 60 s`)), 60_000);
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      // The child's own log lines are JSON too (pino): only the line that carries a URL announces it.
      let url: unknown;
      try {
        ({ url } = JSON.parse(line) as { url?: unknown });
      } catch {
        // a plain log line
      }
      if (typeof url === 'string') {
        clearTimeout(timer);
        resolve({ url, process: child });
      }
    });
  });
}

/**
 * Portkey's gateway (the version pinned in this workspace) on a free loopback port, forwarding to the
 * OpenAI-compatible `upstreamUrl` (its `x-portkey-custom-host`); resolves once it answers.
 */
async function startPortkey(upstreamUrl: string): Promise<Child & { headers: Record<string, string> }> {
  const port = await findFreePort();
  const server = createRequire(import.meta.url).resolve('@portkey-ai/gateway/build/start-server.js');
  const loopbackOnly = fileURLToPath(new URL('./bench/loopback-only.ts', import.meta.url));
  const child = spawnGroup(
    process.execPath,
    ['--import', loopbackOnly, server, `--port=${port}`, '--headless'],
    {
      // Production mode: no log UI, no request log kept for it.
      env: { ...process.env, NODE_ENV: 'production' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Portkey's gateway exited with ${child.exitCode}`);
    const up = await fetch(url).then(
      (response) => response.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error("Portkey's gateway did not answer within 60 s");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    process: child,
    headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstreamUrl },
  };
}

function stopChild(child: Child): Promise<void> {
  return new Promise((resolve) => {
    if (child.process.exitCode !== null) return resolve();
    const timer = setTimeout(() => child.process.kill('SIGKILL'), 10_000);
    child.process.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.process.kill('SIGTERM');
  });
}

/** Where a request goes: its URL, its credential and any headers the gateway needs. */
type Target = [url: string, authorization: string | null, headers?: Record<string, string>];

async function post([url, authorization, headers]: Target, body: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers, ...(authorization ? { authorization } : {}) },
    body,
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`HTTP ${response.status} from ${url}: ${text.slice(0, 200)}`);
  return performance.now() - started;
}

/**
 * One way to the upstream: its requests, the gateway process whose CPU time is counted and, for a gateway
 * that writes to PostgreSQL, whether the database's server processes are counted too.
 */
interface Path {
  name: string;
  target: (i: number) => Target;
  cpuOf?: number;
  database?: boolean;
}

interface RunResult {
  latencies: number[];
  elapsedMs: number;
}

/** `count` requests of `body`, `concurrency` at a time; `target(i)` picks where request i goes. */
async function load(
  count: number,
  concurrency: number,
  target: (i: number) => Target,
  body: string,
): Promise<RunResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        latencies.push(await post(target(i), body));
      }
    }),
  );
  return { latencies, elapsedMs: performance.now() - started };
}

/** CPU time used so far by each of `pids` (those still running). */
function cpuMsOfEach(pids: readonly number[]): Map<number, number> {
  const used = new Map<number, number>();
  for (const pid of pids) {
    const ms = cpuMsOf(pid);
    if (ms !== null) used.set(pid, ms);
  }
  return used;
}

/**
 * CPU time the database's server processes used between two readings: a process that appeared in between
 * (a connection the pool opened under load) counts from zero. The server's shared processes (WAL writer,
 * checkpointer) serve every database of the server and are not counted.
 */
function databaseCpuMs(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN
  );
}

function printTable(title: string, rows: Record<string, string>[]): void {
  console.log(`\n${title}`);
  const columns = Object.keys(rows[0] ?? {});
  const width = (c: string) => Math.max(c.length, ...rows.map((row) => (row[c] ?? '').length));
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  console.log(line(columns.map((c) => c.padEnd(width(c)))));
  console.log(line(columns.map((c) => '-'.repeat(width(c)))));
  for (const row of rows) console.log(line(columns.map((c) => (row[c] ?? '').padEnd(width(c)))));
}

const ms = (value: number) => `${value.toFixed(2)} ms`;
/** CPU time per request of a run, in microseconds. */
const perCall = (cpuMs: number, run: RunResult) => `${((cpuMs / run.latencies.length) * 1000).toFixed(0)} us`;

export async function benchGateway(): Promise<void> {
  const bench = loadBenchConfig();
  const externalUpstream = bench.BENCH_UPSTREAM_URL?.replace(/\/+$/, '');
  const body = requestBody(bench.BENCH_MODEL);
  const database = await createTestDatabase('cm_bench_gateway');
  const orm = await createOrm({ databaseUrl: database.url });
  const reader = new pg.Client({ connectionString: database.url });
  const children: Child[] = [];
  try {
    await migrateUp(orm);
    await reader.connect();
    // 100 accounts with a key each, plus one hot account.
    const keys: string[] = [];
    for (let i = 0; i <= ACCOUNTS; i++) {
      const em = orm.em.fork();
      const account = await findOrCreateAccount(em, `0x${randomBytes(20).toString('hex')}`);
      await appendLedgerEntry(em, {
        accountId: account.id,
        amount: BALANCE,
        reason: 'ADJUSTMENT',
        referenceId: 'bench',
      });
      keys.push(`Bearer ${(await createApiKey(em, account.id, { name: 'bench' })).secret}`);
    }
    const hotKey = keys.pop() as string;

    let upstream: { url: string };
    if (externalUpstream) upstream = { url: externalUpstream };
    else {
      const devModel = await startChild(['--role=upstream']);
      children.push(devModel);
      upstream = devModel;
    }
    // BENCH_CPU_PROF=<dir>: the API process writes a V8 CPU profile there when it stops.
    const profileDir = bench.BENCH_CPU_PROF;
    const api = await startChild(
      ['--role=api', database.url, upstream.url],
      profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    );
    children.push(api);
    const directUrl = `${upstream.url}/chat/completions`;
    const gatewayUrl = `${api.url}/v1/chat/completions`;
    const direct = (): Target => [directUrl, null];
    const gateway = (i: number): Target => [gatewayUrl, keys[i % keys.length] as string];
    const paths: Path[] = [{ name: 'direct', target: direct }];
    if (bench.BENCH_PEER !== 'off') {
      const peer = await startPortkey(upstream.url);
      children.push(peer);
      const peerUrl = `${peer.url}/v1/chat/completions`;
      paths.push({
        name: 'Portkey',
        target: () => [peerUrl, 'Bearer not-checked', peer.headers],
        cpuOf: peer.process.pid,
      });
    }
    paths.push({ name: 'ChainMeter', target: gateway, cpuOf: api.process.pid, database: true });

    // Warm up every path (JIT, connection pools, the API key cache of nothing: every call looks it up).
    for (const path of paths) await load(300, 10, path.target, body);

    const overhead: Record<string, string>[] = [];
    for (const [concurrency, total] of [
      [1, SERIAL_REQUESTS],
      [50, PARALLEL_REQUESTS],
    ] as const) {
      const runs = paths.map(() => ({ latencies: [] as number[], elapsedMs: 0, cpuMs: 0, databaseCpuMs: 0 }));
      // The paths take turns, round after round, so that drift on a busy machine hits them alike.
      for (let round = 0; round < ROUNDS; round++) {
        for (const [index, path] of paths.entries()) {
          const into = runs[index] as (typeof runs)[number];
          const cpuBefore = cpuMsOf(path.cpuOf);
          const databaseBefore = path.database ? cpuMsOfEach(await backendPids(reader)) : null;
          const result = await load(total / ROUNDS, concurrency, path.target, body);
          const cpuAfter = cpuMsOf(path.cpuOf);
          if (cpuBefore !== null && cpuAfter !== null) into.cpuMs += cpuAfter - cpuBefore;
          if (databaseBefore) {
            into.databaseCpuMs += databaseCpuMs(databaseBefore, cpuMsOfEach(await backendPids(reader)));
          }
          into.latencies.push(...result.latencies);
          into.elapsedMs += result.elapsedMs;
        }
      }
      const rate = (r: RunResult) => (r.latencies.length / r.elapsedMs) * 1000;
      const base = runs[0] as (typeof runs)[number];
      for (const [index, path] of paths.entries()) {
        const run = runs[index] as (typeof runs)[number];
        const added = (p: number) =>
          index === 0 ? '' : ms(percentile(run.latencies, p) - percentile(base.latencies, p));
        overhead.push({
          concurrency: String(concurrency),
          path: path.name,
          requests: String(run.latencies.length),
          p50: ms(percentile(run.latencies, 50)),
          'added p50': added(50),
          p99: ms(percentile(run.latencies, 99)),
          'added p99': added(99),
          'req/s': rate(run).toFixed(0),
          'vs direct': (rate(run) / rate(base)).toFixed(2),
          'gateway CPU per call': path.cpuOf === undefined ? '' : perCall(run.cpuMs, run),
          'PostgreSQL CPU per call': path.database ? perCall(run.databaseCpuMs, run) : '',
        });
      }
    }
    printTable(
      `Gateway overhead: ${externalUpstream ?? 'the dev upstream'} direct, through Portkey and through ChainMeter's /v1/chat/completions, interleaved (goal: ChainMeter's added p50 at concurrency 1 and req/s at 50 at least Portkey's)`,
      overhead,
    );

    const settled = (since: Date) => countBilledSince(reader, since);
    const throughput: Record<string, string>[] = [];
    for (const [name, count, concurrency, target] of [
      ['100 accounts', SETTLE_SPREAD, 100, gateway],
      ['1 hot account', SETTLE_HOT, 50, (): Target => [gatewayUrl, hotKey]],
    ] as const) {
      const since = new Date();
      const started = performance.now();
      const result = await load(count, concurrency, target, body);
      const deadline = Date.now() + 60_000;
      let done = await settled(since);
      while (done < count && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        done = await settled(since);
      }
      const elapsed = performance.now() - started;
      throughput.push({
        'settled on': name,
        concurrency: String(concurrency),
        completions: String(count),
        settled: String(done),
        'answers p50': ms(percentile(result.latencies, 50)),
        'answers p99': ms(percentile(result.latencies, 99)),
        'settled/s': ((done / elapsed) * 1000).toFixed(0),
      });
    }
    printTable('Settled completions per second (target: > 1,000/s across accounts)', throughput);
    const books = await readBooks(reader);
    console.log(
      `\nbooks after the run: ${books.rows} BILLED usage rows, ${books.entries} USAGE ledger entries, ${books.held ?? 0} micro-USD still held`,
    );
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    await reader.end().catch(() => {});
    await orm.close(true);
    await database.drop();
  }
}

const role = process.argv.find((arg) => arg.startsWith('--role='))?.slice('--role='.length);
if (role === 'upstream') await runUpstream();
else if (role === 'api') await runApi(process.argv[3] as string, process.argv[4] as string);
else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchGateway();
  process.exit(0);
}
