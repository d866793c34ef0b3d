/**
 * The SQL of calls paid per request (x402): the durable usage row placed before the payment moves and before
 * the upstream is called, the settlement's transaction recorded on it the moment it is broadcast, the
 * row's end once the call is priced, and the fragment crediting runs when it credits a settlement's deposit
 * (see the x402 migration for the life of such a row). Metering owns `usage_records`: crediting calls these
 * functions, never its own copies.
 *
 * A paid row holds nothing on its account (the payment is not credited yet) until crediting credits its
 * settlement while the call still runs: then the row's hold is put on the account (`account_held`) and it
 * settles like a keyed call (`settlement.store.ts`). Otherwise the priced call waits as AWAITING_PAYMENT,
 * and crediting writes its USAGE entry in the transaction that credits the deposit.
 */
import { randomUUID } from 'node:crypto';
import type { MicroUsd } from '@chainmeter/schema';
import { z } from 'zod';
import { violatedConstraint } from '../../db/constraint.ts';
import type { Query, SqlRunner, Statement } from '../../db/sql.ts';
import { createAccounts } from '../accounts/accounts.store.ts';
import { type Settlement, settlementFromJson, settlementToJson } from './settlement.ts';

export type PaymentScheme = 'exact' | 'upto';

export interface PlacePaidCallParameters {
  payer: string;
  scheme: PaymentScheme;
  requestId: string;
  model: string;
  /** The most the call may cost (what the payer signed), micro-USD. */
  maxPrice: MicroUsd;
  streamed: boolean;
  now: Date;
  holdExpiresAt: Date;
  /** The payment as accepted (x402's payload and requirements), kept to submit it again after a deep reorg. */
  payload?: unknown;
  /** The signed authorization the payment spends (`CallPayment.authorization`): one call per authorization. */
  authorization?: string;
  /**
   * `upto`: what the payer's wallet holds (token base units, read when the payment was verified). The call is
   * placed only if the maximum prices of the payer's `upto` calls still running, this one included, fit in it.
   */
  funds?: bigint;
}

const PLACE_PAID_CALL: Statement = {
  name: 'cm_place_paid_call',
  text: `insert into usage_records (id, request_id, account_id, api_key_id, model, status, streamed, hold_amount,
     created_at, hold_expires_at, payment_scheme, payer_address, account_held, payment_payload, payment_authorization)
   select $1::uuid, $2, a.id, null, $3, 'HELD', $4, $5::bigint, $6::timestamptz, $7::timestamptz, $8, $9, false,
     $10::jsonb, $11
   from accounts a where a.wallet_address = $9
     and ($12::bigint is null or $5::bigint + (select coalesce(sum(u.hold_amount), 0) from usage_records u
       where u.payer_address = $9 and u.payment_scheme = 'upto' and u.status = 'HELD') <= $12::bigint)
   returning account_id`,
};

const LOCK_PAYER: Statement = {
  name: 'cm_lock_paid_call_payer',
  text: 'select id from accounts where wallet_address = $1 for update',
};

/** The unique index that lets a signed authorization pay for one call (migration x402_authorization_claim). */
const AUTHORIZATION_CLAIMED = 'usage_records_payment_authorization_unique';

const placedRow = z.object({ account_id: z.string() });

/**
 * A placed call, or why it was not placed (nothing written): `authorization_used`, its authorization pays for
 * another call already (one still running, served, or whose settlement was broadcast); `funds_in_use`, the
 * payer's `upto` calls still running hold what its wallet has (`PlacePaidCallParameters.funds`).
 */
export type PlacedPaidCall =
  | { usageId: string; accountId: string }
  | { refused: 'authorization_used' | 'funds_in_use' };

/**
 * Creates the payer's account if it has none (a wallet that pays before it ever signs in) and writes the
 * call's durable row: HELD, nothing held on the account. With `funds`, under the payer's account lock, only
 * if the maximum prices of its `upto` calls still running, this one included, stay within `funds`.
 */
