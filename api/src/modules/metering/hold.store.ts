/**
 * The hold's SQL: placing a hold (one statement: account hold, key hold, durable record), the heartbeat
 * that extends in-flight holds, the sweep's read of expired ones, and releasing a hold with no charge (one
 * statement). Lock order is always usage record -> account -> api key, each in id order, as in
 * `settlement.store.ts`, so concurrent holds and settlements cannot deadlock. Each takes a `SqlRunner`
 * (db/sql.ts): on PostgreSQL, statements prepared once per connection on the ORM's pg pool; on PGlite or
 * inside a caller's transaction, through the EntityManager. No entity is loaded.
 */
import { randomUUID } from 'node:crypto';
import type { LedgerHead, MicroUsd } from '@chainmeter/schema';
import { z } from 'zod';
import { violatedConstraint } from '../../db/constraint.ts';
import type { SqlRunner, Statement } from '../../db/sql.ts';
import { unauthenticated } from '../../errors.ts';
import { type ApiKeyCheck, lastUsedBefore } from '../apikeys/apikeys.service.ts';
import { keyPeriodAssignmentsSql, liveApiKeySql } from '../apikeys/apikeys.store.ts';
import { InsufficientCreditsError } from './metering.errors.ts';
import type { Settlement, SettleOptions, SettleResult } from './settlement.ts';

export interface PlaceHoldParameters {
  accountId: string;
  apiKeyId: string | null;
  requestId: string;
  model: string;
  hold: MicroUsd;
  streamed: boolean;
  now: Date;
  holdExpiresAt: Date;
  /** A key taken on trust (`RecentApiKeys`): the hold also checks it is still live at `now`. */
  keyCheck?: ApiKeyCheck;
}

const PLACE_HOLD: Statement = {
  name: 'cm_place_hold',
  text: `with live_key as (
     select 1 from api_keys
     where $10::text is not null and id = $3::uuid and account_id = $2::uuid and secret_hash = $10::text
       and ${liveApiKeySql('$8')}
   ), a as (
     update accounts set held = held + $1::bigint
     where id = $2::uuid and balance - held - debt >= $1::bigint and ($10::text is null or exists (select 1 from live_key))
     returning id, balance, ledger_seq, ledger_head
   ), k as (
     update api_keys set held = held + $1::bigint, ${keyPeriodAssignmentsSql('$8')},
       last_used_at = case when $10::text is not null and (last_used_at is null or last_used_at <= $11::timestamptz)
         then $8::timestamptz else last_used_at end
     where id = $3::uuid and exists (select 1 from a) returning id
   ), r as (
     insert into usage_records (id, request_id, account_id, api_key_id, model, status, streamed, hold_amount,
       created_at, hold_expires_at)
     select $4::uuid, $5, a.id, $3::uuid, $6, 'HELD', $7, $1::bigint, $8::timestamptz, $9::timestamptz from a
     returning id
   )
   select ($10::text is null or exists (select 1 from live_key)) as key_live, exists (select 1 from r) as held,
     (select balance::text from a) as balance, (select ledger_seq from a) as ledger_seq,
     (select ledger_head from a) as ledger_head`,
};

const placedHoldRow = z.object({
  key_live: z.boolean(),
  held: z.boolean(),
  balance: z.string().nullable(),
  ledger_seq: z.number().nullable(),
  ledger_head: z.string().nullable(),
});

export interface PlacedHold {
  usageId: string;
  /** The account's ledger head as the hold saw it (see {@link LedgerHeads}). */
  head: LedgerHead;
}

/**
 * Reserves `hold` on the account (`balance - held - debt >= hold`, one guarded update: what a deep reorg
 * left owed is not spendable) and on the API key (its CHECK refuses `spent + held > spend_limit`, or for a
 * key with a `limit_reset` the period's spend: the same update first moves the key into the period of `now`,
 * starting its spend afresh when the period has changed), and writes the durable record, all in one
 * statement: it
 * either does all three or nothing. With a `keyCheck`, the same statement first checks the key is live
 * (else nothing is held and UNAUTHENTICATED is thrown) and refreshes its throttled `last_used_at`.
 * Throws {@link InsufficientCreditsError} when the hold does not fit.
 */
