/**
 * Auto top-up's SQL: the account's settings and its stored EIP-3009 authorizations (this module alone writes
 * `auto_top_ups` and `auto_top_up_authorizations`), the claim of the next authorization to submit, and the
 * outcome of a submission. The claim locks the account's `auto_top_ups` row (FOR UPDATE SKIP LOCKED) and
 * sets its `in_flight_id` in the same statement, re-checked on the locked row: of any number of replicas, one
 * claims one authorization per account, and none claims another until that one's deposit is credited.
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';

export interface StoredAuthorization {
  from: string;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: string;
  signature: string;
}

const UPSERT_SETTINGS: Statement = {
  name: 'cm_topup_upsert_settings',
  text: `insert into auto_top_ups (account_id, threshold) values ($1::uuid, $2::bigint)
   on conflict (account_id) do update set threshold = excluded.threshold, paused = false, paused_reason = null`,
};

const DELETE_STORED: Statement = {
  name: 'cm_topup_delete_stored',
  text: `delete from auto_top_up_authorizations where account_id = $1::uuid and status = 'STORED'
   returning from_address, nonce`,
};

const INSERT_AUTHORIZATIONS: Statement = {
  name: 'cm_topup_insert_authorizations',
  text: `insert into auto_top_up_authorizations (account_id, position, from_address, value, valid_after, valid_before,
     nonce, signature)
   select $1::uuid, coalesce((select max(position) from auto_top_up_authorizations where account_id = $1::uuid), 0) + t.i,
     t.from_address, t.value, t.valid_after, t.valid_before, t.nonce, t.signature
   from unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])
     with ordinality as t(from_address, value, valid_after, valid_before, nonce, signature, i)`,
};

/**
 * Replaces the account's stored authorizations with `authorizations` (used in this order) and sets its
 * threshold, unpausing it: one transaction, `query` the caller's. A nonce already used by this wallet (stored,
 * submitted or failed before) violates `auto_top_up_authorizations_nonce_unique`.
 */
export async function storeAutoTopUp(
  query: Query,
  accountId: string,
  threshold: bigint,
  authorizations: readonly StoredAuthorization[],
): Promise<void> {
  await query(UPSERT_SETTINGS, [accountId, threshold.toString()]);
  await query(DELETE_STORED, [accountId]);
  await query(INSERT_AUTHORIZATIONS, [
    accountId,
    authorizations.map((a) => a.from),
    authorizations.map((a) => a.value.toString()),
    authorizations.map((a) => a.validAfter.toString()),
    authorizations.map((a) => a.validBefore.toString()),
    authorizations.map((a) => a.nonce.toLowerCase()),
    authorizations.map((a) => a.signature),
  ]);
}

const DELETE_SETTINGS: Statement = {
  name: 'cm_topup_delete_settings',
  text: 'delete from auto_top_ups where account_id = $1::uuid returning account_id',
};

/**
 * Cancels auto top-up: deletes the settings and the authorizations not yet submitted; returns those
 * authorizations' (wallet, nonce), which the wallet may also cancel on chain (`cancelAuthorization`).
 */
export async function deleteAutoTopUp(
  query: Query,
  accountId: string,
): Promise<{ existed: boolean; deleted: { from: string; nonce: string }[] }> {
  const settings = await query(DELETE_SETTINGS, [accountId]);
  const rows = await query(DELETE_STORED, [accountId]);
  return {
    existed: settings.length > 0,
    deleted: rows.map((row) => {
      const parsed = z.object({ from_address: z.string(), nonce: z.string() }).parse(row);
      return { from: parsed.from_address, nonce: parsed.nonce };
    }),
  };
}

const READ_AUTO_TOP_UP: Statement = {
  name: 'cm_topup_read',
  text: `select t.threshold::text as threshold, t.paused, t.paused_reason,
     (select count(*)::int from auto_top_up_authorizations z where z.account_id = t.account_id and z.status = 'STORED')
       as remaining,
     (select coalesce(array_agg(z.nonce order by z.position), '{}') from auto_top_up_authorizations z
       where z.account_id = t.account_id and z.status = 'STORED') as nonces
   from auto_top_ups t where t.account_id = $1::uuid`,
};

const autoTopUpRow = z.object({
  threshold: z.string(),
  paused: z.boolean(),
  paused_reason: z.string().nullable(),
  remaining: z.number(),
  nonces: z.union([z.array(z.string()), z.string()]),
});

export interface AutoTopUpView {
  threshold: bigint;
  remaining: number;
  paused: boolean;
  pausedReason: string | null;
  /** The stored authorizations' nonces, in the order they will be used. */
  nonces: string[];
}

export async function readAutoTopUp(query: Query, accountId: string): Promise<AutoTopUpView | null> {
  const [raw] = await query(READ_AUTO_TOP_UP, [accountId]);
  if (raw === undefined) return null;
  const row = autoTopUpRow.parse(raw);
  const nonces =
    typeof row.nonces === 'string'
      ? row.nonces
          .replace(/^\{|\}$/g, '')
          .split(',')
          .filter(Boolean)
      : row.nonces;
  return {
    threshold: BigInt(row.threshold),
    remaining: row.remaining,
    paused: row.paused,
    pausedReason: row.paused_reason,
    nonces,
  };
}

const CLEAR_LANDED: Statement = {
  name: 'cm_topup_clear_landed',
  text: `update auto_top_ups t set in_flight_id = null, in_flight_since = null
   from auto_top_up_authorizations z
   where z.id = t.in_flight_id and (
     exists (select 1 from deposits d where lower(d.tx_hash) = lower(z.tx_hash) and d.status in ('CREDITED', 'REORGED'))
     or t.in_flight_since < $1::timestamptz)
   returning t.account_id`,
};

