/** What the crediting benchmark reads from the API's PostgreSQL to see the worker's progress. */
import type pg from 'pg';

/** Deposits credited so far, on every chain. */
export async function countCreditedDeposits(client: pg.Client): Promise<number> {
  const { rows } = await client.query<Record<string, unknown>>(
    "select count(*)::text as count from deposits where status = 'CREDITED'",
  );
  const count = rows[0]?.count;
  if (typeof count !== 'string' || !/^\d+$/.test(count)) throw new Error(`not a count: ${String(count)}`);
  return Number(count);
}
