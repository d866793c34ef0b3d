import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createOrm, migrateUp, type Orm } from '../../src/db/orm.ts';

/** The test PostgreSQL: trust auth on 127.0.0.1:5432; database `test` exists for administration. */
const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh, randomly named database for one test file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `cm_test_${randomBytes(6).toString('hex')}`;
  await admin(`create database ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    // `with (force)` ends connections a test forgot to close, so a failing test cannot leak databases.
    drop: () => admin(`drop database if exists ${name} with (force)`),
  };
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A migrated ORM on a fresh PostgreSQL database; `close` also drops the database. */
export async function createTestOrm(): Promise<{ orm: Orm; url: string; close(): Promise<void> }> {
  const database = await createTestDatabase();
  const orm = await createOrm({ databaseUrl: database.url });
  await migrateUp(orm);
  return {
    orm,
    url: database.url,
    async close() {
      await orm.close(true);
      await database.drop();
    },
  };
}
