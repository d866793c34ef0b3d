/**
 * The webhooks module's SQL: endpoints (the only writer of `webhook_endpoints`), the outbox's delivery side
 * (claim, attempt results, redelivery; `webhook-events.store.ts` is its insert side) and the delivery log.
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from './webhook-events.store.ts';

export const WEBHOOK_DELIVERY_STATUSES = ['PENDING', 'DELIVERED', 'FAILED'] as const;
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];

export interface WebhookEndpoint {
  id: string;
  accountId: string;
  url: string;
  events: WebhookEventType[];
  createdAt: Date;
  deletedAt: Date | null;
}

const eventType = z.enum(WEBHOOK_EVENT_TYPES as [WebhookEventType, ...WebhookEventType[]]);

const endpointRow = z
  .object({
    id: z.string(),
    account_id: z.string(),
    url: z.string(),
    events: z.array(eventType),
    created_at: z.coerce.date(),
    deleted_at: z.coerce.date().nullable(),
  })
  .transform(
    (row): WebhookEndpoint => ({
      id: row.id,
      accountId: row.account_id,
      url: row.url,
      events: row.events,
      createdAt: row.created_at,
      deletedAt: row.deleted_at,
    }),
  );

const ENDPOINT_COLUMNS = 'id, account_id, url, events, created_at, deleted_at';

const LOCK_ACCOUNT_ENDPOINTS: Statement = {
  name: 'cm_lock_account_for_webhook_endpoints',
  text: 'select id from accounts where id = $1::uuid for update',
};

const COUNT_LIVE_ENDPOINTS: Statement = {
  name: 'cm_count_live_webhook_endpoints',
  text: 'select count(*)::int as count from webhook_endpoints where account_id = $1::uuid and deleted_at is null',
};

const INSERT_ENDPOINT: Statement = {
  name: 'cm_insert_webhook_endpoint',
  text: `insert into webhook_endpoints (account_id, url, secret, events) values ($1::uuid, $2, $3, $4::text[])
   returning ${ENDPOINT_COLUMNS}`,
};

/**
 * Inserts an endpoint unless the account already has `limit` live ones (null then). The account row is
 * locked first, so parallel creations cannot both pass the count.
 */
export async function insertEndpointWithin(
  query: Query,
  input: { accountId: string; url: string; secret: string; events: readonly WebhookEventType[] },
  limit: number,
): Promise<WebhookEndpoint | null> {
  await query(LOCK_ACCOUNT_ENDPOINTS, [input.accountId]);
  const [counted] = await query(COUNT_LIVE_ENDPOINTS, [input.accountId]);
  if (z.object({ count: z.number() }).parse(counted).count >= limit) return null;
  const [row] = await query(INSERT_ENDPOINT, [input.accountId, input.url, input.secret, [...input.events]]);
  return endpointRow.parse(row);
}

const LIVE_ENDPOINTS_OF_ACCOUNT: Statement = {
  name: 'cm_live_webhook_endpoints_of_account',
  text: `select ${ENDPOINT_COLUMNS} from webhook_endpoints where account_id = $1::uuid and deleted_at is null
   order by created_at desc, id desc`,
};

export async function readLiveEndpoints(query: Query, accountId: string): Promise<WebhookEndpoint[]> {
  return (await query(LIVE_ENDPOINTS_OF_ACCOUNT, [accountId])).map((row) => endpointRow.parse(row));
}

const DELETE_ENDPOINT: Statement = {
  name: 'cm_delete_webhook_endpoint',
  text: `update webhook_endpoints set deleted_at = now()
   where id = $1::uuid and account_id = $2::uuid and deleted_at is null returning ${ENDPOINT_COLUMNS}`,
};

// What was still to be sent to a deleted endpoint is never sent: it is FAILED, in the same transaction.
const FAIL_PENDING_OF_ENDPOINT: Statement = {
  name: 'cm_fail_pending_webhook_deliveries_of_endpoint',
  text: `update webhook_deliveries set status = 'FAILED', claim = null
   where endpoint_id = $1::uuid and status = 'PENDING'`,
};