export async function placePaidCall(
  sql: SqlRunner,
  params: PlacePaidCallParameters,
): Promise<PlacedPaidCall> {
  const usageId = randomUUID();
  await createAccounts(sql.query, [params.payer]);
  const values = [
    usageId,
    params.requestId,
    params.model,
    params.streamed,
    params.maxPrice.toString(),
    params.now.toISOString(),
    params.holdExpiresAt.toISOString(),
    params.scheme,
    params.payer,
    params.payload === undefined ? null : JSON.stringify(params.payload),
    params.authorization ?? null,
    params.funds === undefined ? null : params.funds.toString(),
  ];
  const placed =
    params.funds === undefined
      ? sql.query(PLACE_PAID_CALL, values)
      : sql.transaction(async (query) => {
          await query(LOCK_PAYER, [params.payer]);
          return query(PLACE_PAID_CALL, values);
        });
  const rows = await placed.catch((error: unknown) => {
    if (violatedConstraint(error) === AUTHORIZATION_CLAIMED) return 'authorization_used' as const;
    throw error;
  });
  if (rows === 'authorization_used') return { refused: rows };
  const [row] = rows;
  if (!row) return { refused: 'funds_in_use' };
  return { usageId, accountId: placedRow.parse(row).account_id };
}

const RECORD_PAYMENT: Statement = {
  name: 'cm_record_paid_call_payment',
  text: `update usage_records set payment_tx_hash = $2, payment_amount = $3::bigint
   where id = $1::uuid and payment_scheme is not null and payment_tx_hash is null returning id`,
};

/** Links the call to its settlement's transaction (lowercase hash), as soon as it is broadcast. */
export async function recordPayment(
  sql: SqlRunner,
  usageId: string,
  txHash: string,
  amountToken: bigint,
): Promise<void> {
  await sql.query(RECORD_PAYMENT, [usageId, txHash.toLowerCase(), amountToken.toString()]);
}

const FINISH_PAID_CALL: Statement = {
  name: 'cm_finish_paid_call',
  text: `update usage_records set status = $2, prompt_tokens = $3, completion_tokens = $4,
     provider_cost = $5::bigint, user_price = $6::bigint, latency_ms = $7,
     flags = coalesce(string_to_array(nullif($8, ''), ','), '{}'), error = $9,
     outcome = case when $2 in ('AWAITING_PAYMENT', 'UNPAID') then $10::jsonb else null end,
     settled_at = case when $2 = 'AWAITING_PAYMENT' then null else $11::timestamptz end,
     payment_retried_at = case when $2 = 'UNPAID' and payment_scheme = 'upto' and payment_payload is not null
       and $6::bigint > 0 then $11::timestamptz end
   where id = $1::uuid and status = 'HELD' and not account_held
     and ($2 <> 'AWAITING_PAYMENT' or payment_tx_hash is not null)
   returning id`,
};

/**
 * Ends a paid call whose hold is not on its account: AWAITING_PAYMENT (priced, its USAGE entry follows when
 * its settlement is credited), RELEASED (free) or UNPAID (served, the settlement failed: `error` says why).
 * An UNPAID `upto` call with a price keeps its settlement and is settled again while its authorization is
 * valid ({@link claimUnpaidRetries}). False when the row is no longer such a call: crediting put its hold on
 * the account meanwhile (settle it as a keyed call), or it is settled already.
 */
export async function finishPaidCall(
  sql: SqlRunner,
  usageId: string,
  status: 'AWAITING_PAYMENT' | 'RELEASED' | 'UNPAID',
  settlement: Settlement,
  error: string | null = settlement.error,
): Promise<boolean> {
  const rows = await sql.query(FINISH_PAID_CALL, [
    usageId,
    status,
    settlement.promptTokens,
    settlement.completionTokens,
    settlement.providerCost === null ? null : settlement.providerCost.toString(),
    settlement.userPrice.toString(),
    settlement.latencyMs === null ? null : Math.round(settlement.latencyMs),
    settlement.flags.join(','),
    error,
    JSON.stringify(settlementToJson(settlement)),
    new Date().toISOString(),
  ]);
  return rows.length === 1;
}

