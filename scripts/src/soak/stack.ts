/**
 * The production shape of docker-compose.yml, natively: the machine's PostgreSQL (a fresh database for the
 * API and one for the indexer, both reached through a relay the soak can pause), a Redis of the soak's own,
 * Ponder on PostgreSQL, two API replicas (`node api/src/main.ts`, REDIS_URL set) behind nginx configured from
 * deploy/nginx.conf, anvil mining a block every second with the test USDC, and the dev model as the LLM
 * upstream. Every part can be crashed and restarted on the same address, which is what the faults do.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { type Indexer, startIndexer } from '@chainmeter/testkit/indexer';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { deployTestUsdc } from '@chainmeter/testkit/token';
import type { Address } from 'viem';
import { type Nginx, startNginx } from './nginx.ts';
import { answers200, type Child, spawnChild, waitUntil } from './processes.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const API_MAIN = path.join(ROOT, 'api/src/main.ts');
const HERE = fileURLToPath(new URL('.', import.meta.url));
export const CHAIN_ID = 31337;
/** Blocks on top of a transfer before it is credited (the devnet's default). A deep reorg goes below it. */
export const CONFIRMATIONS = 2;
/** A hold whose process died is released (or billed, for a stream) after this: the end checks wait for it. */
export const HOLD_TTL_MS = 20_000;

export interface Replica {
  name: string;
  port: number;
  url: string;
  child: Child;
}

export interface Stack {
  runDir: string;
  rpcUrl: string;
  token: Address;
  treasury: Address;
  /** The API's database, read directly (not through the relay) by the checks. */
  apiDatabase: TestDatabase;
  /** The environment an API replica runs with (the audit reads the same variables). */
  apiEnv: Record<string, string>;
  nginxUrl: string;
  metricsToken: string;
  replicas: Replica[];
  indexerUrl: string;
  /** SIGKILL of a replica's process group; resolves once it is gone. */
  killReplica(index: number): Promise<void>;
  /** Starts the replica again on its port; resolves once `/healthz` answers. */
  startReplica(index: number): Promise<void>;
  /** SIGKILL of Redis, then a new Redis on the same port (no persistence, as in docker-compose.yml). */
  restartRedis(): Promise<void>;
  /**
   * SIGINT to Ponder (DESIGN.md: SIGTERM leaves its schema locked), then a new Ponder on the same port,
   * resolved once it has caught up with the chain; how long the old one took to exit.
   */
  restartIndexer(): Promise<{ stoppedMs: number }>;
  /** Stops (SIGSTOP) or resumes (SIGCONT) the relay every platform connection to PostgreSQL goes through. */
  pausePostgres(paused: boolean): void;
  close(): Promise<void>;
}

type Say = (line: string) => void;

/** The machine's PostgreSQL, started with node-svc's own command when it is down. */
function ensurePostgres(say: Say): void {
  const ready = () => spawnSync('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432']).status === 0;
  if (ready()) return;
  say('PostgreSQL is down: starting it (pg_ctlcluster ... main start)');
  const version = readdirSync('/etc/postgresql')[0];
  if (!version) throw new Error('PostgreSQL is down and /etc/postgresql names no cluster to start');
  spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
  for (let i = 0; i < 50 && !ready(); i++) spawnSync('sleep', ['0.2']);
  if (!ready()) throw new Error('PostgreSQL did not come up on 127.0.0.1:5432');
}

