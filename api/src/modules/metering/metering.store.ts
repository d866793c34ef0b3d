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
 * They run through `hotSql` (db/hot-sql.ts): on PostgreSQL prepared statements on the pg pool, values
 * bound as parameters; on PGlite or inside a caller's transaction, through the EntityManager. They bypass
 * the identity map.
 */
import { randomUUID } from 'node:crypto';
import { ledgerEntryHash, type MicroUsd } from '@chainmeter/schema';
import { hotSql, type Statement } from '../../db/hot-sql.ts';
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

const PLACE_HOLD: Statement = {
  name: 'cm_place_hold',
  text: `with a as (
     update accounts set held = held + $1::bigint where id = $2::uuid and balance - held >= $1::bigint returning id
   ), k as (
     update api_keys set held = held + $1::bigint where id = $3::uuid and exists (select 1 from a) returning id
   ), r as (
     insert into usage_records (id, request_id, account_id, api_key_id, model, status, streamed, hold_amount,
       created_at, hold_expires_at)
     select $4::uuid, $5, a.id, $3::uuid, $6, 'HELD', $7, $1::bigint, $8::timestamptz, $9::timestamptz from a
     returning id
   )
   select (select count(*) from r)::int as held`,
};

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
    rows = await hotSql(em).query(PLACE_HOLD, [
      hold,
      params.accountId,
      params.apiKeyId,
      id,
      params.requestId,
      params.model,
      params.streamed,
      params.now.toISOString(),
      params.holdExpiresAt.toISOString(),
    ]);
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
  const results = await applyChargedSettlements(em, [{ usageId, settlement }]);
  return results.get(usageId) ?? { settled: false, reason: 'already settled' };
}

interface LockedRecord {
  id: string;
  account_id: string;
  api_key_id: string | null;
  hold_amount: string;
  balance: string;
  ledger_seq: number;
  ledger_head: string | null;
}

export interface PendingSettlement {
  usageId: string;
  settlement: Settlement;
}

const LOCK_FOR_SETTLEMENT: Statement = {
  name: 'cm_lock_for_settlement',
  text: `with r as (
     update usage_records set settle_attempts = settle_attempts + 1
     where id = any($1::uuid[]) and status in ('HELD', 'UNSETTLED')
     returning id, account_id, api_key_id, hold_amount
   ), l as (
     select id, balance, ledger_seq, ledger_head from accounts
     where id in (select account_id from r) order by id for update
   )
   select r.id, r.account_id, r.api_key_id, r.hold_amount::text as hold_amount, l.balance::text as balance,
     l.ledger_seq, l.ledger_head
   from r join l on l.id = r.account_id`,
};

/** Every write of a batch, set-based; `$26`.. (the key totals) only in the variant with keys. */
function writeSettlements(withKeys: boolean): Statement {
  return {
    name: withKeys ? 'cm_write_settlements_keys' : 'cm_write_settlements',
    text: `with e as (
       insert into ledger_entries (id, account_id, seq, amount, balance_after, reason, reference_id, deposit_id,
         created_at, prev_hash, hash)
       select t.id, t.account_id, t.seq, t.amount, t.balance_after, 'USAGE', t.reference_id, null,
         $1::timestamptz, t.prev_hash, t.hash
       from unnest($2::uuid[], $3::uuid[], $4::int[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[])
         as t(id, account_id, seq, amount, balance_after, reference_id, prev_hash, hash)
       returning 1
     ), a as (
       update accounts set balance = v.balance, held = accounts.held - v.released, ledger_seq = v.seq,
         ledger_head = v.head
       from unnest($10::uuid[], $11::bigint[], $12::bigint[], $13::int[], $14::text[])
         as v(id, balance, released, seq, head)
       where accounts.id = v.id
       returning 1
     )${
       withKeys
         ? `, k as (
       update api_keys set held = api_keys.held - v.released, spent = api_keys.spent + v.spent
       from unnest($26::uuid[], $27::bigint[], $28::bigint[]) as v(id, released, spent)
       where api_keys.id = v.id
       returning 1
     )`
         : ''
     }, u as (
       update usage_records set status = v.status, prompt_tokens = v.prompt_tokens,
         completion_tokens = v.completion_tokens, provider_cost = v.provider_cost, user_price = v.user_price,
         latency_ms = v.latency_ms, flags = coalesce(string_to_array(nullif(v.flags, ''), ','), '{}'),
         error = v.error, outcome = null, settled_at = $1::timestamptz
       from unnest($15::uuid[], $16::text[], $17::int[], $18::int[], $19::bigint[], $20::bigint[], $21::int[],
         $22::text[], $23::text[])
         as v(id, status, prompt_tokens, completion_tokens, provider_cost, user_price, latency_ms, flags, error)
       where usage_records.id = v.id
       returning 1
     )
     select case when (select count(*) from e) = $24::int and (select count(*) from u) = $25::int then 1
       -- a failed cast is how plain SQL raises: the batch is rolled back, never half-written
       else ('settlement batch wrote ' || (select count(*) from e) || ' entries and ' || (select count(*) from u)
         || ' usage rows instead of ' || $24::int || ' and ' || $25::int)::int end as ok`,
  };
}
const WRITE_SETTLEMENTS = writeSettlements(false);
const WRITE_SETTLEMENTS_WITH_KEYS = writeSettlements(true);