/** A priced paid call whose settlement crediting is crediting now: its USAGE entry goes in that transaction. */
export interface AwaitingPaidCall {
  usageId: string;
  accountId: string;
  txHash: string;
  userPrice: bigint;
  settlement: Settlement;
}

/** A paid call still running whose settlement crediting is crediting now: its hold moves onto the account. */
export interface RunningPaidCall {
  usageId: string;
  accountId: string;
  txHash: string;
  hold: bigint;
}

/**
 * The priced calls a credited settlement pays for: those awaiting it, and those recorded UNPAID because their
 * settlement was not seen mined in time (its receipt wait gave up: a stalled chain, a failing RPC) though it
 * was broadcast and has now been mined and credited after all. Such a call kept its price (`outcome`); one
 * that a reorg left UNPAID after it was charged has none (`markPaidCallUnpaid`) and is never charged again.
 */
const LOCK_AWAITING_PAID_CALLS: Statement = {
  name: 'cm_lock_awaiting_paid_calls',
  text: `select id, account_id, payment_tx_hash, user_price::text as user_price, outcome from usage_records
   where payment_tx_hash = any($1::text[])
     and (status = 'AWAITING_PAYMENT' or (status = 'UNPAID' and outcome is not null))
   order by id for update`,
};

const awaitingRow = z.object({
  id: z.string(),
  account_id: z.string(),
  payment_tx_hash: z.string(),
  user_price: z.string(),
  outcome: z
    .union([z.string().transform((text) => JSON.parse(text) as unknown), z.unknown()])
    .pipe(z.record(z.string(), z.unknown())),
});

const HOLD_RUNNING_PAID_CALLS: Statement = {
  name: 'cm_hold_running_paid_calls',
  text: `with r as (
     update usage_records set account_held = true
     where id in (select id from usage_records where payment_tx_hash = any($1::text[]) and status = 'HELD'
       and not account_held order by id for update)
     returning id, account_id, payment_tx_hash, hold_amount
   ), a as (
     update accounts set held = accounts.held + s.held
     from (select account_id, sum(hold_amount) as held from r group by account_id) s
     where accounts.id = s.account_id returning 1
   )
   select id, account_id, payment_tx_hash, hold_amount::text as hold_amount from r`,
};

const runningRow = z.object({
  id: z.string(),
  account_id: z.string(),
  payment_tx_hash: z.string(),
  hold_amount: z.string(),
});

/**
 * Crediting's part, in its transaction, for the settlements (lowercase transaction hashes) it is crediting,
 * after it locked their accounts: locks the priced calls that await them, and puts the hold of the calls
 * still running on their accounts (so the money they were paid with cannot be spent by another call).
 * The caller writes the awaiting calls' USAGE entries and then {@link markPaidCallsBilled}.
 */
export async function claimPaidCalls(
  query: Query,
  txHashes: readonly string[],
): Promise<{ awaiting: AwaitingPaidCall[]; running: RunningPaidCall[] }> {
  if (txHashes.length === 0) return { awaiting: [], running: [] };
  const awaiting = (await query(LOCK_AWAITING_PAID_CALLS, [txHashes])).map((raw): AwaitingPaidCall => {
    const row = awaitingRow.parse(raw);
    return {
      usageId: row.id,
      accountId: row.account_id,
      txHash: row.payment_tx_hash,
      userPrice: BigInt(row.user_price),
      settlement: settlementFromJson(row.outcome),
    };
  });
  const running = (await query(HOLD_RUNNING_PAID_CALLS, [txHashes])).map((raw): RunningPaidCall => {
    const row = runningRow.parse(raw);
    return {
      usageId: row.id,
      accountId: row.account_id,
      txHash: row.payment_tx_hash,
      hold: BigInt(row.hold_amount),
    };
  });
  return { awaiting, running };
}

const MARK_PAID_CALLS_BILLED: Statement = {
  name: 'cm_mark_paid_calls_billed',
  text: `update usage_records u set status = v.status, outcome = null, settled_at = $3::timestamptz,
     error = case when u.status = 'UNPAID' then u.outcome->>'error' else u.error end, payment_retried_at = null
   from unnest($1::uuid[], $2::text[]) as v(id, status)
   where u.id = v.id and u.status in ('AWAITING_PAYMENT', 'UNPAID')`,
};

