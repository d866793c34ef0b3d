/**
 * The reads behind `/metrics` and `/readyz` (`platform-probe.ts`, `readiness.ts`): read-only, each one
 * round trip (PGlite serializes everything on one connection, PostgreSQL pays one network hop per
 * statement), rows checked where they enter.
 */
import { z } from 'zod';
import type { SqlRunner, Statement } from '../db/sql.ts';

const PING: Statement = { name: 'cm_probe_ping', text: 'select 1 as ok' };

const DATABASE_STATE: Statement = {
  name: 'cm_probe_database_state',
  text: `select
       (select json_agg(d) from (
          select status, count(*)::text as count, coalesce(sum(amount), 0)::text as amount
          from deposits where chain_id = $1 group by status) d) as deposits,
       (select block_number::text from crediting_cursors where chain_id = $1) as cursor_block,
       (select log_index from crediting_cursors where chain_id = $1) as cursor_log_index,
       (select extract(epoch from now() - min(created_at))::text
          from deposits where chain_id = $1 and status = 'PENDING') as oldest_pending_seconds,
       (select json_agg(h) from (
          select status, count(*)::text as count, coalesce(sum(hold_amount), 0)::text as amount
          from usage_records where status in ('HELD', 'UNSETTLED') group by status) h) as holds`,
};

const NEEDS_REVIEW_COUNT: Statement = {
  name: 'cm_probe_needs_review_count',
  text: `select count(*)::text as count from usage_records where status = 'NEEDS_REVIEW'`,
};

/** A count and a sum (micro-USD) per status; counts and sums come as decimal text. */
const statusTotals = z
  .array(z.object({ status: z.string(), count: z.string(), amount: z.string() }))
  .nullable();

const databaseStateRow = z.object({
  deposits: statusTotals,
  cursor_block: z.string().nullable(),
  cursor_log_index: z.number().int().nullable(),
  oldest_pending_seconds: z.string().nullable(),
  holds: statusTotals,
});

type DatabaseStateRow = z.infer<typeof databaseStateRow>;

/** The database answers a trivial statement. */
export async function pingDatabase(sql: SqlRunner): Promise<void> {
  await sql.query(PING, []);
}

/**
 * Deposits by status on `chainId`, the crediting cursor, the oldest pending deposit's age and the open
 * holds by status, in one statement.
 */
export async function readDatabaseState(sql: SqlRunner, chainId: number): Promise<DatabaseStateRow> {
  const [row] = await sql.query(DATABASE_STATE, [chainId]);
  return databaseStateRow.parse(row);
}

const countRow = z.object({ count: z.string() });

/** Settled calls in NEEDS_REVIEW (a scan of settled usage: cache it long). */
export async function countNeedsReview(sql: SqlRunner): Promise<number> {
  const [row] = await sql.query(NEEDS_REVIEW_COUNT, []);
  return Number(countRow.parse(row).count);
}
