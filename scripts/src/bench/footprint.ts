/**
 * Benchmark of `npm start`'s footprint (issue 13, goal 3): the time until it prints `ready`, and the
 * resident memory of every process it runs (start.ts itself, anvil, Ponder and its helpers, the API, the web
 * build while it runs), sampled from /proc.
 *
 * Each run is a real `node scripts/src/start.ts` on a fresh temporary DATA_DIR and free ports (so it never
 * meets a developer's own `npm start` on 8545/4000/42069): the first run is a first start (new chain, new
 * databases), the next ones restart on the data the previous one kept. `BENCH_FOOTPRINT_CACHES=install` first
 * deletes what `npm install` prepared for a first start (`web/dist`, the PGlite templates) and makes it again
 * as a fresh clone's `npm install` does, timed; `none` deletes it, so that the first start does that work.
 *
 * Per run: the time of each line start.ts prints (what the start spends its time on), the peak of the summed
 * RSS over the whole start, and after `ready` the settled figures (the last sample of a
 * `BENCH_FOOTPRINT_SETTLE_S` window): RSS per process, their sum, and their PSS sum (shared pages counted
 * once: the honest "together" figure). Then SIGINT, as Ctrl-C does: the run fails unless start.ts says
 * `stopped` and every process of its tree is gone within 60 s.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pgliteTemplateDir } from '@chainmeter/api/db/pglite-template';
import { findFreePort } from '@chainmeter/testkit/ports';
import { spawnGroup } from '@chainmeter/testkit/process-group';
import { loadBenchConfig } from '../env.ts';
import { ponderPgliteTemplateDir } from '../ponder-pglite.ts';
import { printTable } from './stats.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const START = path.join(ROOT, 'scripts/src/start.ts');
const POSTINSTALL = path.join(ROOT, 'scripts/src/postinstall.ts');
const TARGET_READY_S = 30;
const TARGET_RSS_MB = 1_024;
const SAMPLE_MS = 250;

interface ProcessSample {
  pid: number;
  role: string;
  rssKb: number;
}

interface RunResult {
  readyS: number;
  /** Seconds from spawn to each line start.ts printed before `ready`. */
  phases: { atS: number; line: string }[];
  peakKb: number;
  /** The largest RSS each role reached, in kB. */
  peakByRole: Map<string, number>;
  settled: ProcessSample[];
  settledPssKb: number;
}