export async function placeHold(sql: SqlRunner, params: PlaceHoldParameters): Promise<PlacedHold> {
  const usageId = randomUUID();
  const hold = params.hold.toString();
  let rows: unknown[];
  try {
    rows = await sql.query(PLACE_HOLD, [
      hold,
      params.accountId,
      params.apiKeyId,
      usageId,
      params.requestId,
      params.model,
      params.streamed,
      params.now.toISOString(),
      params.holdExpiresAt.toISOString(),
      params.keyCheck?.secretHash ?? null,
      lastUsedBefore(params.now).toISOString(),
    ]);
  } catch (error) {
    // The key's CHECK (spent + held <= spend_limit) aborts the whole statement, account hold included.
    // Its update only runs once the key was found live.
    if (violatedConstraint(error) === 'api_keys_within_spend_limit') {
      throw new InsufficientCreditsError('apiKey', params.hold);
    }
    throw error;
  }
  const row = placedHoldRow.parse(rows[0]);
  if (!row.key_live) throw unauthenticated('This API key is revoked, expired or unknown');
  if (!row.held || row.ledger_seq === null || row.balance === null) {
    throw new InsufficientCreditsError('account', params.hold);
  }
  return { usageId, head: { seq: row.ledger_seq, hash: row.ledger_head, balance: BigInt(row.balance) } };
}

const RELEASE_HOLD: Statement = {
  name: 'cm_release_hold',
  text: `with r as (
     update usage_records set status = $1, prompt_tokens = $2, completion_tokens = $3,
       provider_cost = $4::bigint, user_price = $5::bigint, latency_ms = $6,
       flags = coalesce(string_to_array(nullif($7, ''), ','), '{}'), error = $8, outcome = null,
       settled_at = $9::timestamptz
     where id = $10::uuid and status in ('HELD', 'UNSETTLED')
       and ($11::timestamptz is null or (status = 'HELD' and hold_expires_at < $11::timestamptz))
     returning account_id, api_key_id, hold_amount
   ), a as (
     update accounts set held = accounts.held - r.hold_amount from r where accounts.id = r.account_id returning 1
   ), k as (
     update api_keys set held = api_keys.held - r.hold_amount from r where api_keys.id = r.api_key_id returning 1
   )
   select r.account_id from r`,
};

const releasedRow = z.object({ account_id: z.string() });

/**
 * Settles a call with no charge: releases its hold and closes the record, with no ledger entry, in one
 * statement guarded like a charged settlement (only a record still HELD/UNSETTLED, and with `expiredAt`
 * only a hold still expired then).
 */
export async function releaseHold(
  sql: SqlRunner,
  usageId: string,
  s: Settlement,
  options: SettleOptions,
): Promise<SettleResult> {
  const rows = await sql.query(RELEASE_HOLD, [
    s.status,
    s.promptTokens,
    s.completionTokens,
    s.providerCost === null ? null : s.providerCost.toString(),
    s.userPrice.toString(),
    s.latencyMs === null ? null : Math.round(s.latencyMs),
    s.flags.join(','),
    s.error,
    new Date().toISOString(),
    usageId,
    options.expiredAt?.toISOString() ?? null,
  ]);
  const [row] = rows;
  if (row === undefined) return { settled: false, reason: 'already settled' };
  return {
    settled: true,
    ledgerEntryId: null,
    accountId: releasedRow.parse(row).account_id,
  };
}

/** A hold whose call never finished, with how far its stream had got by its process's last beat. */
export interface ExpiredHold {
  id: string;
  model: string;
  hold: MicroUsd;
  streamed: boolean;
  /** UTF-8 bytes a stream had generated at its last beat (0: nothing recorded). */
  generatedBytes: number;
  promptTokensBound: number | null;
  createdAt: Date;
  /** When `generatedBytes` last grew; null when it never did. */
  progressAt: Date | null;
}