/** `+PONG` to a RESP PING on `port`. */
export function redisPing(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

function relayUrl(databaseUrl: string, relayPort: number): string {
  const url = new URL(databaseUrl);
  url.port = String(relayPort);
  return url.toString();
}

export async function startStack(runDir: string, say: Say): Promise<Stack> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const log = (name: string) => path.join(runDir, `${name}.log`);
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error) => say(`cleanup: ${error}`));
  };
  try {
    ensurePostgres(say);
    const apiDatabase = await createTestDatabase('cm_soak_api');
    cleanups.push(() => apiDatabase.drop());
    const indexerDatabase = await createTestDatabase('cm_soak_ponder');
    cleanups.push(() => indexerDatabase.drop());

    const relayPort = await findFreePort();
    const relay = spawnChild(
      'pg-relay',
      process.execPath,
      [path.join(HERE, 'pg-relay.ts'), String(relayPort), '127.0.0.1', '5432'],
      {
        logFile: log('pg-relay'),
      },
    );
    cleanups.push(async () => {
      relay.signal('SIGCONT');
      await relay.stop();
    });
    await waitUntil('the PostgreSQL relay', async () => relay.logs().includes('"relay"'), {
      timeoutMs: 15_000,
      child: relay,
    });

    const redisPort = await findFreePort();
    let redis: Child | undefined;
    const startRedis = async () => {
      redis = spawnChild(
        'redis',
        'redis-server',
        [
          '--port',
          String(redisPort),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          runDir,
        ],
        { logFile: log('redis') },
      );
      await waitUntil('Redis', () => redisPing(redisPort), { timeoutMs: 15_000, child: redis });
    };
    await startRedis();
    cleanups.push(async () => redis?.stop());

    const anvil: Anvil = await startAnvil({ chainId: CHAIN_ID, blockTime: 1 });
    cleanups.push(() => anvil.stop());
    const token = await deployTestUsdc(anvil.rpcUrl);
    const treasury = devAccounts.treasury.address;
    say(`chain     ${anvil.rpcUrl} (a block every second), token ${token}`);

    const devModelPort = await findFreePort();
    const devModel = spawnChild(
      'dev-model',
      process.execPath,
      [path.join(HERE, 'dev-model.ts'), String(devModelPort)],
      {
        logFile: log('dev-model'),
      },
    );
    cleanups.push(() => devModel.stop());
    const llmBaseUrl = `http://127.0.0.1:${devModelPort}/v1`;
    await waitUntil('the dev model', () => answers200(`${llmBaseUrl}/models`), {
      timeoutMs: 30_000,
      child: devModel,
    });

    const indexerOptions = {
      rpcUrl: anvil.rpcUrl,
      chainId: CHAIN_ID,
      usdcAddress: token,
      treasuryAddress: treasury,
      databaseUrl: relayUrl(indexerDatabase.url, relayPort),
      logFile: log('ponder'),
    };
    let indexer: Indexer = await startIndexer(indexerOptions);
    cleanups.push(() => indexer.stop());
    say(`indexer   ${indexer.url} (Ponder on PostgreSQL ${indexerDatabase.name})`);

    const metricsToken = randomBytes(16).toString('hex');
    const nginxPort = await findFreePort();
    const nginxUrl = `http://127.0.0.1:${nginxPort}`;
    const apiEnv: Record<string, string> = {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PUBLIC_ORIGIN: nginxUrl,
      DATABASE_URL: relayUrl(apiDatabase.url, relayPort),
      DATA_DIR: path.join(runDir, 'api-data'),
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      RPC_URL: anvil.rpcUrl,
      CHAIN_ID: String(CHAIN_ID),
      USDC_ADDRESS: token,
      TREASURY_ADDRESS: treasury,
      INDEXER_URL: indexer.url,
      CONFIRMATIONS: String(CONFIRMATIONS),
      LLM_BASE_URL: llmBaseUrl,
      // nginx is the only proxy, on loopback: its X-Forwarded-For is believed.
      TRUSTED_PROXIES: '127.0.0.1/32',
      METRICS_TOKEN: metricsToken,
      LOG_LEVEL: 'warn',
      // The load is the soak's own, from one address: limits stay on (in Redis) but out of its way.
      RATE_LIMIT_REQUESTS_PER_MINUTE: '1000000',
      RATE_LIMIT_TOKENS_PER_MINUTE: '1000000000',
      RATE_LIMIT_IP_PER_MINUTE: '100000',
      // Holds of calls on a killed replica are released after this (the end checks wait for it).
      LLM_TIMEOUT_MS: '10000',
      METERING_HOLD_TTL_MS: String(HOLD_TTL_MS),
    };
    const replicas: Replica[] = [];
    for (const name of ['api-1', 'api-2']) {
      const port = await findFreePort();
      replicas.push({ name, port, url: `http://127.0.0.1:${port}`, child: undefined as unknown as Child });
    }
    const startReplica = async (index: number) => {
      const replica = replicas[index] as Replica;
      replica.child = spawnChild(replica.name, process.execPath, [API_MAIN], {
        env: { ...process.env, ...apiEnv, PORT: String(replica.port) },
        logFile: log(replica.name),
      });
      await waitUntil(`${replica.name} to answer /healthz`, () => answers200(`${replica.url}/healthz`), {
        timeoutMs: 90_000,
        child: replica.child,
      });
    };
    // One after the other: the first runs the migrations.
    for (const index of replicas.keys()) {
      await startReplica(index);
      cleanups.push(() => (replicas[index] as Replica).child.stop('SIGTERM', 15_000));
    }
    say(
      `api       ${replicas.map((replica) => replica.url).join(', ')} (PostgreSQL ${apiDatabase.name}, Redis :${redisPort})`,
    );

    const nginx: Nginx = await startNginx(
      {
        listenPort: nginxPort,
        upstreamPorts: [replicas[0]?.port as number, replicas[1]?.port as number],
        prefix: path.join(runDir, 'nginx'),
      },
      log('nginx'),
    );
    cleanups.push(() => nginx.stop());
    say(`nginx     ${nginx.url} -> both replicas (deploy/nginx.conf)`);

    return {
      runDir,
      rpcUrl: anvil.rpcUrl,
      token,
      treasury,
      apiDatabase,
      apiEnv,
      nginxUrl,
      metricsToken,
      replicas,
      get indexerUrl() {
        return indexer.url;
      },
      killReplica: async (index) => {
        const replica = replicas[index] as Replica;
        replica.child.signal('SIGKILL');
        await replica.child.stop('SIGKILL', 5_000);
      },
      startReplica,
      restartRedis: async () => {
        redis?.signal('SIGKILL');
        await redis?.stop('SIGKILL', 5_000);
        await startRedis();
      },
      restartIndexer: async () => {
        const port = indexer.port;
        const stopping = Date.now();
        await indexer.stop();
        const stoppedMs = Date.now() - stopping;
        indexer = await startIndexer({ ...indexerOptions, port });
        // Ponder binds the next free port when its own is taken: the replicas know only this one.
        if (indexer.port !== port) throw new Error(`Ponder came back on port ${indexer.port}, not ${port}`);
        return { stoppedMs };
      },
      pausePostgres: (paused) => relay.signal(paused ? 'SIGSTOP' : 'SIGCONT'),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