/**
 * Settles many charged calls in ONE transaction of two statements (group commit): under load the
 * settlements that queued up while the previous batch ran go together, so the cost per settlement falls
 * as load rises, on a hot account too (its row is locked once per batch, its entries chained in order).
 *
 * 1. The guarded transition of every record (HELD/UNSETTLED only, so none is settled twice) and the lock
 *    of their accounts, in account id order (the order crediting locks them in: no deadlock).
 * 2. All ledger entries, balances, key totals and usage rows, set-based (unnest).
 * Records already settled are left out of the result.
 */
export async function applyChargedSettlements(
  em: Em,
  items: readonly PendingSettlement[],
): Promise<Map<string, SettleResult>> {
  const results = new Map<string, SettleResult>();
  if (items.length === 0) return results;
  for (const item of items) {
    if (item.settlement.userPrice <= 0n) throw new RangeError(`usage ${item.usageId}: no charge to settle`);
  }
  return hotSql(em).twoSteps<LockedRecord, { ok: number }, Map<string, SettleResult>>({
    first: { statement: LOCK_FOR_SETTLEMENT, values: [items.map((item) => item.usageId)] },
    between: (rows) => {
      if (rows.length === 0) return results;
      const byId = new Map(rows.map((row) => [row.id, row]));
      const now = new Date();
      const accounts = new Map<
        string,
        { balance: bigint; seq: number; head: string | null; released: bigint }
      >();
      const keys = new Map<string, { released: bigint; spent: bigint }>();
      const entries: {
        id: string;
        accountId: string;
        seq: number;
        amount: bigint;
        balanceAfter: bigint;
        usageId: string;
        prevHash: string | null;
        hash: string;
      }[] = [];
      const settled: PendingSettlement[] = [];
      // In the callers' order, so each account's entries follow the order its calls were settled in.
      for (const item of items) {
        const row = byId.get(item.usageId);
        if (!row) continue;
        byId.delete(item.usageId); // a usage id given twice is settled once
        const hold = BigInt(row.hold_amount);
        const price = item.settlement.userPrice;
        if (price > hold)
          throw new RangeError(`usage ${item.usageId}: price ${price} exceeds its hold ${hold}`);
        let account = accounts.get(row.account_id);
        if (!account) {
          account = {
            balance: BigInt(row.balance),
            seq: row.ledger_seq,
            head: row.ledger_head,
            released: 0n,
          };
          accounts.set(row.account_id, account);
        }
        const fields = {
          accountId: row.account_id,
          seq: account.seq + 1,
          amount: -price,
          balanceAfter: account.balance - price,
          reason: 'USAGE',
          referenceId: item.usageId,
          createdAt: now,
        };
        const hash = ledgerEntryHash(account.head, fields);
        entries.push({ id: randomUUID(), usageId: item.usageId, prevHash: account.head, hash, ...fields });
        account.balance = fields.balanceAfter;
        account.seq = fields.seq;
        account.head = hash;
        account.released += hold;
        if (row.api_key_id) {
          const key = keys.get(row.api_key_id) ?? { released: 0n, spent: 0n };
          key.released += hold;
          key.spent += price;
          keys.set(row.api_key_id, key);
        }
        settled.push(item);
        results.set(item.usageId, {
          settled: true,
          ledgerEntryId: entries.at(-1)?.id ?? null,
          accountId: row.account_id,
        });
      }
      const accountList = [...accounts.entries()];
      const keyList = [...keys.entries()];
      return {
        statement: keyList.length > 0 ? WRITE_SETTLEMENTS_WITH_KEYS : WRITE_SETTLEMENTS,
        values: [
          now.toISOString(),
          entries.map((e) => e.id),
          entries.map((e) => e.accountId),
          entries.map((e) => e.seq),
          entries.map((e) => e.amount.toString()),
          entries.map((e) => e.balanceAfter.toString()),
          entries.map((e) => e.usageId),
          entries.map((e) => e.prevHash),
          entries.map((e) => e.hash),
          accountList.map(([id]) => id),
          accountList.map(([, a]) => a.balance.toString()),
          accountList.map(([, a]) => a.released.toString()),
          accountList.map(([, a]) => a.seq),
          accountList.map(([, a]) => a.head),
          settled.map((i) => i.usageId),
          settled.map((i) => i.settlement.status),
          settled.map((i) => i.settlement.promptTokens),
          settled.map((i) => i.settlement.completionTokens),
          settled.map((i) => i.settlement.providerCost?.toString() ?? null),
          settled.map((i) => i.settlement.userPrice.toString()),
          settled.map((i) => (i.settlement.latencyMs === null ? null : Math.round(i.settlement.latencyMs))),
          settled.map((i) => i.settlement.flags.join(',')),
          settled.map((i) => i.settlement.error),
          entries.length,
          settled.length,
          ...(keyList.length > 0
            ? [
                keyList.map(([id]) => id),
                keyList.map(([, k]) => k.released.toString()),
                keyList.map(([, k]) => k.spent.toString()),
              ]
            : []),
        ],
        // The statement itself fails (and so rolls back) unless it wrote every entry and row.
        done: () => results,
      };
    },
  });
}

