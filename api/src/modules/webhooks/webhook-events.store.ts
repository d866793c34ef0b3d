/**
 * The webhook outbox's write side for other modules: an event is written in the transaction of the change it
 * describes (a credited deposit, a crossed threshold), as one delivery row per live endpoint of the account
 * that subscribed to its type. Nothing is written for an account without such an endpoint, and no HTTP
 * happens here: the delivery worker (`webhook-delivery.worker.ts`) sends them after the commit.
 */
import type { Query, Statement } from '../../db/sql.ts';

export type WebhookEventType =
  | 'DEPOSIT_PENDING'
  | 'DEPOSIT_CREDITED'
  | 'DEPOSIT_REORGED'
  | 'BALANCE_LOW'
  | 'KEY_LIMIT_REACHED'
  | 'AUTO_TOP_UP_SUBMITTED'
  | 'AUTO_TOP_UP_FAILED';

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = [
  'DEPOSIT_PENDING',
  'DEPOSIT_CREDITED',
  'DEPOSIT_REORGED',
  'BALANCE_LOW',
  'KEY_LIMIT_REACHED',
  'AUTO_TOP_UP_SUBMITTED',
  'AUTO_TOP_UP_FAILED',
];

/** An event for the account's endpoints. `data` is sent as JSON: bigints are written as decimal strings. */
export interface WebhookEventInput {
  accountId: string;
  type: WebhookEventType;
  data: Record<string, unknown>;
}

/**
 * The outbox insert, to embed in another module's statement where the event must be written by the very
 * statement that makes the change (a hot path that stays one statement, as a CTE of it): `events` is a
 * parenthesized query with the columns (account_id uuid, event_type text, data jsonb). Its own CTE is
 * materialized (it calls a volatile function), so one event fanned out to several endpoints keeps one event
 * id: the `webhook-id` every endpoint sees for it.
 *
 * The endpoints it writes deliveries for are share-locked (`for share of e`) until the caller's transaction
 * ends: a deletion (`deleteEndpoint`, which fails what its endpoint has pending) then waits for that commit
 * and fails these deliveries too, or, having deleted first, leaves its endpoint out of this insert. Without
 * the lock (the foreign key's key-share lock does not conflict with the deletion's update) an event written
 * while its endpoint was being deleted stayed PENDING and was sent to the deleted endpoint.
 */
export function enqueueWebhookEventsSql(events: string): string {
  return `with events as materialized (
     select gen_random_uuid() as event_id, x.account_id, x.event_type, x.data from ${events} as x
   )
   insert into webhook_deliveries (endpoint_id, account_id, event_id, event_type, event_at, data,
     next_attempt_at, retrying_since, created_at)
   select e.id, events.account_id, events.event_id, events.event_type, now(), events.data, now(), now(), now()
   from events join webhook_endpoints e on e.account_id = events.account_id and e.deleted_at is null
     and events.event_type = any(e.events)
   for share of e`;
}

const ENQUEUE_WEBHOOK_EVENTS: Statement = {
  name: 'cm_enqueue_webhook_events',
  text: enqueueWebhookEventsSql(
    '(select * from unnest($1::uuid[], $2::text[], $3::jsonb[]) as t(account_id, event_type, data))',
  ),
};

function jsonOf(data: Record<string, unknown>): string {
  return JSON.stringify(data, (_key, value: unknown) =>
    typeof value === 'bigint' ? value.toString() : value,
  );
}

/** Writes the events to the outbox in the caller's transaction (cheap when the account has no endpoint for the type). */
export async function enqueueWebhookEvents(
  query: Query,
  events: readonly WebhookEventInput[],
): Promise<void> {
  if (events.length === 0) return;
  await query(ENQUEUE_WEBHOOK_EVENTS, [
    events.map((event) => event.accountId),
    events.map((event) => event.type),
    events.map((event) => jsonOf(event.data)),
  ]);
}

// The deposit's event data is read from the deposit row as this transaction just wrote it. `credits` is the
// Credits form of `amount` (micro-USD / 1000, exact, trailing zeros trimmed); the amounts are strings;
// `creditedAt` is written as GraphQL's DateTime writes it (UTC, milliseconds, `Z`), not as jsonb would.
const ENQUEUE_DEPOSIT_EVENTS: Statement = {
  name: 'cm_enqueue_deposit_webhook_events',
  text: `with events as materialized (
     select gen_random_uuid() as event_id, d.account_id, jsonb_build_object(
       'depositId', d.id, 'chainId', d.chain_id, 'txHash', d.tx_hash, 'logIndex', d.log_index,
       'blockNumber', d.block_number::text, 'wallet', a.wallet_address, 'from', d.from_address,
       'amountToken', d.amount_token::text, 'amount', d.amount::text,
       'credits', trim_scale(d.amount::numeric / 1000)::text, 'status', d.status,
       'confirmations', d.confirmations,
       'creditedAt', to_char(d.credited_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) as data
     from deposits d join accounts a on a.id = d.account_id
     where d.id = any($1::uuid[])
       and exists (select 1 from webhook_endpoints e where e.account_id = d.account_id and e.deleted_at is null
         and $2 = any(e.events))
   )
   insert into webhook_deliveries (endpoint_id, account_id, event_id, event_type, event_at, data,
     next_attempt_at, retrying_since, created_at)
   select e.id, events.account_id, events.event_id, $2, now(), events.data, now(), now(), now()
   from events join webhook_endpoints e on e.account_id = events.account_id and e.deleted_at is null
     and $2 = any(e.events)
   for share of e`,
};

/**
 * The deposit events of these deposits, in the caller's transaction (after it wrote them): data a receiver
 * can act on (deposit id, chain, tx hash and log index, block, the account's wallet, amounts, status,
 * confirmations, credited time). One statement; nothing is read for accounts without such an endpoint.
 */
export async function enqueueDepositWebhookEvents(
  query: Query,
  type: Extract<WebhookEventType, 'DEPOSIT_PENDING' | 'DEPOSIT_CREDITED' | 'DEPOSIT_REORGED'>,
  depositIds: readonly string[],
): Promise<void> {
  if (depositIds.length === 0) return;
  await query(ENQUEUE_DEPOSIT_EVENTS, [depositIds, type]);
}
