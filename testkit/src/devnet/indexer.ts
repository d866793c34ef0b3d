import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findFreePort } from './ports.ts';
import { captureOutput, spawnGroup, stopGroup } from './process-group.ts';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const INDEXER_DIR = `${REPO_ROOT}indexer`;
const PONDER_BIN = `${REPO_ROOT}node_modules/.bin/ponder`;

export type StartIndexerOptions = {
  rpcUrl: string;
  chainId: number;
  usdcAddress: string;
  treasuryAddress: string;
  /** First block to index. Default 0. */
  startBlock?: number;
  /** Omitted: a free port. Ponder moves to the next free port if this one is taken; `port` tells. */
  port?: number;
  /** PostgreSQL for Ponder. Omitted: embedded PGlite in `dataDir`. */
  databaseUrl?: string;
  /**
   * Ponder's `--schema`. A schema is tied to the build that created it (config, schema and
   * handlers), so use a new name after changing any of them, or drop the schema. Default `chainmeter`.
   */
  databaseSchema?: string;
  /** PGlite data directory. Default: `indexer/.ponder/pglite`. */
  dataDir?: string;
  /** Default 100 ms on chain 31337 (Ponder's floor), 1000 ms elsewhere. */
  pollingIntervalMs?: number;
  /** Appends Ponder's output (JSON lines) to this file. */
  logFile?: string;
  /** Node flags for Ponder's process (e.g. `--max-semi-space-size=8`). */
  nodeArgs?: string[];
  /** How long to wait for `/ready`. Default 120 s (Ponder waits ~25 s for a stale schema lock). */
  readyTimeoutMs?: number;
};

export type Indexer = {
  /** Base URL of the indexer's HTTP server, e.g. `http://127.0.0.1:42069`. */
  url: string;
  port: number;
  /** SIGINT (so the schema is unlocked for the next start), then SIGKILL after 15 s. */
  stop(): Promise<void>;
  /** Ponder's recent output, for debugging. */
  logs(): string;
};

export class IndexerStartError extends Error {
  override name = 'IndexerStartError';
}

/**
 * Spawns `ponder start` in `indexer/` and resolves once it has caught up: `/ready` answers 200 and
 * `/chainmeter/head` has reached the chain's head as it was when Ponder became ready. (`/ready` alone
 * is not enough: Ponder backfills up to the finalized block, 30 below the head on anvil, and indexes
 * the rest in realtime after `/ready`.)
 *
 * @example
 * const indexer = await startIndexer({ rpcUrl, chainId: 31337, usdcAddress, treasuryAddress, databaseUrl });
 * const head = await (await fetch(`${indexer.url}/chainmeter/head`)).json();
 */
export async function startIndexer(options: StartIndexerOptions): Promise<Indexer> {
  const ponder = await spawnPonder('start', options);
  try {
    const timeoutMs = options.readyTimeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    const port = await waitForPort(ponder, ['/ready', '/chainmeter/head'], timeoutMs);
    const url = `http://127.0.0.1:${port}`;
    await waitForIndexedBlock(url, await chainHead(options.rpcUrl), {
      timeoutMs: Math.max(deadline - Date.now(), 1_000),
    });
    return { url, port, stop: ponder.stop, logs: ponder.logs };
  } catch (error) {
    await ponder.stop();
    throw error;
  }
}

/**
 * Spawns `ponder serve`: Ponder's HTTP server and the `/chainmeter/*` routes over the schema a
 * `ponder start` left in PostgreSQL, without indexing anything (so the tables stay exactly as they
 * are). Resolves once `/health` answers. PostgreSQL only: Ponder refuses `serve` on PGlite.
 */
export async function serveIndexer(options: StartIndexerOptions & { databaseUrl: string }): Promise<Indexer> {
  const ponder = await spawnPonder('serve', options);
  try {
    const port = await waitForPort(ponder, ['/health'], options.readyTimeoutMs ?? 60_000);
    return { url: `http://127.0.0.1:${port}`, port, stop: ponder.stop, logs: ponder.logs };
  } catch (error) {
    await ponder.stop();
    throw error;
  }
}

type PonderProcess = {
  child: ChildProcess;
  logs(): string;
  /** SIGINT, then SIGKILL after 15 s; idempotent. */
  stop(): Promise<void>;
};