/**
 * Closes the calls {@link claimPaidCalls} locked whose USAGE entries the caller wrote: BILLED (or NEEDS_REVIEW,
 * as priced).
 */
export async function markPaidCallsBilled(
  query: Query,
  calls: readonly AwaitingPaidCall[],
  now: Date,
): Promise<void> {
  if (calls.length === 0) return;
  await query(MARK_PAID_CALLS_BILLED, [
    calls.map((call) => call.usageId),
    calls.map((call) => (call.settlement.status === 'NEEDS_REVIEW' ? 'NEEDS_REVIEW' : 'BILLED')),
    now.toISOString(),
  ]);
}

/** A paid call whose process died before it ended (not held on its account). */
export interface AbandonedPaidCall {
  id: string;
  scheme: PaymentScheme;
  txHash: string | null;
}

const FIND_ABANDONED_PAID_CALLS: Statement = {
  name: 'cm_find_abandoned_paid_calls',
  text: `select id, payment_scheme, payment_tx_hash from usage_records
   where status = 'HELD' and not account_held and hold_expires_at < $1::timestamptz and not (id = any($3::uuid[]))
   order by hold_expires_at limit $2`,
};

const abandonedRow = z.object({
  id: z.string(),
  payment_scheme: z.enum(['exact', 'upto']),
  payment_tx_hash: z.string().nullable(),
});

/** Paid calls still HELD past their expiry whose hold is not on their account (their process died). */
export async function findAbandonedPaidCalls(
  sql: SqlRunner,
  now: Date,
  limit: number,
  exclude: readonly string[],
): Promise<AbandonedPaidCall[]> {
  const rows = await sql.query(FIND_ABANDONED_PAID_CALLS, [now.toISOString(), limit, exclude]);
  return rows.map((raw) => {
    const row = abandonedRow.parse(raw);
    return { id: row.id, scheme: row.payment_scheme, txHash: row.payment_tx_hash };
  });
}

const PAYER_HAS_UNPAID: Statement = {
  name: 'cm_payer_has_unpaid_calls',
  text: `select exists (select 1 from usage_records where payer_address = $1 and status = 'UNPAID') as unpaid`,
};

/** Whether `payer` (checksummed) was served a paid call it never paid for (UNPAID). */
export async function payerHasUnpaidCalls(sql: SqlRunner, payer: string): Promise<boolean> {
  const [row] = await sql.query(PAYER_HAS_UNPAID, [payer]);
  return z.object({ unpaid: z.boolean() }).parse(row).unpaid;
}

const COUNT_UNPAID: Statement = {
  name: 'cm_count_unpaid_paid_calls',
  text: `select count(*)::int as n from usage_records where status = 'UNPAID'`,
};

/** How many paid calls were served and never paid (an upto settlement that failed, or one a reorg removed). */
export async function countUnpaidCalls(sql: SqlRunner): Promise<number> {
  const [row] = await sql.query(COUNT_UNPAID, []);
  return z.object({ n: z.number() }).parse(row).n;
}

/**
 * A charged or priced paid call whose settlement may be gone from the chain: AWAITING_PAYMENT (its settlement
 * was mined before it was priced, but not credited yet), or charged (BILLED, NEEDS_REVIEW) while its
 * settlement's deposit is REORGED and not credited again. The caller asks the chain whether it is gone.
 */
export interface UnsettledPaidCall {
  id: string;
  status: 'AWAITING_PAYMENT' | 'BILLED' | 'NEEDS_REVIEW';
  scheme: PaymentScheme;
  txHash: string;
  /** What the settlement moved (token base units). */
  amount: bigint;
  /** The payment as accepted, as {@link placePaidCall} kept it. */
  payload: unknown;
}

