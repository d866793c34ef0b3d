/**
 * Fault-injection helpers for the fault and property tests: kill -9 of an API process, a throwaway
 * PostgreSQL server and a throwaway Redis that a test may stop, restart or kill without touching the
 * machine's shared ones, and direct SQL on a database (the checks read the tables, not the API).
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '@chainmeter/testkit/ports';
import { isGroupAlive, signalGroup, spawnGroup } from '@chainmeter/testkit/process-group';
import pg from 'pg';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createOrm, type Orm } from '../../src/db/orm.ts';
import { appendLedgerEntry } from '../../src/modules/ledger/ledger.service.ts';
import { gqlData, signIn } from './graphql.ts';
import { checkLedgerInvariants, type LedgerReport } from './ledger-invariants.ts';
import type { ApiProcess } from './platform.ts';
import { waitFor } from './wait-for.ts';

/**
 * A new wallet signed in on `apiUrl` (chain `chainId`), credited `amount` micro-USD by an ADJUSTMENT written
 * through the ledger's own statement on `databaseUrl`; its account and session.
 */
export async function fundedWallet(
  apiUrl: string,
  databaseUrl: string,
  chainId: number,
  amount: bigint,
  referenceId: string,
): Promise<{ accountId: string; token: string }> {
  const token = await signIn(apiUrl, privateKeyToAccount(generatePrivateKey()), chainId);
  const { me } = await gqlData<{ me: { id: string } }>(apiUrl, '{ me { id } }', {}, token);
  const orm = await createOrm({ databaseUrl });
  try {
    await appendLedgerEntry(orm.em.fork(), { accountId: me.id, amount, reason: 'ADJUSTMENT', referenceId });
  } finally {
    await orm.close(true);
  }
  return { accountId: me.id, token };
}

/** SIGKILL to the API's whole process group; resolves once nothing of it is left. */
export async function crashApi(api: ApiProcess): Promise<void> {
  const pid = api.child.pid as number;
  signalGroup(pid, 'SIGKILL');
  await waitFor(`API process ${pid} to die`, () => !isGroupAlive(pid), 10_000);
}

/** Runs one statement on `url` with a short-lived connection. */
export async function sql<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/**
 * The README "The ledger" invariants on a database, plus the hold invariants (held = the holds of its open
 * calls, and never more than the balance): throws with every problem listed, else returns the report.
 */
export async function expectLedgerSound(url: string): Promise<LedgerReport> {
  let orm: Orm | undefined;
  try {
    orm = await createOrm({ databaseUrl: url });
    const report = await checkLedgerInvariants(orm.em.fork());
    const holds = await sql<{ id: string; held: string; open: string }>(
      url,
      `select a.id, a.held::text as held, coalesce(sum(u.hold_amount), 0)::text as open
         from accounts a left join usage_records u on u.account_id = a.id and u.status in ('HELD', 'UNSETTLED')
        group by a.id having a.held <> coalesce(sum(u.hold_amount), 0)`,
    );
    for (const row of holds)
      report.problems.push(`account ${row.id}: held ${row.held} != open holds ${row.open}`);
    // (Neither balance nor held can go below zero: CHECK constraints refuse it. Nothing but the hold
    // placement refuses holds beyond the balance, and a deep reorg takes back only what is not held.)
    const overHeld = await sql<{ id: string; balance: string; held: string }>(
      url,
      'select id, balance::text as balance, held::text as held from accounts where held > balance',
    );
    for (const row of overHeld)
      report.problems.push(`account ${row.id}: held ${row.held} is more than its balance ${row.balance}`);
    const usageTwice = await sql<{ reference_id: string; n: string }>(
      url,
      `select reference_id, count(*)::text as n from ledger_entries where reason = 'USAGE'
        group by reference_id having count(*) > 1`,
    );
    for (const row of usageTwice) report.problems.push(`usage ${row.reference_id} billed ${row.n} times`);
    if (report.problems.length > 0) {
      throw new Error(`ledger invariants broken:\n  ${report.problems.join('\n  ')}`);
    }
    return report;
  } finally {
    await orm?.close(true);
  }
}