async function spawnPonder(command: 'start' | 'serve', options: StartIndexerOptions): Promise<PonderProcess> {
  const requestedPort = options.port ?? (await findFreePort());
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Ponder falls back to these when its config names no database: never let the API's leak in.
  for (const name of [
    'DATABASE_URL',
    'DATABASE_PRIVATE_URL',
    'DATABASE_SCHEMA',
    'PONDER_DATABASE_URL',
    'PONDER_PGLITE_DIR',
    // Ponder listens on $PORT when set: that one is the API's.
    'PORT',
  ]) {
    delete env[name];
  }
  Object.assign(env, {
    PONDER_RPC_URL: options.rpcUrl,
    PONDER_CHAIN_ID: String(options.chainId),
    PONDER_USDC_ADDRESS: options.usdcAddress,
    PONDER_TREASURY_ADDRESS: options.treasuryAddress,
    PONDER_START_BLOCK: String(options.startBlock ?? 0),
  });
  if (options.pollingIntervalMs !== undefined)
    env.PONDER_POLLING_INTERVAL_MS = String(options.pollingIntervalMs);
  if (options.databaseUrl !== undefined) env.PONDER_DATABASE_URL = options.databaseUrl;
  if (options.dataDir !== undefined) env.PONDER_PGLITE_DIR = options.dataDir;

  const args = [
    ...(options.nodeArgs ?? []),
    PONDER_BIN,
    command,
    '--schema',
    options.databaseSchema ?? 'chainmeter',
    '-p',
    String(requestedPort),
    '-H',
    '127.0.0.1',
    '--log-format',
    'json',
  ];
  const child = spawnGroup(process.execPath, args, {
    cwd: INDEXER_DIR,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child, 256_000);
  if (options.logFile !== undefined) {
    const file = createWriteStream(options.logFile, { flags: 'a' });
    child.stdout?.pipe(file);
    child.stderr?.pipe(file);
  }
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= stopGroup(child, { signal: 'SIGINT', graceMs: 15_000 });
    return stopped;
  };
  return { child, logs: output.text, stop };
}

/** The port Ponder actually bound, from its "Created HTTP server" log line. */
function boundPort(logs: string): number | undefined {
  for (const line of logs.split('\n')) {
    if (!line.includes('Created HTTP server')) continue;
    try {
      const port = (JSON.parse(line) as { port?: unknown }).port;
      if (typeof port === 'number') return port;
    } catch {
      // A partial line: the next poll sees it whole.
    }
  }
  return undefined;
}

async function answers200(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Waits until Ponder has bound its port and every one of `paths` answers 200 there; the port. */
async function waitForPort(ponder: PonderProcess, paths: string[], timeoutMs: number): Promise<number> {
  const { child, logs } = ponder;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new IndexerStartError(
        `ponder exited before it was ready (${child.exitCode ?? child.signalCode}):\n${logs()}`,
      );
    }
    const port = boundPort(logs());
    if (port !== undefined && (await everyAnswers200(port, paths))) return port;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new IndexerStartError(`ponder was not ready within ${timeoutMs} ms:\n${logs().slice(-8_000)}`);
}

async function everyAnswers200(port: number, paths: string[]): Promise<boolean> {
  for (const path of paths) if (!(await answers200(`http://127.0.0.1:${port}${path}`))) return false;
  return true;
}

async function chainHead(rpcUrl: string): Promise<bigint> {
  const response = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }),
  });
  const body = (await response.json()) as { result?: string; error?: { message: string } };
  if (body.result === undefined)
    throw new IndexerStartError(`eth_blockNumber failed: ${body.error?.message}`);
  return BigInt(body.result);
}

export type IndexedHeadJson = { chainId: number; blockNumber: string; blockHash: string; timestamp: string };

/**
 * Polls `/chainmeter/head` until the indexer has processed `blockNumber` (and, with `blockHash`,
 * until the head is exactly that block: after a reorg the old hash at the same height is not
 * enough). Resolves with the head; rejects after `timeoutMs` (default 30 s).
 */
export async function waitForIndexedBlock(
  indexerUrl: string,
  blockNumber: bigint,
  options: { timeoutMs?: number; blockHash?: string } = {},
): Promise<IndexedHeadJson> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let last: IndexedHeadJson | undefined;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${indexerUrl}/chainmeter/head`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) {
        last = (await response.json()) as IndexedHeadJson;
        const reached = BigInt(last.blockNumber) >= blockNumber;
        const sameBlock = options.blockHash === undefined || last.blockHash === options.blockHash;
        if (reached && sameBlock) return last;
      } else {
        await response.arrayBuffer();
      }
    } catch {
      // Not listening yet, or busy: poll again.
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(
    `indexer at ${indexerUrl} did not reach block ${blockNumber}${options.blockHash ? ` (${options.blockHash})` : ''}; last head: ${JSON.stringify(last)}`,
  );
}
