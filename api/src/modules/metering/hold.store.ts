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
import { keyPeriodAssignmentsSql, keyPeriodStartSql, liveApiKeySql } from '../apikeys/apikeys.store.ts';
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
  text: `with locked_account as materialized (
     select id, balance, held, debt from accounts where id = $2::uuid for update
   ), locked_key as materialized (
     select id, account_id, secret_hash, revoked_at, expires_at, limit_reset, period_start, period_spent, held
     from api_keys
     -- the account's lock first (the lock order of this file's header)
     where id = $3::uuid and (select count(*) from locked_account) >= 0 for update
   ), live_key as (
     select 1 from locked_key k
     where $10::text is not null and k.account_id = $2::uuid and k.secret_hash = $10::text
       and ${liveApiKeySql('$8', 'k')}
   ), a as (
     -- decided from the locked row, never from accounts' own columns here (see placeHold)
     update accounts set held = accounts.held + $1::bigint
     from locked_account la
     where accounts.id = la.id and accounts.id = $2::uuid and la.balance - la.held - la.debt >= $1::bigint
       and ($10::text is null or exists (select 1 from live_key))
     returning accounts.id, accounts.balance, accounts.ledger_seq, accounts.ledger_head
   ), k as (
     -- what the key's CHECK reads and this update changes, from the locked row (see placeHold)
     update api_keys set held = lk.held + $1::bigint, ${keyPeriodAssignmentsSql('$8', 'lk')},
       last_used_at = case when $10::text is not null
         and (api_keys.last_used_at is null or api_keys.last_used_at <= $11::timestamptz)
         then $8::timestamptz else api_keys.last_used_at end
     from locked_key lk
     where api_keys.id = lk.id and api_keys.id = $3::uuid and exists (select 1 from a) returning 1
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
 *
 * Decided and written from the rows it locked: the statement locks the account, then the key
 * (`locked_account`, `locked_key`), and its guard, its liveness check and the key's new figures read those
 * rows, never the updated table's own columns. An `UPDATE` finds its rows with the statement's snapshot,
 * taken before the statement waited for a lock; after a settlement committed in that wait, the scan finds
 * the row from before it, and PostgreSQL evaluates a WHERE on that version (false: the row is skipped,
 * without a look at the newest one) and builds the new row from it and checks the CHECK constraints on that
 * candidate before the write notices the newer version and redoes it from there. So a hold that fitted was
 * refused (the key's CHECK, or the account's guard). Computed from the locked rows, the candidate is the
 * row written: the locks are held until the commit. `spent` is left to the row: only a settlement moves it,
 * upwards, so an older version cannot fail the CHECK where the newest passes.
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

/**
 * Several holds in one statement (and one durable commit): those that arrived while the previous batch
 * was being written (`HoldBatcher`). Each member is decided exactly as its own `PLACE_HOLD` run one after
 * another in arrival order would decide it, or not decided at all:
 * - the accounts are locked first, then the keys, each in id order (the lock order of this file's header:
 *   a batch creates its usage records, so no other statement can hold them), and what they read is what
 *   the members are checked against;
 * - a member fits its account when `balance - held - debt` covers the sum of its own hold and every hold
 *   before it on that account (what the earlier members would have held one by one), and its key when the
 *   key's CHECK would pass with the same running sum on the key (the key's spend as `keyPeriodAssignmentsSql`
 *   leaves it for the member's own `now`: a period that began for an earlier member but not in this one's
 *   clock counts the old spend, stricter than one by one, never looser); a key check is against the
 *   member's own `now`;
 * - a member is placed only if it and every member before it on the same account passed all three: its
 *   account's placed members are then a prefix of its members in arrival order, and the running sums above
 *   are exactly what was held before each. The first member that does not pass, and every later one on its
 *   account, is left out (`placed = false`, nothing written for it): its outcome depends on the ones before
 *   it, so the caller places it with `PLACE_HOLD` on its own, which gives it its own refusal
 *   (UNAUTHENTICATED, the account's or the key's InsufficientCreditsError) or its hold.
 * A member whose key row is not there is left out too (`PLACE_HOLD` would hold without the key's checks).
 * The writes are computed from the locked rows as well, as in `PLACE_HOLD` (see placeHold): the key's new
 * `held` and period from `locked_keys`, the account's guard from `locked_accounts`. Computed from the updated
 * tables' own columns, they were judged on the row version the update's scan found with the statement's
 * snapshot: a settlement committed while the batch waited for a lock left that scan the row from before it,
 * so the key's CHECK fired on a candidate 100 over the locked row's figures (or the account's guard skipped
 * its row), and the batch went member by member (the racing test's race: 10 batches of 60). Nothing wrong
 * was written (the write itself redoes the row from the newest version), but the checks judged rows that
 * were never to be written. They remain as the second line of defence: the key's final row satisfies its
 * CHECK (its period moved to the latest `now` of its placed members, as one by one: `period_start` only
 * moves forward), and each account's placed total fits its locked `balance - held - debt`; if either fails,
 * the statement fails whole (nothing written) and the caller places every member on its own.
 */
const PLACE_HOLDS: Statement = {
  name: 'cm_place_holds',
  text: `with m as materialized (
     select * from unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::boolean[], $7::bigint[],
       $8::timestamptz[], $9::timestamptz[], $10::text[], $11::timestamptz[]) with ordinality
       as m(usage_id, request_id, account_id, api_key_id, model, streamed, hold, now, expires_at, secret_hash,
         used_before, ord)
   ), locked_accounts as materialized (
     select id, balance, held, debt, ledger_seq, ledger_head from accounts
     where id = any($3::uuid[]) order by id for update
   ), locked_keys as materialized (
     select id, account_id, secret_hash, revoked_at, expires_at, spend_limit, limit_reset, spent, period_spent,
       period_start, held from api_keys
     -- the accounts' locks first: this subquery runs before any key row is read, let alone locked
     where id = any($4::uuid[]) and (select count(*) from locked_accounts) >= 0 order by id for update
   ), checked as materialized (
     select m.*,
       (m.secret_hash is null or (k.id is not null and k.account_id = m.account_id and k.secret_hash = m.secret_hash
         and ${liveApiKeySql('m.now', 'k')})) as key_live,
       coalesce(a.balance - a.held - a.debt
         >= sum(m.hold) over (partition by m.account_id order by m.ord), false) as account_fits,
       (m.api_key_id is null or k.spend_limit is null
         or (case when k.limit_reset is null then k.spent
              when ${keyPeriodStartSql('m.now', 'k')} > coalesce(k.period_start, '-infinity'::timestamptz) then 0
              else k.period_spent end)
            + k.held + sum(m.hold) over (partition by m.api_key_id order by m.ord) <= k.spend_limit) as key_fits,
       k.id is not null or m.api_key_id is null as key_found
     from m left join locked_accounts a on a.id = m.account_id left join locked_keys k on k.id = m.api_key_id
   ), decided as materialized (
     select checked.*, bool_and(coalesce(key_live and account_fits and key_fits and key_found, false))
       over (partition by account_id order by ord) as placed
     from checked
   ), r as (
     insert into usage_records (id, request_id, account_id, api_key_id, model, status, streamed, hold_amount,
       created_at, hold_expires_at)
     select usage_id, request_id, account_id, api_key_id, model, 'HELD', streamed, hold, now, expires_at
     from decided where placed
     returning 1
   ), a as (
     -- the guard on the locked row's figures, never on accounts' own columns here (see above)
     update accounts set held = accounts.held + s.total
     from (select account_id, sum(hold) as total from decided where placed group by account_id) s
       join locked_accounts la on la.id = s.account_id
     where accounts.id = s.account_id and accounts.id = any($3::uuid[])
       and la.balance - la.held - la.debt >= s.total
     returning 1
   ), k as (
     -- what the CHECK reads, from the locked row (see above); last_used_at, which nothing checks, from its own
     update api_keys set held = lk.held + s.total, ${keyPeriodAssignmentsSql('s.now', 'lk')},
       last_used_at = case when s.used_now is not null
         and (api_keys.last_used_at is null or api_keys.last_used_at <= s.used_before)
         then s.used_now else api_keys.last_used_at end
     from (select api_key_id, sum(hold) as total, max(now) as now,
             max(now) filter (where secret_hash is not null) as used_now,
             max(used_before) filter (where secret_hash is not null) as used_before
           from decided where placed and api_key_id is not null group by api_key_id) s
       join locked_keys lk on lk.id = s.api_key_id
     where api_keys.id = s.api_key_id and api_keys.id = any($4::uuid[])
     returning 1
   ), written as (
     select (select count(*) from decided where placed) as placed,
       (select count(distinct account_id) from decided where placed) as accounts,
       (select count(*) from r) as r, (select count(*) from a) as a, (select count(*) from k) as k
   )
   select d.ord::int as ord, d.placed, a.balance::text as balance, a.ledger_seq, a.ledger_head,
     -- never, the rows being locked: a failed cast is how plain SQL raises, so the batch is rolled back
     case when w.r = w.placed and w.a = w.accounts then true
       else ('hold batch half-written: ' || w.r || '/' || w.placed || ' records, ' || w.a || '/' || w.accounts
         || ' accounts')::boolean end as whole
   from decided d cross join written w left join locked_accounts a on a.id = d.account_id
   order by d.ord`,
};

const placedHoldsRow = z.object({
  ord: z.number(),
  placed: z.boolean(),
  balance: z.string().nullable(),
  ledger_seq: z.number().nullable(),
  ledger_head: z.string().nullable(),
});

/**
 * Places `holds` in one statement (PLACE_HOLDS above), each exactly as `placeHold` would have placed it
 * after the ones before it, or not at all: `null` for a member whose outcome depends on one refused before
 * it (or that is refused itself), to be placed with `placeHold` on its own, after this batch.
 */
export async function placeHolds(
  sql: SqlRunner,
  holds: readonly PlaceHoldParameters[],
): Promise<(PlacedHold | null)[]> {
  if (holds.length === 0) return [];
  const usageIds = holds.map(() => randomUUID());
  const rows = await sql.query(PLACE_HOLDS, [
    usageIds,
    holds.map((h) => h.requestId),
    holds.map((h) => h.accountId),
    holds.map((h) => h.apiKeyId),
    holds.map((h) => h.model),
    holds.map((h) => h.streamed),
    holds.map((h) => h.hold.toString()),
    holds.map((h) => h.now.toISOString()),
    holds.map((h) => h.holdExpiresAt.toISOString()),
    holds.map((h) => h.keyCheck?.secretHash ?? null),
    holds.map((h) => lastUsedBefore(h.now).toISOString()),
  ]);
  const results: (PlacedHold | null)[] = holds.map(() => null);
  for (const raw of rows) {
    const row = placedHoldsRow.parse(raw);
    const usageId = usageIds[row.ord - 1];
    if (!row.placed || usageId === undefined || row.ledger_seq === null || row.balance === null) continue;
    results[row.ord - 1] = {
      usageId,
      head: { seq: row.ledger_seq, hash: row.ledger_head, balance: BigInt(row.balance) },
    };
  }
  return results;
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
 * `applySettlement(..., { expiredAt: now })`, which checks the expiry again in its own statement. Records
 * locked at the moment of the read, and records whose account is locked by a writer then, are left for a
 * later round (their locks are taken and let go at once).
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
  text: `select u.id, u.model, u.hold_amount::text as hold_amount, u.streamed,
     u.generated_bytes::text as generated_bytes, u.prompt_tokens_bound, u.created_at, u.progress_at
   from usage_records u join accounts a on a.id = u.account_id
   where u.status = 'HELD' and u.account_held and u.hold_expires_at < $1::timestamptz
     and not (u.id = any($3::uuid[]))
   order by u.hold_expires_at limit $2
   -- Neither a record locked now (a settlement writing it; after a crash, the dead process's statement still
   -- waiting on an account) nor one whose account is being written: settling it here would wait behind that
   -- lock, and every expired hold after it too. FOR SHARE of the account conflicts only with writers, so
   -- sweeping replicas do not skip each other's accounts.
   for update of u skip locked
   for share of a skip locked`,
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
 * beating, and its holds expire one TTL later. Records locked at the moment (a settlement writing them)
 * are skipped, never waited for. Returns how many records were extended.
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
   ), locked as materialized (
     -- A record locked now is being settled: it needs no beat, and waiting for it would stall every
     -- other call's beat behind a settlement that itself waits (on an account, for as long as a lock is
     -- held there) until those holds expire and another replica's sweep takes live calls. Skipped, the
     -- beat never waits, so it cannot deadlock with a settlement batch either; a settlement that rolls
     -- back leaves its record for the next beat.
     select id from usage_records where id = any($1::uuid[]) order by id for update skip locked
   ), x as (
     update usage_records u set hold_expires_at = greatest(u.hold_expires_at, $2::timestamptz),
       generated_bytes = greatest(u.generated_bytes, coalesce(p.bytes, 0)),
       prompt_tokens_bound = coalesce(p.bound, u.prompt_tokens_bound),
       progress_at = case when p.bytes > u.generated_bytes then $6::timestamptz else u.progress_at end
     from locked left join p on p.id = locked.id
     where u.id = locked.id and u.id = any($1::uuid[]) and u.status = 'HELD'
     returning 1
   )
   select count(*)::int as n from x`,
};
