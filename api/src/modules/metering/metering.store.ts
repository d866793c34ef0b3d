/**
 * The hot path's SQL: placing a hold and settling a call. Raw statements (not ORM entities) because each
 * metered call pays for them twice and the ORM's unit of work costs a millisecond or more per call:
 * - the hold is ONE statement (an implicit transaction): account hold, key hold, durable record;
 * - a settlement with a charge is one short transaction of two statements: lock (record, then account),
 *   then ledger entry + balance + key + usage row together; one without a charge is one statement.
 * Lock order is always usage record -> account -> api key, so concurrent settlements cannot deadlock.
 *
 * The USAGE ledger entry keeps the ledger's invariants exactly as `appendLedgerEntry` does: the account
 * row is locked, seq + 1, balance_after = balance + amount (>= 0, also a CHECK), and the hash chain is
 * `ledgerEntryHash` from @chainmeter/schema, the one implementation of the hash.
 * Values are bound through MikroORM's escaping; these statements bypass the identity map.
 */
import { randomUUID } from 'node:crypto';
import { ledgerEntryHash, type MicroUsd } from '@chainmeter/schema';
import type { Em } from '../../db/orm.ts';
import type { BillingStatus } from './metering.entity.ts';

/** A call's hold could not be placed: the account's available balance or the key's limit is short. */
export class InsufficientCreditsError extends Error {
  override name = 'InsufficientCreditsError';
  readonly code = 'INSUFFICIENT_CREDITS';
  readonly scope: 'account' | 'apiKey';
  constructor(scope: 'account' | 'apiKey', hold: bigint) {
    super(
      scope === 'account'
        ? `Insufficient credits: this call may cost up to ${formatHold(hold)} credits, more than the available balance`
        : `Insufficient credits: this call may cost up to ${formatHold(hold)} credits, more than this API key's remaining spend limit`,
    );
    this.scope = scope;
  }
}

