import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { Migrator } from '@mikro-orm/migrations';
import { PgliteDriver } from '@mikro-orm/pglite';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { type AbstractSqlDriver, MikroORM, type Options, type SqlEntityManager } from '@mikro-orm/sql';
import pg from 'pg';
import { entities } from './entities.ts';
import { migrationsList } from './migrations/index.ts';
import { ensurePgliteTemplate, seedFromPgliteTemplate } from './pglite-template.ts';

export type Orm = MikroORM<AbstractSqlDriver, SqlEntityManager>;
/** The EntityManager every service takes: the caller's transaction, never a global one. */
export type Em = SqlEntityManager;

export interface CreateOrmOptions {
  /** PostgreSQL connection string; when unset the database is embedded PGlite. */
  databaseUrl?: string;
  /** PGlite data directory; unset means an in-memory database (tests, throwaway runs). */
  pgliteDataDir?: string;
  /** Log every query. */
  debug?: boolean;
}

/**
 * PGlite's server settings. Its own defaults size shared memory for a server (shared_buffers 128MB, 100
 * connections), all of it inside the WASM linear memory, which grows and never shrinks: ~100 MB of the API's
 * resident memory. The embedded database is a single session over a development-sized data directory, so a
 * 16MB buffer cache holds its hot pages (the rest is a read from the OS page cache) and 5 backend slots are
 * more than the one it uses.
 */
const PGLITE_START_PARAMS = [
  ...PGlite.defaultStartParams,
  ...['-c', 'shared_buffers=16MB', '-c', 'max_connections=5'],
];

/**
 * PostgreSQL when `databaseUrl` is set, else embedded PGlite.
 *
 * PGlite is a single database session. @mikro-orm/pglite talks to it through Kysely's PGlite dialect,
 * which has exactly one connection guarded by a mutex: a transaction holds the mutex from BEGIN to
 * COMMIT, so concurrent transactions run one after another (proved in orm.test.ts). The flip side:
 * inside a transaction, a query on any EntityManager other than the transaction's own (a global
 * `orm.em`, an `em.fork()`) waits for that mutex forever. Services therefore always receive the
 * transaction's EntityManager.
 */
export async function createOrm(options: CreateOrmOptions = {}): Promise<Orm> {
  const common = {
    entities,
    extensions: [Migrator],
    migrations: {
      migrationsList,
      snapshot: false,
      snapshotOnMigrate: false,
      silent: true,
    },
    debug: options.debug ?? false,
    // Services fork or receive their own EntityManager; a shared global one is a bug.
    allowGlobalContext: false,
  } satisfies Partial<Options>;
  if (options.databaseUrl) {
    return (await MikroORM.init({
      ...common,
      driver: PostgreSqlDriver,
      clientUrl: options.databaseUrl,
    })) as unknown as Orm;
  }
  if (options.pgliteDataDir) {
    // A first start copies the cluster `npm install` made, rather than running initdb (pglite-template.ts).
    seedFromPgliteTemplate(options.pgliteDataDir);
    mkdirSync(options.pgliteDataDir, { recursive: true });
  }
  return (await MikroORM.init({
    ...common,
    driver: PgliteDriver,
    driverOptions: { startParams: PGLITE_START_PARAMS },
    // Without a named-database option the data directory is the whole cluster (database "postgres").
    dbName: options.pgliteDataDir ?? 'memory://',
  })) as unknown as Orm;
}

/**
 * Makes the PGlite template cluster when it is missing (`npm install` does, and the tests that need one)
 * and returns its path: a data directory opened the way the API opens it, closed right after `initdb`.
 */
export function preparePgliteTemplate(): Promise<string> {
  return ensurePgliteTemplate(async (dataDir) => {
    const orm = await createOrm({ pgliteDataDir: dataDir });
    try {
      await orm.em.fork().execute('select 1');
    } finally {
      await orm.close(true);
    }
  });
}

/** Any constant shared by every ChainMeter process: the key of the migrations' advisory lock. */
const MIGRATION_LOCK_KEY = 7_262_013_427;

/**
 * Applies every pending migration of `migrations/index.ts`, in order. Several API processes may start at
 * once on a fresh PostgreSQL database: a session-level advisory lock, held on a connection of its own,
 * lets one of them migrate while the others wait and then find nothing left to do. (PGlite has a single
 * process by construction.)
 */
export async function migrateUp(orm: Orm): Promise<void> {
  const url = orm.config.get('clientUrl');
  if (!url) {
    await orm.migrator.up();
    return;
  }
  const lock = new pg.Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await orm.migrator.up();
  } finally {
    await lock.end();
  }
}