function postgresBin(name: string): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = path.join(root, version, 'bin', name);
    if (existsSync(bin)) return bin;
  }
  throw new Error(`no ${name} under ${root}`);
}

/** Runs a PostgreSQL binary as the postgres user when we are root (initdb and postgres refuse root). */
function asPostgres(bin: string, args: string[]): { command: string; args: string[] } {
  if (process.getuid?.() === 0) return { command: 'runuser', args: ['-u', 'postgres', '--', bin, ...args] };
  return { command: bin, args };
}

export interface ScratchPostgres {
  /** Admin URL (database `postgres`). */
  adminUrl: string;
  port: number;
  /** A new empty database on this server. */
  createDatabase(name: string): Promise<string>;
  /** Fast shutdown: every connection is cut. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Removes the server and its data directory. */
  destroy(): Promise<void>;
}

/**
 * A PostgreSQL server of our own (initdb in a temp dir, a free port, fsync off): a test may restart it
 * without disturbing the other test files that share the machine's server.
 */
export async function startScratchPostgres(): Promise<ScratchPostgres> {
  const dir = mkdtempSync(path.join(tmpdir(), 'chainmeter-pg-'));
  const dataDir = path.join(dir, 'data');
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const init = asPostgres(postgresBin('initdb'), [
    '-D',
    dataDir,
    '-A',
    'trust',
    '-U',
    'postgres',
    '--no-sync',
    '-E',
    'UTF8',
  ]);
  execFileSync(init.command, init.args, { stdio: 'pipe' });
  const port = await findFreePort();
  const adminUrl = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  let server: ChildProcess | null = null;

  async function start(): Promise<void> {
    const run = asPostgres(postgresBin('postgres'), [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=200',
    ]);
    const child = spawnGroup(run.command, run.args, { stdio: 'ignore' });
    server = child;
    await waitFor(
      `scratch PostgreSQL on port ${port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}`);
        await sql(adminUrl, 'select 1');
        return true;
      },
      30_000,
    );
  }

  async function stop(): Promise<void> {
    const child = server;
    if (!child?.pid) return;
    server = null;
    // SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected, then it exits cleanly.
    signalGroup(child.pid, 'SIGINT');
    const pid = child.pid;
    await waitFor('scratch PostgreSQL to stop', () => !isGroupAlive(pid), 30_000);
  }

  await start();
  return {
    adminUrl,
    port,
    async createDatabase(name) {
      await sql(adminUrl, `create database "${name}"`);
      return `postgresql://postgres@127.0.0.1:${port}/${name}`;
    },
    stop,
    start,
    async destroy() {
      await stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ScratchRedis {
  url: string;
  /** SIGKILL: Redis gone at once, no goodbye to its clients. */
  kill(): Promise<void>;
  start(): Promise<void>;
}

/** A Redis of our own on a free port (no persistence), to kill and bring back. */
export async function startScratchRedis(): Promise<ScratchRedis> {
  const port = await findFreePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;

  async function ping(): Promise<boolean> {
    try {
      return (
        execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'pipe' })
          .toString()
          .trim() === 'PONG'
      );
    } catch {
      return false;
    }
  }

  async function start(): Promise<void> {
    const started = spawnGroup(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    child = started;
    await waitFor(`scratch Redis on port ${port}`, ping, 10_000);
  }

  async function kill(): Promise<void> {
    const current = child;
    if (!current?.pid) return;
    child = null;
    const pid = current.pid;
    signalGroup(pid, 'SIGKILL');
    await waitFor('scratch Redis to die', () => !isGroupAlive(pid), 10_000);
  }

  await start();
  return { url, kill, start };
}

export interface CuttableProxy {
  url: string;
  /** Every open connection is reset and new ones are refused until `restore`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `target` (http://host:port) that a test can cut: the dependency
 * "goes down" for its clients while it keeps running (an anvil keeps its chain).
 */
export async function startCuttableProxy(target: string): Promise<CuttableProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const sockets = new Set<net.Socket>();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(targetPort), hostname);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  const port = await new Promise<number>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      down = true;
      for (const socket of sockets) socket.resetAndDestroy();
      sockets.clear();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