/**
 * Frees the accounts whose authorization in flight has landed (its deposit CREDITED, or REORGED), or has
 * been in flight since before `staleBefore` (never indexed: its transaction was dropped or reverted), so the
 * next claim may submit another one if the balance is still below the threshold.
 */
export async function clearLandedTopUps(query: Query, staleBefore: Date): Promise<number> {
  return (await query(CLEAR_LANDED, [staleBefore.toISOString()])).length;
}

const CLAIM: Statement = {
  name: 'cm_topup_claim',
  text: `with due as materialized (
     select t.account_id from auto_top_ups t join accounts a on a.id = t.account_id
     where not t.paused and t.in_flight_id is null and a.balance < t.threshold
     order by t.account_id limit $3 for update of t skip locked
   ), next as materialized (
     select distinct on (z.account_id) z.account_id, z.id from auto_top_up_authorizations z join due using (account_id)
     where z.status = 'STORED' and z.valid_before > $2::bigint
     order by z.account_id, z.position
   ), submitted as (
     -- The authorization first: its row is not locked by next, which read it from the statement's
     -- snapshot. If a replacement deleted (or a release changed) it meanwhile, this update waits for that
     -- transaction and then finds nothing, and so the account is not marked in flight for it.
     update auto_top_up_authorizations z set status = 'SUBMITTED', submitted_at = $1::timestamptz
     from next where z.id = next.id and z.status = 'STORED'
     returning z.id, z.account_id, z.from_address, z.value, z.valid_after, z.valid_before, z.nonce, z.signature
   ), in_flight as (
     -- due locked these rows: nothing in flight can have appeared since
     update auto_top_ups t set in_flight_id = s.id, in_flight_since = $1::timestamptz
     from submitted s where t.account_id = s.account_id and t.in_flight_id is null
     returning t.in_flight_id
   )
   select s.id, s.account_id, s.from_address, s.value::text as value, s.valid_after::text as valid_after,
     s.valid_before::text as valid_before, s.nonce, s.signature
   from submitted s join in_flight f on f.in_flight_id = s.id`,
};

const claimedRow = z.object({
  id: z.string(),
  account_id: z.string(),
  from_address: z.string(),
  value: z.string(),
  valid_after: z.string(),
  valid_before: z.string(),
  nonce: z.string(),
  signature: z.string(),
});

export interface ClaimedAuthorization extends StoredAuthorization {
  id: string;
  accountId: string;
}

/**
 * Claims, for up to `limit` accounts whose balance is below their threshold (not paused, nothing in flight),
 * the next stored authorization still valid after `validAfterUnix`: marked SUBMITTED and in flight, in one
 * statement. The caller submits each and records the outcome.
 */
export async function claimDueTopUps(
  query: Query,
  now: Date,
  validUntilAtLeast: bigint,
  limit: number,
): Promise<ClaimedAuthorization[]> {
  const rows = await query(CLAIM, [now.toISOString(), validUntilAtLeast.toString(), limit]);
  return rows.map((raw) => {
    const row = claimedRow.parse(raw);
    return {
      id: row.id,
      accountId: row.account_id,
      from: row.from_address,
      value: BigInt(row.value),
      validAfter: BigInt(row.valid_after),
      validBefore: BigInt(row.valid_before),
      nonce: row.nonce,
      signature: row.signature,
    };
  });
}

const RECORD_SUBMITTED: Statement = {
  name: 'cm_topup_record_submitted',
  text: `update auto_top_up_authorizations set tx_hash = $2 where id = $1::uuid
   returning (select count(*)::int from auto_top_up_authorizations s
     where s.account_id = auto_top_up_authorizations.account_id and s.status = 'STORED') as remaining`,
};

/** Records the relayer's transaction; returns how many stored authorizations remain. */
export async function recordSubmitted(query: Query, id: string, txHash: string): Promise<number> {
  const [row] = await query(RECORD_SUBMITTED, [id, txHash]);
  return z.object({ remaining: z.number() }).parse(row).remaining;
}

const RECORD_FAILED: Statement = {
  name: 'cm_topup_record_failed',
  text: `with z as (
     update auto_top_up_authorizations set status = 'FAILED', error = $2 where id = $1::uuid
     returning account_id
   )
   update auto_top_ups t set paused = true, paused_reason = $2, in_flight_id = null, in_flight_since = null
   from z where t.account_id = z.account_id and t.in_flight_id = $1::uuid
   returning t.account_id`,
};

/** A submission that failed for the payer's reason (no funds, a canceled or bad authorization): FAILED, paused. */
export async function recordFailed(query: Query, id: string, reason: string): Promise<void> {
  await query(RECORD_FAILED, [id, reason.slice(0, 500)]);
}

const RELEASE_CLAIM: Statement = {
  name: 'cm_topup_release_claim',
  text: `with z as (
     update auto_top_up_authorizations set status = 'STORED', submitted_at = null where id = $1::uuid and tx_hash is null
     returning account_id
   )
   update auto_top_ups t set in_flight_id = null, in_flight_since = null
   from z where t.account_id = z.account_id and t.in_flight_id = $1::uuid returning t.account_id`,
};

/** A submission that failed for the platform's reason (the relayer down): stored again, retried later. */
export async function releaseClaim(query: Query, id: string): Promise<void> {
  await query(RELEASE_CLAIM, [id]);
}