const FIND_UNSETTLED_PAID_CALLS: Statement = {
  name: 'cm_find_unsettled_paid_calls',
  text: `select u.id, u.status, u.payment_scheme, u.payment_tx_hash, u.payment_amount::text as payment_amount,
     u.payment_payload from usage_records u
   where u.payment_payload is not null and u.payment_tx_hash is not null and u.payment_amount is not null
     and (u.status = 'AWAITING_PAYMENT'
       or (u.status in ('BILLED', 'NEEDS_REVIEW')
         and exists (select 1 from deposits d where d.tx_hash = u.payment_tx_hash and d.status = 'REORGED')
         and not exists (select 1 from deposits d where d.tx_hash = u.payment_tx_hash and d.status <> 'REORGED')))
   order by u.created_at limit $1`,
};

const unsettledRow = z.object({
  id: z.string(),
  status: z.enum(['AWAITING_PAYMENT', 'BILLED', 'NEEDS_REVIEW']),
  payment_scheme: z.enum(['exact', 'upto']),
  payment_tx_hash: z.string(),
  payment_amount: z.string(),
  payment_payload: z.unknown(),
});

/** `payment_payload` as read (jsonb, parsed or not, depending on the driver). */
const storedPayload = (value: unknown): unknown => (typeof value === 'string' ? JSON.parse(value) : value);

/** Paid calls whose settlement a deep reorg may have removed (oldest first); see {@link UnsettledPaidCall}. */
export async function findUnsettledPaidCalls(sql: SqlRunner, limit: number): Promise<UnsettledPaidCall[]> {
  const rows = await sql.query(FIND_UNSETTLED_PAID_CALLS, [limit]);
  return rows.map((raw) => {
    const row = unsettledRow.parse(raw);
    return {
      id: row.id,
      status: row.status,
      scheme: row.payment_scheme,
      txHash: row.payment_tx_hash,
      amount: BigInt(row.payment_amount),
      payload: storedPayload(row.payment_payload),
    };
  });
}

const REPLACE_PAYMENT_TX: Statement = {
  name: 'cm_replace_paid_call_payment_tx',
  text: `update usage_records set payment_tx_hash = $3
   where id = $1::uuid and payment_tx_hash = $2 returning id`,
};

/**
 * Points the call at its settlement submitted again (lowercase hashes). Guarded by the old hash: of several
 * replicas that found the same call, one replaces it, once. False when the row no longer has `oldTxHash`.
 */
export async function replacePaymentTx(
  sql: SqlRunner,
  usageId: string,
  oldTxHash: string,
  newTxHash: string,
): Promise<boolean> {
  const rows = await sql.query(REPLACE_PAYMENT_TX, [
    usageId,
    oldTxHash.toLowerCase(),
    newTxHash.toLowerCase(),
  ]);
  return rows.length === 1;
}

const MARK_PAID_CALL_UNPAID: Statement = {
  name: 'cm_mark_paid_call_unpaid',
  text: `update usage_records set status = 'UNPAID', outcome = null, settled_at = $3::timestamptz
   where id = $1::uuid and payment_tx_hash = $2 and status in ('AWAITING_PAYMENT', 'BILLED', 'NEEDS_REVIEW')
   returning id`,
};

/**
 * A call whose settlement is gone and whose authorization expired: served, never paid. An AWAITING_PAYMENT
 * call has no USAGE entry (its price was never charged). A charged call keeps its USAGE entry: the reorg's
 * reversal of its settlement's deposit left the account owing what it could not take back, and that debt
 * stands (the payer was served and owes the price); the audit lists the call as unpaid, its ledger still
 * adds up. Guarded by the settlement's hash, like {@link replacePaymentTx}.
 */
export async function markPaidCallUnpaid(
  sql: SqlRunner,
  usageId: string,
  txHash: string,
  now: Date,
): Promise<boolean> {
  const rows = await sql.query(MARK_PAID_CALL_UNPAID, [usageId, txHash.toLowerCase(), now.toISOString()]);
  return rows.length === 1;
}

/** An UNPAID `upto` call to settle again: its authorization may still be unused and valid. */
export interface UnpaidRetry {
  id: string;
  /** The failed settlement's transaction, if it was broadcast (the guard of {@link recoverUnpaidCall}). */
  txHash: string | null;
  /** The call's user price: what to settle (token base units, one per micro-USD). */
  price: bigint;
  /** The payment as accepted, as {@link placePaidCall} kept it. */
  payload: unknown;
}

