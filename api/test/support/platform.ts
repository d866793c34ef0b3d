/**
 * The whole platform for an integration test file: a real anvil chain with the test token, a real Ponder
 * indexer, a fresh PostgreSQL database (or PGlite) and the API, in-process or as real child processes.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { type Indexer, startIndexer } from '@chainmeter/testkit/indexer';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { captureOutput, spawnGroup, stopGroup } from '@chainmeter/testkit/process-group';
import { deployTestUsdc } from '@chainmeter/testkit/token';
import pg from 'pg';
import type { Address } from 'viem';
import { loadConfig } from '../../src/env.ts';
import { type RunningApi, startApi } from '../../src/server.ts';
import { seedApiDataDir } from './pglite-template.ts';

const API_MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** Rate limits out of the way, for tests that load the API on purpose (limits have their own tests). */
export const UNLIMITED_RATES = {
  RATE_LIMIT_REQUESTS_PER_MINUTE: '1000000',
  RATE_LIMIT_TOKENS_PER_MINUTE: '1000000000',
  RATE_LIMIT_IP_PER_MINUTE: '100000',
};

/**
 * Metering for tests that kill API processes: a killed process's holds expire `holdTtlMs` after its last
 * heartbeat, a live one beats every 50 ms (so a running call keeps its hold unless its process gets no CPU
 * for most of the TTL), an upstream call gives up at four fifths of the TTL, expired holds are looked for
 * every 100 ms, and no rate limit slows the load.
 */
export function killableMeteringEnv(holdTtlMs: number): Record<string, string> {
  return {
    LLM_TIMEOUT_MS: String((holdTtlMs * 4) / 5),
    METERING_HOLD_TTL_MS: String(holdTtlMs),
    METERING_STREAM_PROGRESS_MS: '50',
    METERING_RETRY_MS: '100',
    ...UNLIMITED_RATES,
  };
}

export interface Platform {
  anvil: Anvil;
  token: Address;
  treasury: Address;
  chainId: number;
  indexer: Indexer;
  /** The API database (PostgreSQL), or undefined on PGlite. */
  database: TestDatabase | undefined;
  /** Environment for an API process on this platform. */
  apiEnv(overrides?: Record<string, string>): Record<string, string>;
  startApi(overrides?: Record<string, string>): Promise<RunningApi>;
  /** Stops the indexer (SIGINT) and starts it again on the same port and database. */
  restartIndexer(): Promise<void>;
  close(): Promise<void>;
}

export interface PlatformOptions {
  /** Use embedded PGlite for the API and the indexer instead of PostgreSQL. */
  pglite?: boolean;
  confirmations?: number;
  /**
   * The RPC URL the indexer reads the chain through, given anvil's (e.g. a proxy a fault test can cut).
   * Default: anvil's own.
   */
  indexerRpcUrl?: (anvilRpcUrl: string) => Promise<string>;
}

export async function startPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const chainId = 31337;
  const anvil = await startAnvil({ chainId });
  const cleanups: (() => Promise<void>)[] = [() => anvil.stop()];
  try {
    const token = await deployTestUsdc(anvil.rpcUrl);
    const treasury = devAccounts.treasury.address;
    const scratch = mkdtempSync(path.join(tmpdir(), 'chainmeter-test-'));
    cleanups.push(async () => rmSync(scratch, { recursive: true, force: true }));
    const indexerDatabase = options.pglite ? undefined : await createTestDatabase('cm_ponder');
    if (indexerDatabase) cleanups.push(() => indexerDatabase.drop());
    const indexerOptions = {
      rpcUrl: options.indexerRpcUrl ? await options.indexerRpcUrl(anvil.rpcUrl) : anvil.rpcUrl,
      chainId,
      usdcAddress: token,
      treasuryAddress: treasury,
      databaseUrl: indexerDatabase?.url,
      dataDir: path.join(scratch, 'ponder'),
      logFile: path.join(scratch, 'ponder.log'),
    };
    let indexer = await startIndexer(indexerOptions);
    cleanups.push(() => indexer.stop());
    const database = options.pglite ? undefined : await createTestDatabase('cm_api');
    if (database) cleanups.push(() => database.drop());
    // A first start on an empty DATA_DIR would spend seconds in PGlite's initdb: start from its result.
    else await seedApiDataDir(path.join(scratch, 'api-data'));
    const apiEnv = (overrides: Record<string, string> = {}) => ({
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      PUBLIC_ORIGIN: 'http://localhost:4000',
      RPC_URL: anvil.rpcUrl,
      CHAIN_ID: String(chainId),
      USDC_ADDRESS: token,
      TREASURY_ADDRESS: treasury,
      INDEXER_URL: indexer.url,
      CONFIRMATIONS: String(options.confirmations ?? 2),
      CREDITING_POLL_MS: '50',
      LOG_LEVEL: 'warn',
      DATA_DIR: path.join(scratch, 'api-data'),
      ...(database ? { DATABASE_URL: database.url } : {}),
      ...overrides,
    });
    return {
      anvil,
      token,
      treasury,
      chainId,
      get indexer() {
        return indexer;
      },
      database,
      apiEnv,
      startApi: async (overrides) => {
        const api = await startApi(loadConfig(apiEnv(overrides)));
        cleanups.push(() => api.close());
        return api;
      },
      restartIndexer: async () => {
        await indexer.stop();
        indexer = await startIndexer({ ...indexerOptions, port: indexer.port });
      },
      close: async () => {
        for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
      },
    };
  } catch (error) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    throw error;
  }
}

/** A client on the platform's API database (PostgreSQL only), to read what the API wrote; the caller ends it. */
export async function connectApiDatabase(platform: Pick<Platform, 'database'>): Promise<pg.Client> {
  if (!platform.database) throw new Error('these tests run on PostgreSQL');
  const db = new pg.Client({ connectionString: platform.database.url });
  await db.connect();
  return db;
}

/** The devnet's i-th payer account (fails loudly rather than returning undefined). */
export function devPayer(index: number) {
  const account = devAccounts.payers[index];
  if (!account) throw new Error(`the devnet has no payer ${index}`);
  return account;
}

export interface ApiProcess {
  url: string;
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/** The API as a real process (`node api/src/main.ts`), for restarts and several replicas at once. */
export async function spawnApiProcess(env: Record<string, string>): Promise<ApiProcess> {
  const port = await findFreePort();
  const child = spawnGroup(process.execPath, [API_MAIN], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`API process exited: ${output.text()}`);
    const healthy = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (healthy) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    child,
    logs: () => output.text(),
    stop: () => stopGroup(child, { signal: 'SIGTERM', graceMs: 15_000 }),
  };
}