/** Deletes (soft) the account's live endpoint `id` and fails what it still had to send; null if none. */
export async function deleteEndpoint(
  query: Query,
  accountId: string,
  id: string,
): Promise<WebhookEndpoint | null> {
  const [row] = await query(DELETE_ENDPOINT, [id, accountId]);
  if (!row) return null;
  await query(FAIL_PENDING_OF_ENDPOINT, [id]);
  return endpointRow.parse(row);
}

/** A row of the delivery log. */
export interface WebhookDelivery {
  id: string;
  endpointId: string;
  accountId: string;
  eventId: string;
  eventType: WebhookEventType;
  status: WebhookDeliveryStatus;
  attempts: number;
  lastResponseCode: number | null;
  createdAt: Date;
  /**
   * `created_at` in microseconds since the epoch, as PostgreSQL holds it (`now()`): the delivery log's
   * keyset position. `createdAt` (a Date) cuts it to the millisecond, and deliveries written by different
   * transactions in the same millisecond would be skipped by a page boundary between them.
   */
  createdAtMicros: bigint;
  deliveredAt: Date | null;
}

const CREATED_MICROS = (alias: string) =>
  `(extract(epoch from ${alias}created_at) * 1000000)::bigint::text as created_us`;

const DELIVERY_COLUMNS = `id, endpoint_id, account_id, event_id, event_type, status, attempts, last_response_code,
  created_at, ${CREATED_MICROS('')}, delivered_at`;

const deliveryRow = z
  .object({
    id: z.string(),
    endpoint_id: z.string(),
    account_id: z.string(),
    event_id: z.string(),
    event_type: eventType,
    status: z.enum(WEBHOOK_DELIVERY_STATUSES),
    attempts: z.number(),
    last_response_code: z.number().nullable(),
    created_at: z.coerce.date(),
    created_us: z.string(),
    delivered_at: z.coerce.date().nullable(),
  })
  .transform(
    (row): WebhookDelivery => ({
      id: row.id,
      endpointId: row.endpoint_id,
      accountId: row.account_id,
      eventId: row.event_id,
      eventType: row.event_type,
      status: row.status,
      attempts: row.attempts,
      lastResponseCode: row.last_response_code,
      createdAt: row.created_at,
      createdAtMicros: BigInt(row.created_us),
      deliveredAt: row.delivered_at,
    }),
  );

// Each endpoint's page is read by its own walk of `webhook_deliveries_endpoint_idx`, stopped at `limit`: a
// busy endpoint's page costs the page, not its whole log (a window over every row did).
const DELIVERIES_OF_ENDPOINTS: Statement = {
  name: 'cm_webhook_deliveries_of_endpoints',
  text: `select ${DELIVERY_COLUMNS} from unnest($1::uuid[]) as endpoints(endpoint)
   cross join lateral (
     select d.* from webhook_deliveries d
     where d.endpoint_id = endpoints.endpoint
       and ($2::bigint is null
         or (d.created_at, d.id) < (timestamptz 'epoch' + $2::bigint * interval '1 microsecond', $3::uuid))
     order by d.created_at desc, d.id desc
     limit $4::int
   ) page order by endpoint_id, created_at desc, id desc`,
};

/**
 * The newest `limit` deliveries of each endpoint (after the keyset position `after`, when given), newest
 * first: one statement for all the endpoints of a page.
 */
export async function readDeliveriesOfEndpoints(
  query: Query,
  endpointIds: readonly string[],
  limit: number,
  after: { createdAtMicros: bigint; id: string } | null,
): Promise<WebhookDelivery[]> {
  if (endpointIds.length === 0) return [];
  const rows = await query(DELIVERIES_OF_ENDPOINTS, [
    endpointIds,
    after?.createdAtMicros.toString() ?? null,
    after?.id ?? null,
    limit,
  ]);
  return rows.map((row) => deliveryRow.parse(row));
}

