import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../scripts/src/devnet/postgres.ts';
import { createOrm, migrateUp, type Orm } from './orm.ts';

let database: TestDatabase;
const orms: Orm[] = [];

beforeAll(async () => {
  database = await createTestDatabase('cm_migrate');
});

afterAll(async () => {
  for (const orm of orms) await orm.close(true);
  await database?.drop();
});

it('lets several processes start on a fresh database at once: one migrates, the others wait', async () => {
  for (let i = 0; i < 4; i++) orms.push(await createOrm({ databaseUrl: database.url }));
  await Promise.all(orms.map((orm) => migrateUp(orm)));
  const [first] = orms;
  const applied = await first?.em
    .fork()
    .getConnection()
    .execute<{ count: string }[]>(
      "select count(*)::text as count from information_schema.tables where table_name in ('accounts', 'ledger_entries', 'deposits', 'api_keys', 'usage_records')",
    );
  expect(applied?.[0]?.count).toBe('5');
});
