import { randomBytes } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { getAddress } from 'viem';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hashApiKeySecret, viewerFromApiKey } from '../modules/apikeys/apikeys.service.ts';
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

it("turns existing keys, an auditor's included, into ACCOUNT keys (issue 9, item 11)", async () => {
  const scoped = await createTestDatabase('cm_migrate_scope');
  const orm = await createOrm({ databaseUrl: scoped.url });
  try {
    await orm.migrator.up({ to: 'Migration20261124040000_stream_progress' });
    const auditor = getAddress(`0x${'a1'.repeat(20)}`);
    const connection = orm.em.fork().getConnection();
    const [account] = await connection.execute<{ id: string }[]>(
      'insert into accounts (id, wallet_address) values (gen_random_uuid(), ?) returning id',
      [auditor],
    );
    const secret = `cm_${randomBytes(32).toString('base64url')}`;
    await connection.execute(
      `insert into api_keys (id, account_id, name, prefix, secret_hash, created_at)
       values (gen_random_uuid(), ?, 'old audit key', 'cm_old', ?, now())`,
      [account?.id, hashApiKeySecret(secret)],
    );
    await orm.migrator.up();
    const [key] = await connection.execute<{ scope: string }[]>('select scope from api_keys');
    expect(key?.scope).toBe('ACCOUNT');
    // Its wallet is still an auditor; the key no longer is.
    const viewer = await viewerFromApiKey(orm.em.fork(), { auditorAddresses: [auditor] }, secret);
    expect(viewer?.role).toBe('user');
  } finally {
    await orm.close(true);
    await scoped.drop();
  }
});