// An attempt is being made now: claimed, its lease running (the claim's own test, as `CLAIM_DUE` counts it).
const IN_FLIGHT = `(d.status = 'PENDING' and d.claim is not null and d.next_attempt_at > now())`;

const REDELIVER: Statement = {
  name: 'cm_redeliver_webhook',
  text: `update webhook_deliveries d set status = 'PENDING', retrying_since = now(), delivered_at = null,
     next_attempt_at = case when ${IN_FLIGHT} then d.next_attempt_at else now() end,
     claim = case when ${IN_FLIGHT} then d.claim else null end
   where d.id = $1::uuid and d.account_id = $2::uuid
     and exists (select 1 from webhook_endpoints e where e.id = d.endpoint_id and e.deleted_at is null for share)
   returning d.id, d.endpoint_id, d.account_id, d.event_id, d.event_type, d.status, d.attempts,
     d.last_response_code, d.created_at, ${CREATED_MICROS('d.')}, d.delivered_at`,
};

/**
 * Sends the account's delivery `id` again, now, with the same `webhook-id`, whatever its status, with a new
 * retry window. An attempt in flight keeps its claim (and its place under the account's cap): a 2xx of it
 * delivers, and if it fails the redelivery goes at once (`recordAttempts` sees the window renewed during the
 * attempt) rather than at its backoff. Taking its claim back sent the event again at once beside it, each
 * redelivery one more request in flight past the cap. Null when the account has no such
 * delivery or its endpoint is deleted. The endpoint is share-locked, as the outbox insert locks it: a deletion
 * in progress is waited for (and then seen), else it would not see this delivery PENDING, leave it unfailed,
 * and the worker would send it to the deleted endpoint.
 */
export async function redeliver(
  query: Query,
  accountId: string,
  id: string,
): Promise<WebhookDelivery | null> {
  const [row] = await query(REDELIVER, [id, accountId]);
  return row ? deliveryRow.parse(row) : null;
}

/** A delivery claimed by a worker: what it needs to sign and send it. */
export interface ClaimedDelivery {
  id: string;
  claim: string;
  /** The account whose endpoint it goes to (whose deliveries in flight are capped). */
  accountId: string;
  eventId: string;
  eventType: WebhookEventType;
  eventAt: Date;
  data: Record<string, unknown>;
  /** Attempts made so far, this one included. */
  attempts: number;
  retryingSince: Date;
  url: string;
  secret: string;
}

const CLAIM_DUE: Statement = {
  name: 'cm_claim_due_webhook_deliveries',
  text: `with in_flight as (
     select account_id, count(*) as n from webhook_deliveries
     where status = 'PENDING' and claim is not null and next_attempt_at > now()
     group by account_id
   ), within_cap as (
     select id from (
       select d.id, coalesce(f.n, 0)
           + row_number() over (partition by d.account_id order by d.next_attempt_at, d.id) as place
       from webhook_deliveries d left join in_flight f on f.account_id = d.account_id
       where d.status = 'PENDING' and d.next_attempt_at <= now()
     ) ranked
     where place <= $3::int
   ), due as (
     select id from webhook_deliveries
     where id in (select id from within_cap) and status = 'PENDING' and next_attempt_at <= now()
     order by next_attempt_at
     limit $1::int
     for update skip locked
   )
   update webhook_deliveries d
   set claim = gen_random_uuid(), attempts = d.attempts + 1,
     next_attempt_at = now() + $2::int * interval '1 millisecond'
   from due, webhook_endpoints e
   where d.id = due.id and e.id = d.endpoint_id
   returning d.id, d.claim, d.account_id, d.event_id, d.event_type, d.event_at, d.data, d.attempts,
     date_trunc('milliseconds', d.retrying_since) as retrying_since, e.url, e.secret`,
};