/**
 * Holds whose call never finished (the process died mid-call): still HELD past their expiry, their hold on
 * their account (a paid call whose payment is not credited yet is `findAbandonedPaidCalls`'s). `exclude`:
 * the caller's own in-flight records, never released under a call that is still running (their
 * expiry is refreshed by `extendHolds`, this is the second line of defence). What this reads may be stale
 * by the time it is settled (another replica's heartbeat may extend a hold in between): settle each with
 * `applySettlement(..., { expiredAt: now })`, which checks the expiry again in its own statement.
 */
export async function findExpiredHolds(
  sql: SqlRunner,
  now: Date,
  limit: number,
  exclude: readonly string[] = [],
): Promise<ExpiredHold[]> {
  const rows = await sql.query(FIND_EXPIRED_HOLDS, [now.toISOString(), limit, exclude]);
  return rows.map((row) => expiredHoldRow.parse(row));
}

const expiredHoldRow = z
  .object({
    id: z.string(),
    model: z.string(),
    hold_amount: z.string(),
    streamed: z.boolean(),
    generated_bytes: z.string(),
    prompt_tokens_bound: z.number().nullable(),
    created_at: z.coerce.date(),
    progress_at: z.coerce.date().nullable(),
  })
  .transform(
    (row): ExpiredHold => ({
      id: row.id,
      model: row.model,
      hold: BigInt(row.hold_amount) as MicroUsd,
      streamed: row.streamed,
      generatedBytes: Number(row.generated_bytes),
      promptTokensBound: row.prompt_tokens_bound,
      createdAt: row.created_at,
      progressAt: row.progress_at,
    }),
  );

const FIND_EXPIRED_HOLDS: Statement = {
  name: 'cm_find_expired_holds',
  text: `select id, model, hold_amount::text as hold_amount, streamed, generated_bytes::text as generated_bytes,
     prompt_tokens_bound, created_at, progress_at
   from usage_records
   where status = 'HELD' and account_held and hold_expires_at < $1::timestamptz and not (id = any($3::uuid[]))
   order by hold_expires_at limit $2`,
};

/** How far one in-flight stream has got (see the stream-progress migration). */
export interface StreamProgress {
  usageId: string;
  generatedBytes: number;
  promptTokensBound: number;
}

const extendedRow = z.object({ n: z.number() });

/**
 * The heartbeat of in-flight calls: moves the expiry of these HELD records to `until`, so that no
 * process (this one or another replica) takes a call that is still running for an abandoned one, and
 * records how far each stream in `progress` has got (never backwards). A process that dies stops
 * beating, and its holds expire one TTL later. Returns how many records were extended.
 */
export async function extendHolds(
  sql: SqlRunner,
  usageIds: readonly string[],
  until: Date,
  progress: readonly StreamProgress[] = [],
): Promise<number> {
  if (usageIds.length === 0) return 0;
  const rows = await sql.query(EXTEND_HOLDS, [
    usageIds,
    until.toISOString(),
    progress.map((p) => p.usageId),
    progress.map((p) => p.generatedBytes),
    progress.map((p) => p.promptTokensBound),
    new Date().toISOString(),
  ]);
  return extendedRow.parse(rows[0]).n;
}

const EXTEND_HOLDS: Statement = {
  name: 'cm_extend_holds',
  text: `with p as (
     select * from unnest($3::uuid[], $4::bigint[], $5::int[]) as p(id, bytes, bound)
   ), x as (
     update usage_records u set hold_expires_at = greatest(u.hold_expires_at, $2::timestamptz),
       generated_bytes = greatest(u.generated_bytes, coalesce(p.bytes, 0)),
       prompt_tokens_bound = coalesce(p.bound, u.prompt_tokens_bound),
       progress_at = case when p.bytes > u.generated_bytes then $6::timestamptz else u.progress_at end
     from (select unnest($1::uuid[]) as id) ids left join p on p.id = ids.id
     where u.id = ids.id and u.status = 'HELD'
     returning 1
   )
   select count(*)::int as n from x`,
};
