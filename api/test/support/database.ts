import { createTestDatabase } from '@chainmeter/testkit/postgres';
import { createOrm, migrateUp, type Orm } from '../../src/db/orm.ts';

/** A migrated ORM on a fresh PostgreSQL database; `close` also drops the database. */
export async function createTestOrm(): Promise<{ orm: Orm; url: string; close(): Promise<void> }> {
  const database = await createTestDatabase('cm_api');
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