/**
 * Claims up to $2 UNPAID calls due for a retry, oldest first: the back-off since the last attempt is the time
 * the call had been unpaid by then, at least $3 and at most $4 ms, so the attempts of a call that never gets
 * paid thin out (its authorization expires anyway). Claiming records the attempt, so of several replicas one
 * takes a call per back-off, and a pass takes each call once.
 */
const CLAIM_UNPAID_RETRIES: Statement = {
  name: 'cm_claim_unpaid_retries',
  text: `with claimed as (
     update usage_records u set payment_retried_at = $1::timestamptz
     where u.id in (
       select id from usage_records
       where status = 'UNPAID' and payment_retried_at is not null
         and payment_retried_at <= $1::timestamptz - greatest($3::bigint * interval '1 millisecond',
           least(payment_retried_at - settled_at, $4::bigint * interval '1 millisecond'))
       order by created_at limit $2 for update skip locked)
     returning u.id, u.payment_tx_hash, u.user_price, u.payment_payload, u.created_at)
   select id, payment_tx_hash, user_price::text as user_price, payment_payload from claimed order by created_at`,
};

const unpaidRetryRow = z.object({
  id: z.string(),
  payment_tx_hash: z.string().nullable(),
  user_price: z.string(),
  payment_payload: z.unknown(),
});

/** Claims the UNPAID calls due for another settlement attempt (see the statement), oldest first. */
export async function claimUnpaidRetries(
  sql: SqlRunner,
  now: Date,
  limit: number,
  backoff: { minMs: number; maxMs: number },
): Promise<UnpaidRetry[]> {
  const rows = await sql.query(CLAIM_UNPAID_RETRIES, [
    now.toISOString(),
    limit,
    Math.round(backoff.minMs),
    Math.round(backoff.maxMs),
  ]);
  return rows.map((raw) => {
    const row = unpaidRetryRow.parse(raw);
    return {
      id: row.id,
      txHash: row.payment_tx_hash,
      price: BigInt(row.user_price),
      payload: storedPayload(row.payment_payload),
    };
  });
}

const RECOVER_UNPAID_CALL: Statement = {
  name: 'cm_recover_unpaid_call',
  text: `update usage_records set status = 'AWAITING_PAYMENT', payment_tx_hash = $3, payment_amount = $4::bigint,
     error = outcome->>'error', settled_at = null, payment_retried_at = null
   where id = $1::uuid and status = 'UNPAID' and outcome is not null and payment_tx_hash is not distinct from $2
   returning id`,
};

/**
 * An UNPAID call settled again: it awaits its payment (`newTxHash`, lowercase, for `amount`), and crediting
 * charges it when it credits that transfer, as any AWAITING_PAYMENT call. Guarded by the status and the
 * failed settlement's hash (null if none was broadcast): of several replicas, one moves it, once. False
 * when the row is no longer that UNPAID call.
 */
export async function recoverUnpaidCall(
  sql: SqlRunner,
  usageId: string,
  oldTxHash: string | null,
  newTxHash: string,
  amount: bigint,
): Promise<boolean> {
  const rows = await sql.query(RECOVER_UNPAID_CALL, [
    usageId,
    oldTxHash?.toLowerCase() ?? null,
    newTxHash.toLowerCase(),
    amount.toString(),
  ]);
  return rows.length === 1;
}

const END_UNPAID_RETRIES: Statement = {
  name: 'cm_end_unpaid_retries',
  text: `update usage_records set payment_retried_at = null where id = $1::uuid and status = 'UNPAID'
   returning id`,
};

/** The call's authorization expired or was spent elsewhere: it stays UNPAID, never tried again. */
export async function endUnpaidRetries(sql: SqlRunner, usageId: string): Promise<boolean> {
  const rows = await sql.query(END_UNPAID_RETRIES, [usageId]);
  return rows.length === 1;
}
