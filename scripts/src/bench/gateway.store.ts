/** What the gateway benchmark reads from the API's PostgreSQL: settlements so far, and the books after. */
import type pg from 'pg';
import { z } from 'zod';

const count = z.object({ n: z.number().int() });

/** Calls settled (BILLED) since `since`. */
export async function countBilledSince(client: pg.ClientBase, since: Date): Promise<number> {
  const { rows } = await client.query(
    `select count(*)::int as n from usage_records where status = 'BILLED' and created_at >= $1::timestamptz`,
    [since.toISOString()],
  );
  return count.parse(rows[0]).n;
}

const books = z.object({ held: z.string().nullable(), entries: z.number().int(), rows: z.number().int() });

/** BILLED usage rows, USAGE ledger entries and what accounts still hold, after a run. */
export async function readBooks(client: pg.ClientBase): Promise<z.infer<typeof books>> {
  const { rows } = await client.query(
    `select (select sum(held)::text from accounts) as held,
       (select count(*)::int from ledger_entries where reason = 'USAGE') as entries,
       (select count(*)::int from usage_records where status = 'BILLED') as rows`,
  );
  return books.parse(rows[0]);
}

const backend = z.object({ pid: z.number().int() });

/**
 * The PostgreSQL server processes serving the database `client` is connected to (the API's pool, and this
 * client itself): their CPU time is the database's share of a call.
 */
export async function backendPids(client: pg.ClientBase): Promise<number[]> {
  const { rows } = await client.query(
    'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
  );
  return rows.map((row) => backend.parse(row).pid);
}
