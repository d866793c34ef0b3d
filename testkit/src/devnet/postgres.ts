import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The machine's PostgreSQL (trust auth). Tests get a database of their own from it. */
const ADMIN_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/test';

export type TestDatabase = {
  url: string;
  name: string;
  /** Runs one statement on a connection of its own; the rows. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
};

/**
 * Creates a fresh, randomly named database (e.g. one per test file) and returns its URL. `drop`
 * disconnects whoever is still connected and removes it.
 */
export async function createTestDatabase(
  prefix = 'cm_test',
  adminUrl = ADMIN_DATABASE_URL,
): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    query: async <T>(sql: string, params: unknown[] = []) => {
      let rows: T[] = [];
      await withAdmin(url.toString(), async (client) => {
        rows = (await client.query(sql, params)).rows as T[];
      });
      return rows;
    },
    drop: () =>
      withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
  };
}

async function withAdmin(adminUrl: string, run: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await run(client);
  } finally {
    await client.end();
  }
}