/** The processes below `pid` (not `pid` itself), from the kernel's children lists. */
function descendants(pid: number): number[] {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift() as number;
    let children: string;
    try {
      children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    for (const child of children.split(' ').filter(Boolean).map(Number)) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** What a process of the tree is, from its command line. */
function roleOf(pid: number): string {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return 'gone';
  }
  if (args.length === 0) return 'gone'; // exiting (a zombie has no command line)
  const line = args.join(' ');
  if (line.includes('scripts/src/start.ts')) return 'start.ts';
  if (line.includes('scripts/src/start-setup.ts')) return 'start-setup.ts (exits once the chain is set up)';
  if (line.includes('api/src/main.ts')) return 'api';
  if (line.includes('.bin/ponder') || line.includes('ponder/dist')) return 'ponder';
  if (line.includes('esbuild')) return 'ponder esbuild';
  if (line.includes('.bin/anvil') || line.includes('anvil/bin.mjs')) return 'anvil wrapper (node)';
  if (path.basename(args[0] ?? '') === 'anvil') return 'anvil';
  if (line.includes('vite')) return 'web build (vite)';
  return path.basename(args[0] ?? '?');
}

function statusKb(pid: number, field: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function pssKb(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function sampleTree(root: number): ProcessSample[] {
  return [root, ...descendants(root)]
    .map((pid) => ({ pid, role: roleOf(pid), rssKb: statusKb(pid, 'VmRSS') }))
    .filter((sample) => sample.role !== 'gone' && sample.rssKb > 0);
}

const sumKb = (samples: ProcessSample[]) => samples.reduce((total, sample) => total + sample.rssKb, 0);
const mb = (kb: number) => `${Math.round(kb / 1024)} MB`;

async function runOnce(dataDir: string, settleS: number): Promise<RunResult> {
  const env = {
    ...process.env,
    DATA_DIR: dataDir,
    PORT: String(await findFreePort()),
    INDEXER_PORT: String(await findFreePort()),
    DEVNET_PORT: String(await findFreePort()),
    // The benchmark's own chain: never a real one from the environment or .env.
    RPC_URL: '',
  };
  const started = performance.now();
  const child: ChildProcess = spawnGroup(process.execPath, [START], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const root = child.pid as number;
  const phases: { atS: number; line: string }[] = [];
  let output = '';
  let ready = false;
  let stoppedLine = false;
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      output += `${line}\n`;
      if (line === 'stopped') stoppedLine = true;
      if (ready) continue;
      phases.push({ atS: (performance.now() - started) / 1000, line });
      if (line === 'ready') ready = true;
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });

  let peakKb = 0;
  const peakByRole = new Map<string, number>();
  const seen = new Set<number>();
  const sample = () => {
    const samples = sampleTree(root);
    for (const { pid, role, rssKb } of samples) {
      seen.add(pid);
      peakByRole.set(role, Math.max(peakByRole.get(role) ?? 0, rssKb));
    }
    peakKb = Math.max(peakKb, sumKb(samples));
    return samples;
  };

  try {
    const deadline = Date.now() + 300_000;
    while (!ready) {
      if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`npm start was not ready within 300 s:\n${output}`);
      sample();
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
    const readyS = (phases.at(-1) as { atS: number }).atS;
    const settleUntil = Date.now() + settleS * 1000;
    let settled: ProcessSample[] = [];
    while (Date.now() < settleUntil) {
      if (child.exitCode !== null) throw new Error(`npm start exited after ready:\n${output}`);
      settled = sample();
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
    const settledPssKb = settled.reduce((total, { pid }) => total + pssKb(pid), 0);
    return { readyS, phases, peakKb, peakByRole, settled, settledPssKb };
  } finally {
    await stop(
      child,
      seen,
      () => stoppedLine,
      () => output,
    );
  }
}

/** SIGINT to start.ts as Ctrl-C does; throws unless it stops cleanly and leaves no process behind. */
async function stop(
  child: ChildProcess,
  tree: Set<number>,
  saidStopped: () => boolean,
  output: () => string,
): Promise<void> {
  if (child.exitCode === null) child.kill('SIGINT');
  const deadline = Date.now() + 60_000;
  const alive = () =>
    [...tree].filter((pid) => {
      try {
        process.kill(pid, 0);
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
      } catch {
        return false;
      }
    });
  while (Date.now() < deadline && (child.exitCode === null || alive().length > 0)) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const left = alive();
  // Only what this run started: the processes seen in its own tree.
  for (const pid of left) process.kill(pid, 'SIGKILL');
  if (left.length > 0 || child.exitCode === null)
    throw new Error(
      `npm start did not stop within 60 s (left: ${left.join(', ')}):\n${output().slice(-4_000)}`,
    );
  if (!saidStopped() || child.exitCode !== 0)
    throw new Error(`npm start did not stop cleanly (exit ${child.exitCode}):\n${output().slice(-4_000)}`);
}

export async function benchFootprint(): Promise<void> {
  const config = loadBenchConfig();
  if (config.BENCH_FOOTPRINT_CACHES !== 'keep') {
    rmSync(path.join(ROOT, 'web/dist'), { recursive: true, force: true });
    rmSync(pgliteTemplateDir(), { recursive: true, force: true });
    rmSync(ponderPgliteTemplateDir(), { recursive: true, force: true });
  }
  if (config.BENCH_FOOTPRINT_CACHES === 'install') {
    const started = Date.now();
    const install = spawnSync(process.execPath, [POSTINSTALL, '--strict'], { cwd: ROOT, encoding: 'utf8' });
    if (install.status !== 0)
      throw new Error(`the postinstall step failed:\n${install.stdout}\n${install.stderr}`);
    console.log(
      `\npostinstall (the web build and the PGlite templates): ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'chainmeter-footprint-'));
  const results: RunResult[] = [];
  try {
    for (let run = 0; run < config.BENCH_FOOTPRINT_RUNS; run++) {
      const result = await runOnce(dataDir, config.BENCH_FOOTPRINT_SETTLE_S);
      results.push(result);
      const kind = run === 0 ? 'first start' : 'restart';
      printTable(
        `run ${run + 1} (${kind}): what start.ts printed, seconds after spawn`,
        result.phases.map(({ atS, line }) => ({ at: `${atS.toFixed(1)} s`, line: line.slice(0, 80) })),
      );
      const roles = [...new Set([...result.peakByRole.keys()])];
      printTable(
        `run ${run + 1} (${kind}): resident memory per process (peak during the start and settle; settled ${config.BENCH_FOOTPRINT_SETTLE_S} s after ready)`,
        roles.map((role) => ({
          process: role,
          peak: mb(result.peakByRole.get(role) ?? 0),
          settled: mb(sumKb(result.settled.filter((sample) => sample.role === role))),
        })),
      );
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  printTable(
    `npm start footprint (targets: ready < ${TARGET_READY_S} s, all processes < ${mb(TARGET_RSS_MB * 1024)} resident)`,
    results.map((result, index) => ({
      run: index === 0 ? '1 (first start)' : `${index + 1} (restart)`,
      ready: `${result.readyS.toFixed(1)} s`,
      'peak RSS sum': mb(result.peakKb),
      'settled RSS sum': mb(sumKb(result.settled)),
      'settled PSS sum': mb(result.settledPssKb),
      processes: result.settled.length,
    })),
  );
}