const claimedRow = z
  .object({
    id: z.string(),
    claim: z.string(),
    account_id: z.string(),
    event_id: z.string(),
    event_type: eventType,
    event_at: z.coerce.date(),
    data: z.record(z.string(), z.unknown()),
    attempts: z.number(),
    retrying_since: z.coerce.date(),
    url: z.string(),
    secret: z.string(),
  })
  .transform(
    (row): ClaimedDelivery => ({
      id: row.id,
      claim: row.claim,
      accountId: row.account_id,
      eventId: row.event_id,
      eventType: row.event_type,
      eventAt: row.event_at,
      data: row.data,
      attempts: row.attempts,
      retryingSince: row.retrying_since,
      url: row.url,
      secret: row.secret,
    }),
  );

/**
 * Claims up to `limit` due deliveries for this worker, oldest first, leaving an account's deliveries due
 * while `accountCap` of them are in flight (claimed, lease running; every worker's), so that one account's
 * slow or hanging receivers cannot take every slot. `for update skip locked`: replicas claiming at the same
 * time take different rows (and, not seeing each other's claims yet, may together pass an account's cap
 * once). The claim pushes `next_attempt_at` forward by `leaseMs`: if this worker dies before it records the
 * attempt, another claims the delivery again after that (at least once).
 */
export async function claimDueDeliveries(
  query: Query,
  limit: number,
  leaseMs: number,
  accountCap: number,
): Promise<ClaimedDelivery[]> {
  if (limit <= 0) return [];
  return (await query(CLAIM_DUE, [limit, leaseMs, accountCap])).map((row) => claimedRow.parse(row));
}

/** What one HTTP attempt came to. */
export interface AttemptResult {
  /** The HTTP status, or null when no response came (refused address, timeout, connection error). */
  responseCode: number | null;
  latencyMs: number;
  error: string | null;
  responseExcerpt: string | null;
  attemptedAt: Date;
}

// The delivery was redelivered while the attempt was in flight: its window is not the one the claim read.
// (The claim returns it cut to the millisecond, exactly what a Date holds.)
const REDELIVERED_DURING = `date_trunc('milliseconds', d.retrying_since) is distinct from input.retrying_since`;

const RECORD_ATTEMPTS: Statement = {
  name: 'cm_record_webhook_attempts',
  text: `with input as (
     select * from unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int[], $5::int[], $6::text[], $7::text[],
       $8::text[], $9::timestamptz[], $10::timestamptz[])
       as t(id, claim, attempted_at, response_code, latency_ms, error, response_excerpt, status, next_attempt_at,
         retrying_since)
   ), attempt as (
     insert into webhook_attempts (delivery_id, attempted_at, response_code, latency_ms, error, response_excerpt)
     select id, attempted_at, response_code, latency_ms, error, response_excerpt from input
   )
   update webhook_deliveries d set last_response_code = input.response_code, claim = null,
     status = case when input.status <> 'DELIVERED' and ${REDELIVERED_DURING} then 'PENDING' else input.status end,
     delivered_at = case when input.status = 'DELIVERED' then input.attempted_at else null end,
     next_attempt_at = case when input.status <> 'DELIVERED' and ${REDELIVERED_DURING} then now()
       else coalesce(input.next_attempt_at, d.next_attempt_at) end
   from input
   where d.id = input.id and d.claim = input.claim and d.status = 'PENDING'
   returning d.id`,
};

/** An attempt to record and where it moves its delivery. */
export interface AttemptRecord {
  delivery: Pick<ClaimedDelivery, 'id' | 'claim' | 'retryingSince'>;
  result: AttemptResult;
  next: { status: WebhookDeliveryStatus; nextAttemptAt: Date | null };
}

/**
 * Logs attempts (one statement, one commit for all of them) and moves each delivery on: DELIVERED, FAILED,
 * or PENDING again from `nextAttemptAt`; a failed attempt of a delivery redelivered meanwhile makes it PENDING
 * now, whatever the backoff (see `redeliver`). Every attempt is logged; a delivery changes only while the
 * claim its attempt was made under holds (a deleted endpoint or an expired lease took it back). Returns the
 * ids of the deliveries that changed. NUL characters in the error and the excerpt are stored as U+FFFD.
 */
