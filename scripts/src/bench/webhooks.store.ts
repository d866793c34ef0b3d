/** What the webhooks benchmark reads from the API's PostgreSQL: the outbox's size. */
import type pg from 'pg';

/** Webhook deliveries written so far (every status). */
export async function countDeliveries(client: pg.Client): Promise<number> {
  const { rows } = await client.query<Record<string, unknown>>(
    'select count(*)::text as count from webhook_deliveries',
  );
  const count = rows[0]?.count;
  if (typeof count !== 'string' || !/^\d+$/.test(count)) throw new Error(`not a count: ${String(count)}`);
  return Number(count);
}