const SETTLE_WITHOUT_CHARGE: Statement = {
  name: 'cm_settle_without_charge',
  text: `with r as (
     update usage_records set status = $1, prompt_tokens = $2, completion_tokens = $3,
       provider_cost = $4::bigint, user_price = $5::bigint, latency_ms = $6,
       flags = coalesce(string_to_array(nullif($7, ''), ','), '{}'), error = $8, outcome = null,
       settled_at = $9::timestamptz
     where id = $10::uuid and status in ('HELD', 'UNSETTLED')
     returning account_id, api_key_id, hold_amount
   ), a as (
     update accounts set held = accounts.held - r.hold_amount from r where accounts.id = r.account_id returning 1
   ), k as (
     update api_keys set held = api_keys.held - r.hold_amount from r where api_keys.id = r.api_key_id returning 1
   )
   select r.account_id from r`,
};

/** Release the hold and close the record, with no ledger entry: one statement. */
async function settleWithoutCharge(em: Em, usageId: string, s: Settlement): Promise<SettleResult> {
  const rows = await hotSql(em).query<{ account_id: string }>(SETTLE_WITHOUT_CHARGE, [
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
  ]);
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

/**
 * Holds whose call never finished (the process died mid-call): still HELD past their expiry. `exclude`:
 * the caller's own in-flight records, never released under a call that is still running (their
 * expiry is refreshed by `extendHolds`, this is the second line of defence).
 */
export async function findExpiredHolds(
  em: Em,
  now: Date,
  limit: number,
  exclude: readonly string[] = [],
): Promise<string[]> {
  const rows = await hotSql(em).query<{ id: string }>(FIND_EXPIRED_HOLDS, [
    now.toISOString(),
    limit,
    exclude,
  ]);
  return rows.map((row) => row.id);
}

const FIND_EXPIRED_HOLDS: Statement = {
  name: 'cm_find_expired_holds',
  text: `select id from usage_records
   where status = 'HELD' and hold_expires_at < $1::timestamptz and not (id = any($3::uuid[]))
   order by hold_expires_at limit $2`,
};

/**
 * The heartbeat of in-flight calls: moves the expiry of these HELD records to `until`, so that no
 * process (this one or another replica) takes a call that is still running for an abandoned one. A
 * process that dies stops beating, and its holds expire one TTL later. Returns how many were extended.
 */
export async function extendHolds(em: Em, usageIds: readonly string[], until: Date): Promise<number> {
  if (usageIds.length === 0) return 0;
  const rows = await hotSql(em).query<{ n: number }>(EXTEND_HOLDS, [usageIds, until.toISOString()]);
  return rows[0]?.n ?? 0;
}

const EXTEND_HOLDS: Statement = {
  name: 'cm_extend_holds',
  text: `with x as (
     update usage_records set hold_expires_at = greatest(hold_expires_at, $2::timestamptz)
     where id = any($1::uuid[]) and status = 'HELD'
     returning 1
   )
   select count(*)::int as n from x`,
};
