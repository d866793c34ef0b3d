/**
 * The low-balance alert's SQL. The alert's state lives on the account (`low_balance_threshold`,
 * `low_balance_below`, `low_balance_fired_seq`) and moves in the very update that moves the balance: the
 * ledger's statements (`writeLedgerBatch`: crediting, adjustments, reorg reversals; the settlement's one
 * statement: charges) embed {@link lowBalanceAssignmentsSql} in their `update accounts`, return
 * {@link LOW_BALANCE_RETURNING}, and write BALANCE_LOW to the webhook outbox with {@link lowBalanceEventsSql},
 * all in the same statement. Under the row lock of that update, each downward crossing is seen by exactly one
 * change, on any replica. This module alone writes the threshold ({@link setLowBalanceThreshold}).
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import { enqueueWebhookEventsSql } from '../webhooks/webhook-events.store.ts';

/**
 * The `set` assignments of the alert, for an `update accounts` whose new balance and ledger seq are
 * `<alias>.balance` and `<alias>.seq` (PostgreSQL reads the old row in each assignment): the balance is below
 * the threshold now; and when it was not before, this change (its seq) fired BALANCE_LOW. Rising to the
 * threshold or above re-arms it.
 */
export function lowBalanceAssignmentsSql(alias: string): string {
  return `low_balance_below = coalesce(${alias}.balance < accounts.low_balance_threshold, false),
     low_balance_fired_seq = case when ${alias}.balance < accounts.low_balance_threshold and not accounts.low_balance_below
       then ${alias}.seq else accounts.low_balance_fired_seq end`;
}

/** The RETURNING columns of that update that {@link lowBalanceEventsSql} reads (new values). */
export function lowBalanceReturningSql(alias: string): string {
  return `accounts.id as account_id, accounts.low_balance_fired_seq is not distinct from ${alias}.seq as crossed_low,
     accounts.balance, accounts.low_balance_threshold`;
}

/**
 * The outbox insert of BALANCE_LOW for the rows of `updated` (the CTE of the update returning
 * {@link lowBalanceReturningSql}) that crossed the threshold downwards. Data in credits, as GraphQL's
 * `Credits`: `{ balance, threshold }`.
 */
export function lowBalanceEventsSql(updated: string): string {
  return enqueueWebhookEventsSql(`(select account_id, 'BALANCE_LOW'::text as event_type,
       jsonb_build_object('balance', trim_scale(balance::numeric / 1000)::text,
         'threshold', trim_scale(low_balance_threshold::numeric / 1000)::text) as data
     from ${updated} where crossed_low)`);
}

const SET_LOW_BALANCE_THRESHOLD: Statement = {
  name: 'cm_set_low_balance_threshold',
  text: `with old as (
     select id, low_balance_below and low_balance_threshold is not null as alerted from accounts
     where id = $1::uuid for update
   )
   update accounts set low_balance_threshold = $2::bigint,
     low_balance_below = coalesce(balance < $2::bigint, false),
     low_balance_fired_seq = case when balance < $2::bigint and not old.alerted then ledger_seq
       else low_balance_fired_seq end
   from old where accounts.id = old.id
   returning accounts.balance::text as balance, balance < $2::bigint and not old.alerted as crossed`,
};

const updatedRow = z.object({ balance: z.string(), crossed: z.boolean().nullable() });

/**
 * Sets (or, with null, removes) the account's threshold, under the account's row lock. A threshold above the
 * balance is a crossing too, unless the account was already alerted: `crossed` says to fire BALANCE_LOW now
 * (the caller does, in the same transaction). Null when there is no such account.
 */
export async function setLowBalanceThreshold(
  query: Query,
  accountId: string,
  threshold: bigint | null,
): Promise<{ balance: bigint; crossed: boolean } | null> {
  const [raw] = await query(SET_LOW_BALANCE_THRESHOLD, [accountId, threshold?.toString() ?? null]);
  if (raw === undefined) return null;
  const row = updatedRow.parse(raw);
  return { balance: BigInt(row.balance), crossed: row.crossed === true };
}