export async function recordAttempts(query: Query, records: readonly AttemptRecord[]): Promise<Set<string>> {
  if (records.length === 0) return new Set();
  // A receiver's answer (and so the excerpt) may hold U+0000, which PostgreSQL text cannot: the statement
  // would fail for every attempt of the batch.
  const storable = (text: string | null) => text?.replaceAll('\u0000', '\uFFFD') ?? null;
  const rows = await query(RECORD_ATTEMPTS, [
    records.map((r) => r.delivery.id),
    records.map((r) => r.delivery.claim),
    records.map((r) => r.result.attemptedAt.toISOString()),
    records.map((r) => r.result.responseCode),
    records.map((r) => r.result.latencyMs),
    records.map((r) => storable(r.result.error)),
    records.map((r) => storable(r.result.responseExcerpt)),
    records.map((r) => r.next.status),
    records.map((r) => r.next.nextAttemptAt?.toISOString() ?? null),
    records.map((r) => r.delivery.retryingSince.toISOString()),
  ]);
  return new Set(rows.map((row) => z.object({ id: z.string() }).parse(row).id));
}

/** `recordAttempts` for one attempt: whether its delivery changed. */
export async function recordAttempt(
  query: Query,
  delivery: Pick<ClaimedDelivery, 'id' | 'claim' | 'retryingSince'>,
  result: AttemptResult,
  next: { status: WebhookDeliveryStatus; nextAttemptAt: Date | null },
): Promise<boolean> {
  return (await recordAttempts(query, [{ delivery, result, next }])).has(delivery.id);
}

/** One HTTP attempt of a delivery, as the log shows it. */
export interface WebhookAttempt {
  id: string;
  deliveryId: string;
  attemptedAt: Date;
  responseCode: number | null;
  latencyMs: number;
  error: string | null;
  responseExcerpt: string | null;
}

const ATTEMPTS_OF_DELIVERIES: Statement = {
  name: 'cm_webhook_attempts_of_deliveries',
  text: `select id, delivery_id, attempted_at, response_code, latency_ms, error, response_excerpt
   from webhook_attempts where delivery_id = any($1::uuid[]) order by attempted_at desc, id`,
};

const attemptRow = z
  .object({
    id: z.string(),
    delivery_id: z.string(),
    attempted_at: z.coerce.date(),
    response_code: z.number().nullable(),
    latency_ms: z.number(),
    error: z.string().nullable(),
    response_excerpt: z.string().nullable(),
  })
  .transform(
    (row): WebhookAttempt => ({
      id: row.id,
      deliveryId: row.delivery_id,
      attemptedAt: row.attempted_at,
      responseCode: row.response_code,
      latencyMs: row.latency_ms,
      error: row.error,
      responseExcerpt: row.response_excerpt,
    }),
  );

/** The attempts of these deliveries, newest first. */
export async function readAttemptsOfDeliveries(
  query: Query,
  deliveryIds: readonly string[],
): Promise<WebhookAttempt[]> {
  if (deliveryIds.length === 0) return [];
  return (await query(ATTEMPTS_OF_DELIVERIES, [deliveryIds])).map((row) => attemptRow.parse(row));
}

const PRUNE_FINISHED: Statement = {
  name: 'cm_prune_finished_webhook_deliveries',
  text: `with gone as (
     select id from webhook_deliveries
     where status in ('DELIVERED', 'FAILED') and created_at < $1::timestamptz
     order by created_at
     limit $2::int
     for update skip locked
   ), attempts as (
     delete from webhook_attempts a using gone where a.delivery_id = gone.id
   )
   delete from webhook_deliveries d using gone where d.id = gone.id
   returning d.id`,
};

/**
 * Deletes up to `limit` finished deliveries (DELIVERED or FAILED) created before `before`, oldest first,
 * with their attempt logs: the delivery log keeps a retention period, not every event ever sent. A
 * delivery still PENDING is kept whatever its age. Returns how many were deleted.
 */
export async function pruneFinishedDeliveries(query: Query, before: Date, limit: number): Promise<number> {
  return (await query(PRUNE_FINISHED, [before.toISOString(), limit])).length;
}