function formatHold(hold: bigint): string {
  const whole = hold / 1000n;
  const fraction = (hold % 1000n).toString().padStart(3, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : whole.toString();
}

export interface PlaceHoldParameters {
  accountId: string;
  apiKeyId: string | null;
  requestId: string;
  model: string;
  hold: MicroUsd;
  streamed: boolean;
  now: Date;
  holdExpiresAt: Date;
}

/**
 * Reserves `hold` on the account (`balance - held >= hold`, one guarded update) and on the API key (its
 * CHECK refuses `spent + held > spend_limit`), and writes the durable record, all in one statement: it
 * either does all three or nothing. Throws {@link InsufficientCreditsError} when either does not fit.
 * @returns the usage record's id
 */
export async function placeHold(em: Em, params: PlaceHoldParameters): Promise<string> {
  const id = randomUUID();
  const hold = params.hold.toString();
  let rows: { held: number }[];
  try {
    rows = await em.execute(
      `with a as (
         update accounts set held = held + ?::bigint where id = ?::uuid and balance - held >= ?::bigint returning id
       ), k as (
         update api_keys set held = held + ?::bigint where id = ?::uuid and exists (select 1 from a) returning id
       ), r as (
         insert into usage_records (id, request_id, account_id, api_key_id, model, status, streamed, hold_amount,
           created_at, hold_expires_at)
         select ?::uuid, ?, a.id, ?::uuid, ?, 'HELD', ?, ?::bigint, ?::timestamptz, ?::timestamptz from a
         returning id
       )
       select (select count(*) from r)::int as held`,
      [
        hold,
        params.accountId,
        hold,
        hold,
        params.apiKeyId,
        id,
        params.requestId,
        params.apiKeyId,
        params.model,
        params.streamed,
        hold,
        params.now.toISOString(),
        params.holdExpiresAt.toISOString(),
      ],
    );
  } catch (error) {
    // The key's CHECK (spent + held <= spend_limit) aborts the whole statement, account hold included.
    if (String((error as Error).message).includes('api_keys_within_spend_limit')) {
      throw new InsufficientCreditsError('apiKey', params.hold);
    }
    throw error;
  }
  if (rows[0]?.held !== 1) throw new InsufficientCreditsError('account', params.hold);
  return id;
}

/** How a call ends for billing: computed once (see `billing.ts`), stored if settling fails, re-applied as is. */
export interface Settlement {
  status: BillingStatus | 'RELEASED';
  promptTokens: number;
  completionTokens: number;
  providerCost: MicroUsd | null;
  userPrice: MicroUsd;
  latencyMs: number | null;
  flags: string[];
  error: string | null;
}

export type SettleResult =
  | { settled: true; ledgerEntryId: string | null; accountId: string }
  | { settled: false; reason: 'already settled' };

/**
 * Settles a held (or UNSETTLED) call exactly once: the guarded transition out of HELD/UNSETTLED locks
 * the record, so a second settlement (a retry racing the first, another replica) finds nothing to do.
 * With a charge: release the hold, append the USAGE ledger entry (negative, reference = usage id), move
 * the balance, raise the key's `spent`, fill in the usage row, in one transaction.
 */
export async function applySettlement(
  em: Em,
  usageId: string,
  settlement: Settlement,
): Promise<SettleResult> {
  if (settlement.userPrice === 0n) return settleWithoutCharge(em, usageId, settlement);
  return em.transactional(async (tx) => {
    const rows: {
      account_id: string;
      api_key_id: string | null;
      hold_amount: string;
      balance: string;
      ledger_seq: number;
      ledger_head: string | null;
    }[] = await tx.execute(
      `with r as (
         update usage_records set settle_attempts = settle_attempts + 1
         where id = ?::uuid and status in ('HELD', 'UNSETTLED')
         returning account_id, api_key_id, hold_amount
       )
       select a.id as account_id, r.api_key_id, r.hold_amount::text as hold_amount, a.balance::text as balance,
         a.ledger_seq, a.ledger_head
       from r join accounts a on a.id = r.account_id
       for update of a`,
      [usageId],
    );
    const row = rows[0];
    if (!row) return { settled: false, reason: 'already settled' } as const;
    const hold = BigInt(row.hold_amount);
    if (settlement.userPrice > hold) {
      throw new RangeError(`usage ${usageId}: price ${settlement.userPrice} exceeds its hold ${hold}`);
    }
    const now = new Date();
    const amount = -settlement.userPrice;
    const fields = {
      accountId: row.account_id,
      seq: row.ledger_seq + 1,
      amount,
      balanceAfter: BigInt(row.balance) + amount,
      reason: 'USAGE',
      referenceId: usageId,
      createdAt: now,
    };
    const hash = ledgerEntryHash(row.ledger_head, fields);
    const ledgerEntryId = randomUUID();
    await tx.execute(
      `with e as (
         insert into ledger_entries (id, account_id, seq, amount, balance_after, reason, reference_id, deposit_id,
           created_at, prev_hash, hash)
         values (?::uuid, ?::uuid, ?, ?::bigint, ?::bigint, 'USAGE', ?, null, ?::timestamptz, ?, ?)
         returning id
       ), a as (
         update accounts set balance = ?::bigint, held = held - ?::bigint, ledger_seq = ?, ledger_head = ?
         where id = ?::uuid returning id
       ), k as (
         update api_keys set held = held - ?::bigint, spent = spent + ?::bigint where id = ?::uuid returning id
       ), u as (
         ${UPDATE_USAGE_ROW}
         returning id
       )
       select (select count(*) from e)::int as e, (select count(*) from a)::int as a, (select count(*) from u)::int as u`,
      [
        ledgerEntryId,
        row.account_id,
        fields.seq,
        amount.toString(),
        fields.balanceAfter.toString(),
        usageId,
        now.toISOString(),
        row.ledger_head,
        hash,
        fields.balanceAfter.toString(),
        hold.toString(),
        fields.seq,
        hash,
        row.account_id,
        hold.toString(),
        settlement.userPrice.toString(),
        row.api_key_id,
        ...usageRowParams(usageId, settlement, now),
      ],
    );
    return { settled: true, ledgerEntryId, accountId: row.account_id } as const;
  });
}

const UPDATE_USAGE_ROW = `update usage_records set status = ?, prompt_tokens = ?, completion_tokens = ?,
           provider_cost = ?::bigint, user_price = ?::bigint, latency_ms = ?,
           flags = coalesce(string_to_array(nullif(?, ''), ','), '{}'), error = ?, outcome = null, settled_at = ?::timestamptz
         where id = ?::uuid`;

function usageRowParams(usageId: string, s: Settlement, now: Date): unknown[] {
  return [
    s.status,
    s.promptTokens,
    s.completionTokens,
    s.providerCost === null ? null : s.providerCost.toString(),
    s.userPrice.toString(),
    s.latencyMs === null ? null : Math.round(s.latencyMs),
    s.flags.join(','),
    s.error,
    now.toISOString(),
    usageId,
  ];
}

/** Release the hold and close the record, with no ledger entry: one statement. */
async function settleWithoutCharge(em: Em, usageId: string, settlement: Settlement): Promise<SettleResult> {
  const rows: { account_id: string }[] = await em.execute(
    `with r as (
       ${UPDATE_USAGE_ROW} and status in ('HELD', 'UNSETTLED')
       returning account_id, api_key_id, hold_amount
     ), a as (
       update accounts set held = accounts.held - r.hold_amount from r where accounts.id = r.account_id returning 1
     ), k as (
       update api_keys set held = api_keys.held - r.hold_amount from r where api_keys.id = r.api_key_id returning 1
     )
     select r.account_id from r`,
    usageRowParams(usageId, settlement, new Date()),
  );
  const row = rows[0];
  if (!row) return { settled: false, reason: 'already settled' };
  return { settled: true, ledgerEntryId: null, accountId: row.account_id };
}

/**
 * Keeps what a failed settlement must still do on the record (status UNSETTLED), so a retry loop (this
 * process or any replica, also after a restart) settles exactly that. The hold stays in place meanwhile.
 */
export async function markUnsettled(
  em: Em,
  usageId: string,
  settlement: Settlement,
  error: string,
): Promise<boolean> {
  const rows: { id: string }[] = await em.execute(
    `update usage_records set status = 'UNSETTLED', outcome = ?::jsonb, error = ?
     where id = ?::uuid and status in ('HELD', 'UNSETTLED') returning id`,
    [JSON.stringify(settlementToJson(settlement)), error.slice(0, 500), usageId],
  );
  return rows.length === 1;
}

export function settlementToJson(s: Settlement): Record<string, unknown> {
  return {
    status: s.status,
    promptTokens: s.promptTokens,
    completionTokens: s.completionTokens,
    providerCost: s.providerCost === null ? null : s.providerCost.toString(),
    userPrice: s.userPrice.toString(),
    latencyMs: s.latencyMs,
    flags: s.flags,
    error: s.error,
  };
}

export function settlementFromJson(json: Record<string, unknown>): Settlement {
  return {
    status: json.status as Settlement['status'],
    promptTokens: Number(json.promptTokens),
    completionTokens: Number(json.completionTokens),
    providerCost: json.providerCost == null ? null : (BigInt(json.providerCost as string) as MicroUsd),
    userPrice: BigInt(json.userPrice as string) as MicroUsd,
    latencyMs: json.latencyMs == null ? null : Number(json.latencyMs),
    flags: Array.isArray(json.flags) ? (json.flags as string[]) : [],
    error: typeof json.error === 'string' ? json.error : null,
  };
}

/** Settlements left UNSETTLED (by this process or a crashed one), oldest first. */
export async function findUnsettled(
  em: Em,
  limit: number,
): Promise<{ id: string; settlement: Settlement }[]> {
  const rows: { id: string; outcome: Record<string, unknown> | string }[] = await em.execute(
    `select id, outcome from usage_records where status = 'UNSETTLED' and outcome is not null
     order by hold_expires_at limit ?`,
    [limit],
  );
  return rows.map((row) => ({
    id: row.id,
    settlement: settlementFromJson(typeof row.outcome === 'string' ? JSON.parse(row.outcome) : row.outcome),
  }));
}

/** Holds whose call never finished (the process died mid-call): past their expiry, still HELD. */
export async function findExpiredHolds(em: Em, now: Date, limit: number): Promise<string[]> {
  const rows: { id: string }[] = await em.execute(
    `select id from usage_records where status = 'HELD' and hold_expires_at < ?::timestamptz
     order by hold_expires_at limit ?`,
    [now.toISOString(), limit],
  );
  return rows.map((row) => row.id);
}
