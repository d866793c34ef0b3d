import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase } from '@chainmeter/testkit/postgres';
import { afterAll } from 'vitest';
import { createOrm, migrateUp, type Orm } from '../../src/db/orm.ts';
import { seedPgliteDataDir } from './pglite-template.ts';

/** The two databases the API runs on: a PostgreSQL server, or embedded PGlite on a data directory. */
export type TestDriver = 'PostgreSQL' | 'PGlite';

/** Both drivers, for a file whose claims must hold on each: `describe.each(TEST_DRIVERS)(…, async (driver) => …)`. */
export const TEST_DRIVERS: readonly TestDriver[] = ['PostgreSQL', 'PGlite'];

export interface TestOrm {
  /** A migrated ORM on a database nobody else uses. */
  orm: Orm;
  driver: TestDriver;
  /** The PostgreSQL database's URL, for a second connection (undefined on PGlite). */
  url: string | undefined;
}

/**
 * A migrated ORM on a database of its own: a freshly created PostgreSQL database (the default), or a fresh
 * PGlite data directory seeded from the initdb'd template (`pglite-template.ts`, seconds of WebAssembly
 * otherwise). Its clean-up (close the ORM, drop the database or remove the directory) is registered with
 * `afterAll` of the suite being collected, so call it while collecting: at the top of a test file
 * (`const { orm } = await testOrmForFile();`) or in an async `describe` callback, for one ORM per driver.
 */
export async function testOrmForFile(driver?: 'PostgreSQL'): Promise<TestOrm & { url: string }>;
export async function testOrmForFile(driver: TestDriver): Promise<TestOrm>;
export async function testOrmForFile(driver: TestDriver = 'PostgreSQL'): Promise<TestOrm> {
  const opened = driver === 'PostgreSQL' ? await openPostgres() : await openPglite();
  try {
    await migrateUp(opened.orm);
  } catch (error) {
    await opened.close();
    throw error;
  }
  afterAll(opened.close);
  return { orm: opened.orm, driver, url: opened.url };
}

interface Opened {
  orm: Orm;
  url: string | undefined;
  close(): Promise<void>;
}

async function openPostgres(): Promise<Opened> {
  const database = await createTestDatabase('cm_api');
  const orm = await createOrm({ databaseUrl: database.url }).catch(async (error: unknown) => {
    await database.drop();
    throw error;
  });
  return {
    orm,
    url: database.url,
    async close() {
      await orm.close(true);
      await database.drop();
    },
  };
}

async function openPglite(): Promise<Opened> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'cm-api-pglite-'));
  const remove = () => rmSync(dataDir, { recursive: true, force: true });
  try {
    await seedPgliteDataDir(dataDir);
    const orm = await createOrm({ pgliteDataDir: dataDir });
    return {
      orm,
      url: undefined,
      async close() {
        await orm.close(true);
        remove();
      },
    };
  } catch (error) {
    remove();
    throw error;
  }
}
