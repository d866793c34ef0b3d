/**
 * The hot path's SQL: placing a hold and settling a call. Raw statements (not ORM entities) because each
 * metered call pays for them twice and the ORM's unit of work costs a millisecond or more per call:
 * - the hold is ONE statement (an implicit transaction): account hold, key hold, durable record; it
 *   returns the account's ledger head;
 * - a settlement with a charge is ONE guarded statement when this process knows the account's ledger head
 *   (from the hold, or its own last settlement): ledger entry + balance + key + usage row, written only
 *   if the ledger is still at that head and the record still open. Else, or when the guard fails, a short
 *   transaction of two statements: lock (record, then account), then the same writes. A settlement
 *   without a charge is one statement.
 * Lock order is always usage record -> account -> api key, each in id order, so concurrent settlements
 * cannot deadlock.
 *
 * The USAGE ledger entry keeps the ledger's invariants exactly as `appendLedgerEntry` does: the account
 * row is locked, seq + 1, balance_after = balance + amount (>= 0, also a CHECK), and the entry is
 * chained by `chainLedgerEntry` from @chainmeter/schema, the one implementation of the chain and its hash.
 * Each takes a `SqlRunner` executor (db/sql.ts): on PostgreSQL, statements prepared once per connection
 * on the ORM's pg pool, values bound as parameters; on PGlite or inside a caller's transaction, through
 * the EntityManager. No entity is loaded: nothing touches an identity map.
 */
import { randomUUID } from 'node:crypto';
import {
  type ChainedLedgerEntry,
  chainLedgerEntry,
  type LedgerHead,
  type MicroUsd,
} from '@chainmeter/schema';
import { LRUCache } from 'lru-cache';
import type { SqlRunner, Statement } from '../../db/sql.ts';
import { unauthenticated } from '../../errors.ts';
import { liveApiKeySql } from '../apikeys/apikeys.entity.ts';
import { type ApiKeyCheck, lastUsedBefore } from '../apikeys/apikeys.service.ts';
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
     update api_keys set held = held + $1::bigint,
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

export interface PlacedHold {
  usageId: string;
  /** The account's ledger head as the hold saw it (see {@link LedgerHeads}). */
  head: LedgerHead;
}

/**
 * Reserves `hold` on the account (`balance - held - debt >= hold`, one guarded update: what a deep reorg
 * left owed is not spendable) and on the API key (its CHECK refuses `spent + held > spend_limit`), and
 * writes the durable record, all in one statement: it
 * either does all three or nothing. With a `keyCheck`, the same statement first checks the key is live
 * (else nothing is held and UNAUTHENTICATED is thrown) and refreshes its throttled `last_used_at`.
 * Throws {@link InsufficientCreditsError} when the hold does not fit.
 */
export async function placeHold(sql: SqlRunner, params: PlaceHoldParameters): Promise<PlacedHold> {
  const usageId = randomUUID();
  const hold = params.hold.toString();
  let rows: {
    key_live: boolean;
    held: boolean;
    balance: string | null;
    ledger_seq: number | null;
    ledger_head: string | null;
  }[];
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
    if (String((error as Error).message).includes('api_keys_within_spend_limit')) {
      if (params.keyCheck) params.keyCheck.verified = true;
      throw new InsufficientCreditsError('apiKey', params.hold);
    }
    throw error;
  }
  const row = rows[0];
  if (!row?.key_live) throw unauthenticated('This API key is revoked, expired or unknown');
  if (params.keyCheck) params.keyCheck.verified = true;
  if (!row.held || row.ledger_seq === null || row.balance === null) {
    throw new InsufficientCreditsError('account', params.hold);
  }
  return { usageId, head: { seq: row.ledger_seq, hash: row.ledger_head, balance: BigInt(row.balance) } };
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

export interface SettleOptions {
  /**
   * Settle only a hold still HELD and expired at this time (the expiry sweep), checked in the statement that
   * locks or writes the record: a hold whose heartbeat (a live replica's) extended it after the sweep read
   * it is left alone, never released or billed under its running call.
   */
  expiredAt?: Date;
}

/**
 * Settles a held (or UNSETTLED) call exactly once: the guarded transition out of HELD/UNSETTLED locks
 * the record, so a second settlement (a retry racing the first, another replica) finds nothing to do.
 * With a charge: release the hold, append the USAGE ledger entry (negative, reference = usage id), move
 * the balance, raise the key's `spent`, fill in the usage row, in one transaction.
 */
export async function applySettlement(
  sql: SqlRunner,
  usageId: string,
  settlement: Settlement,
  options: SettleOptions = {},
): Promise<SettleResult> {
  if (settlement.userPrice === 0n) return settleWithoutCharge(sql, usageId, settlement, options);
  const results = await applyChargedSettlements(sql, [{ usageId, settlement }], undefined, options);
  return results.get(usageId) ?? { settled: false, reason: 'already settled' };
}

/**
 * The newest ledger head this process has seen per account, from its own holds (which return the
 * account's head) and settlements (which write it). With it a settlement is ONE statement guarded by
 * `ledger_seq = <the seq seen>` instead of a lock and a second round trip: when another writer (a deposit,
 * another replica) moved the ledger in between, the guard fails, nothing is written, and the settlement
 * takes the locking path. So a stale head costs a retry, never a wrong entry. Bounded: the least recently
 * seen accounts are forgotten first.
 */
export class LedgerHeads {
  readonly #heads: LRUCache<string, LedgerHead>;
  /** Batches written in one guarded statement, and batches whose guard failed (a head was stale). */
  readonly outcomes = { guarded: 0, stale: 0 };

  constructor(capacity = 10_000) {
    this.#heads = new LRUCache({ max: capacity });
  }

  get(accountId: string): LedgerHead | undefined {
    return this.#heads.get(accountId);
  }

  /** Keeps `head` unless a newer one (higher seq) is already known. */
  observe(accountId: string, head: LedgerHead): void {
    const known = this.#heads.get(accountId);
    if (!known || known.seq <= head.seq) this.#heads.set(accountId, head);
  }

  forget(accountId: string): void {
    this.#heads.delete(accountId);
  }
}

export interface PendingSettlement {
  usageId: string;
  settlement: Settlement;
  /** The record as its hold wrote it, when this process placed it: allows the one-statement path. */
  record?: HeldRecord;
}

/** A usage record's fields that settling needs: its account, its key and the amount held. */
export interface HeldRecord {
  accountId: string;
  apiKeyId: string | null;
  hold: bigint;
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

const LOCK_FOR_SETTLEMENT: Statement = {
  name: 'cm_lock_for_settlement',
  text: `with r as (
     update usage_records set settle_attempts = settle_attempts + 1
     where id in (select id from usage_records where id = any($1::uuid[]) and status in ('HELD', 'UNSETTLED')
       and ($2::timestamptz is null or (status = 'HELD' and hold_expires_at < $2::timestamptz))
       order by id for update)
     returning id, account_id, api_key_id, hold_amount
   ), l as (
     select id, balance, ledger_seq, ledger_head from accounts
     where id in (select account_id from r) order by id for update
   )
   select r.id, r.account_id, r.api_key_id, r.hold_amount::text as hold_amount, l.balance::text as balance,
     l.ledger_seq, l.ledger_head
   from r join l on l.id = r.account_id`,
};

/**
 * Every write of a batch of charged settlements, set-based (unnest), behind a guard: the batch's usage
 * records must still be open (HELD/UNSETTLED) with the account, key and hold it was computed from, and each
 * account's ledger must still be at the seq it chains from. The guard locks the rows it checks, in id
 * order, records first, then accounts (the order of LOCK_FOR_SETTLEMENT and of crediting: no deadlock),
 * so what it saw stays true until the commit. If it fails, nothing is written and the statement answers
 * `applied = 0` (the caller takes the locking path); if it passes, every row of every part is written,
 * or the statement fails and with it the whole transaction: a batch is never half-written. After
 * LOCK_FOR_SETTLEMENT, in the same transaction, the guard holds by construction.
 */
const WRITE_SETTLEMENTS: Statement = {
  name: 'cm_write_settlements',
  text: `with v as materialized (
     select * from unnest($16::uuid[], $17::text[], $18::int[], $19::int[], $20::bigint[], $21::bigint[],
       $22::int[], $23::text[], $24::text[], $25::uuid[], $26::uuid[], $27::bigint[])
       as v(id, status, prompt_tokens, completion_tokens, provider_cost, user_price, latency_ms, flags, error,
         account_id, api_key_id, hold_amount)
   ), locked_records as materialized (
     select id, account_id, api_key_id, hold_amount from usage_records
     where id = any($16::uuid[]) and status in ('HELD', 'UNSETTLED')
     order by id for update
   ), locked_accounts as materialized (
     select id, ledger_seq from accounts where id = any($10::uuid[]) order by id for update
   ), guard as materialized (
     select
       (select count(*) from locked_records r join v on v.id = r.id and v.account_id = r.account_id
          and v.hold_amount = r.hold_amount and v.api_key_id is not distinct from r.api_key_id)
         = cardinality($16::uuid[])
       and (select count(*) from locked_accounts l join unnest($10::uuid[], $15::int[]) as f(id, from_seq)
          on f.id = l.id and f.from_seq = l.ledger_seq)
         = cardinality($10::uuid[]) as ok
   ), u as (
     update usage_records set status = v.status, prompt_tokens = v.prompt_tokens,
       completion_tokens = v.completion_tokens, provider_cost = v.provider_cost, user_price = v.user_price,
       latency_ms = v.latency_ms, flags = coalesce(string_to_array(nullif(v.flags, ''), ','), '{}'),
       error = v.error, outcome = null, settled_at = $1::timestamptz,
       settle_attempts = usage_records.settle_attempts + $29::int
     from v
     where usage_records.id = v.id and (select ok from guard)
     returning 1
   ), a as (
     update accounts set balance = v.balance, held = accounts.held - v.released, ledger_seq = v.seq,
       ledger_head = v.head
     from unnest($10::uuid[], $11::bigint[], $12::bigint[], $13::int[], $14::text[])
       as v(id, balance, released, seq, head)
     where accounts.id = v.id and (select ok from guard)
     returning 1
   ), e as (
     insert into ledger_entries (id, account_id, seq, amount, balance_after, reason, reference_id, deposit_id,
       created_at, prev_hash, hash)
     select t.id, t.account_id, t.seq, t.amount, t.balance_after, 'USAGE', t.reference_id, null,
       $1::timestamptz, t.prev_hash, t.hash
     from unnest($2::uuid[], $3::uuid[], $4::int[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[])
       as t(id, account_id, seq, amount, balance_after, reference_id, prev_hash, hash)
     where (select ok from guard)
     returning 1
   ), k as (
     update api_keys set held = api_keys.held - v.released, spent = api_keys.spent + v.spent
     from unnest($28::uuid[], $30::bigint[], $31::bigint[]) as v(id, released, spent)
     where api_keys.id = v.id and (select ok from guard)
     returning 1
   ), written as (
     select (select ok from guard) as ok, (select count(*) from u) as u, (select count(*) from a) as a,
       (select count(*) from e) as e, (select count(*) from k) as k
   )
   select case
     when not ok then 0
     when u = cardinality($16::uuid[]) and a = cardinality($10::uuid[]) and e = cardinality($2::uuid[])
       and k = cardinality($28::uuid[]) then 1
     -- never, with the guard passed: a failed cast is how plain SQL raises, so the batch is rolled back
     else ('settlement batch half-written: ' || u || '/' || cardinality($16::uuid[]) || ' usage rows, ' || a
       || '/' || cardinality($10::uuid[]) || ' accounts, ' || e || '/' || cardinality($2::uuid[])
       || ' entries, ' || k || '/' || cardinality($28::uuid[]) || ' keys')::int end as applied
   from written`,
};

/** The writes of one batch, computed from each record and its account's head. */
interface SettlementPlan {
  values: unknown[];
  results: Map<string, SettleResult>;
  heads: Map<string, LedgerHead>;
}

/**
 * Chains the batch's ledger entries in the callers' order (so each account's entries follow the order its
 * calls were settled in), from each account's head. Records `recordOf` does not know are left out (already
 * settled); a usage id given twice is settled once.
 */
function planSettlements(
  items: readonly PendingSettlement[],
  recordOf: (usageId: string) => HeldRecord | undefined,
  headOf: (accountId: string) => LedgerHead,
  attemptIncrement: 0 | 1,
): SettlementPlan {
  const now = new Date();
  const results = new Map<string, SettleResult>();
  const accounts = new Map<string, { from: number; head: LedgerHead; released: bigint }>();
  const keys = new Map<string, { released: bigint; spent: bigint }>();
  const entries: (ChainedLedgerEntry & { id: string; usageId: string })[] = [];
  const settled: (PendingSettlement & { record: HeldRecord })[] = [];
  for (const item of items) {
    const record = results.has(item.usageId) ? undefined : recordOf(item.usageId);
    if (!record) continue;
    const price = item.settlement.userPrice;
    if (price > record.hold) {
      throw new RangeError(`usage ${item.usageId}: price ${price} exceeds its hold ${record.hold}`);
    }
    let account = accounts.get(record.accountId);
    if (!account) {
      const head = headOf(record.accountId);
      account = { from: head.seq, head, released: 0n };
      accounts.set(record.accountId, account);
    }
    const chained = chainLedgerEntry(account.head, {
      accountId: record.accountId,
      amount: -price,
      reason: 'USAGE',
      referenceId: item.usageId,
      createdAt: now,
    });
    const entryId = randomUUID();
    entries.push({ ...chained.entry, id: entryId, usageId: item.usageId });
    account.head = chained.head;
    account.released += record.hold;
    if (record.apiKeyId) {
      const key = keys.get(record.apiKeyId) ?? { released: 0n, spent: 0n };
      key.released += record.hold;
      key.spent += price;
      keys.set(record.apiKeyId, key);
    }
    settled.push({ ...item, record });
    results.set(item.usageId, { settled: true, ledgerEntryId: entryId, accountId: record.accountId });
  }
  // In id order, the order rows are locked in.
  const byId = <T>(list: T[], id: (item: T) => string) => list.sort((x, y) => (id(x) < id(y) ? -1 : 1));
  const accountList = byId([...accounts.entries()], ([id]) => id);
  const keyList = byId([...keys.entries()], ([id]) => id);
  byId(settled, (item) => item.usageId);
  const s = settled.map((item) => item.settlement);
  return {
    results,
    heads: new Map(accountList.map(([id, account]) => [id, account.head])),
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
      accountList.map(([, a]) => a.head.balance.toString()),
      accountList.map(([, a]) => a.released.toString()),
      accountList.map(([, a]) => a.head.seq),
      accountList.map(([, a]) => a.head.hash),
      accountList.map(([, a]) => a.from),
      settled.map((item) => item.usageId),
      s.map((x) => x.status),
      s.map((x) => x.promptTokens),
      s.map((x) => x.completionTokens),
      s.map((x) => x.providerCost?.toString() ?? null),
      s.map((x) => x.userPrice.toString()),
      s.map((x) => (x.latencyMs === null ? null : Math.round(x.latencyMs))),
      s.map((x) => x.flags.join(',')),
      s.map((x) => x.error),
      settled.map((item) => item.record.accountId),
      settled.map((item) => item.record.apiKeyId),
      settled.map((item) => item.record.hold.toString()),
      keyList.map(([id]) => id),
      attemptIncrement,
      keyList.map(([, k]) => k.released.toString()),
      keyList.map(([, k]) => k.spent.toString()),
    ],
  };
}

/**
 * Settles many charged calls at once (group commit: under load the settlements that queued up while
 * the previous batch ran go together, so the cost per settlement falls as load rises, on a hot account
 * too). Records already settled are left out of the result.
 *
 * - One statement, one round trip, when `heads` knows every account of the batch and every item carries
 *   the record its hold wrote: WRITE_SETTLEMENTS alone, guarded by each account's seq and each record's
 *   state (see {@link LedgerHeads}).
 * - Otherwise, or when that guard fails: a transaction of two statements. LOCK_FOR_SETTLEMENT locks the
 *   records still HELD/UNSETTLED (so none is settled twice) and their accounts, in id order (the order
 *   crediting locks them in: no deadlock), and reads the heads; then WRITE_SETTLEMENTS from those.
 * Either way `heads` learns the heads written.
 */
export async function applyChargedSettlements(
  sql: SqlRunner,
  items: readonly PendingSettlement[],
  heads?: LedgerHeads,
  options: SettleOptions = {},
): Promise<Map<string, SettleResult>> {
  if (items.length === 0) return new Map();
  for (const item of items) {
    if (item.settlement.userPrice <= 0n) throw new RangeError(`usage ${item.usageId}: no charge to settle`);
  }
  const learn = (plan: SettlementPlan) => {
    for (const [accountId, head] of plan.heads) heads?.observe(accountId, head);
    return plan.results;
  };
  const records = new Map(items.map((item) => [item.usageId, item.record]));
  const known =
    heads &&
    options.expiredAt === undefined &&
    items.every((item) => item.record && heads.get(item.record.accountId) !== undefined);
  if (known) {
    const plan = planSettlements(
      items,
      (usageId) => records.get(usageId),
      (accountId) => heads.get(accountId) as LedgerHead,
      1,
    );
    const [written] = await sql.query<{ applied: number }>(WRITE_SETTLEMENTS, plan.values);
    if (written?.applied === 1) {
      heads.outcomes.guarded++;
      return learn(plan);
    }
    // A ledger moved on (or a record was settled elsewhere): nothing was written. Lock and re-read.
    heads.outcomes.stale++;
    for (const accountId of plan.heads.keys()) heads.forget(accountId);
  }
  return sql.inTwoRoundTrips<LockedRecord, { applied: number }, Map<string, SettleResult>>({
    first: {
      statement: LOCK_FOR_SETTLEMENT,
      values: [items.map((item) => item.usageId), options.expiredAt?.toISOString() ?? null],
    },
    between: (rows) => {
      if (rows.length === 0) return new Map();
      const locked = new Map(rows.map((row) => [row.id, row]));
      const lockedHeads = new Map(
        rows.map((row) => [
          row.account_id,
          { seq: row.ledger_seq, hash: row.ledger_head, balance: BigInt(row.balance) },
        ]),
      );
      const plan = planSettlements(
        items,
        (usageId) => {
          const row = locked.get(usageId);
          return row
            ? { accountId: row.account_id, apiKeyId: row.api_key_id, hold: BigInt(row.hold_amount) }
            : undefined;
        },
        (accountId) => lockedHeads.get(accountId) as LedgerHead,
        0,
      );
      return {
        statement: WRITE_SETTLEMENTS,
        values: plan.values,
        done: ([written]) => {
          // The rows are locked by this transaction: the guard cannot fail, unless something is broken.
          if (written?.applied !== 1) throw new Error('settlement guard failed on locked rows');
          return learn(plan);
        },
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
       and ($11::timestamptz is null or (status = 'HELD' and hold_expires_at < $11::timestamptz))
     returning account_id, api_key_id, hold_amount
   ), a as (
     update accounts set held = accounts.held - r.hold_amount from r where accounts.id = r.account_id returning 1
   ), k as (
     update api_keys set held = api_keys.held - r.hold_amount from r where api_keys.id = r.api_key_id returning 1
   )
   select r.account_id from r`,
};

/** Release the hold and close the record, with no ledger entry: one statement. */
async function settleWithoutCharge(
  sql: SqlRunner,
  usageId: string,
  s: Settlement,
  options: SettleOptions,
): Promise<SettleResult> {
  const rows = await sql.query<{ account_id: string }>(SETTLE_WITHOUT_CHARGE, [
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
  const row = rows[0];
  if (!row) return { settled: false, reason: 'already settled' };
  return { settled: true, ledgerEntryId: null, accountId: row.account_id };
}

/**
 * Keeps what a failed settlement must still do on the record (status UNSETTLED), so a retry loop (this
 * process or any replica, also after a restart) settles exactly that. The hold stays in place meanwhile.
 */
export async function markUnsettled(
  sql: SqlRunner,
  usageId: string,
  settlement: Settlement,
  error: string,
): Promise<boolean> {
  const rows = await sql.query<{ id: string }>(MARK_UNSETTLED, [
    JSON.stringify(settlementToJson(settlement)),
    error.slice(0, 500),
    usageId,
  ]);
  return rows.length === 1;
}

const MARK_UNSETTLED: Statement = {
  name: 'cm_mark_unsettled',
  text: `update usage_records set status = 'UNSETTLED', outcome = $1::jsonb, error = $2
   where id = $3::uuid and status in ('HELD', 'UNSETTLED') returning id`,
};

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
  sql: SqlRunner,
  limit: number,
): Promise<{ id: string; settlement: Settlement }[]> {
  const rows = await sql.query<{ id: string; outcome: Record<string, unknown> | string }>(FIND_UNSETTLED, [
    limit,
  ]);
  return rows.map((row) => ({
    id: row.id,
    settlement: settlementFromJson(typeof row.outcome === 'string' ? JSON.parse(row.outcome) : row.outcome),
  }));
}

const FIND_UNSETTLED: Statement = {
  name: 'cm_find_unsettled',
  text: `select id, outcome from usage_records where status = 'UNSETTLED' and outcome is not null
   order by hold_expires_at limit $1`,
};

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
 * Holds whose call never finished (the process died mid-call): still HELD past their expiry. `exclude`:
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
  const rows = await sql.query<{
    id: string;
    model: string;
    hold_amount: string;
    streamed: boolean;
    generated_bytes: string;
    prompt_tokens_bound: number | null;
    created_at: Date | string;
    progress_at: Date | string | null;
  }>(FIND_EXPIRED_HOLDS, [now.toISOString(), limit, exclude]);
  return rows.map((row) => ({
    id: row.id,
    model: row.model,
    hold: BigInt(row.hold_amount) as MicroUsd,
    streamed: row.streamed,
    generatedBytes: Number(row.generated_bytes),
    promptTokensBound: row.prompt_tokens_bound,
    createdAt: new Date(row.created_at),
    progressAt: row.progress_at === null ? null : new Date(row.progress_at),
  }));
}

const FIND_EXPIRED_HOLDS: Statement = {
  name: 'cm_find_expired_holds',
  text: `select id, model, hold_amount::text as hold_amount, streamed, generated_bytes::text as generated_bytes,
     prompt_tokens_bound, created_at, progress_at
   from usage_records
   where status = 'HELD' and hold_expires_at < $1::timestamptz and not (id = any($3::uuid[]))
   order by hold_expires_at limit $2`,
};

/** How far one in-flight stream has got (see the stream-progress migration). */
export interface StreamProgress {
  usageId: string;
  generatedBytes: number;
  promptTokensBound: number;
}

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
  const rows = await sql.query<{ n: number }>(EXTEND_HOLDS, [
    usageIds,
    until.toISOString(),
    progress.map((p) => p.usageId),
    progress.map((p) => p.generatedBytes),
    progress.map((p) => p.promptTokensBound),
    new Date().toISOString(),
  ]);
  return rows[0]?.n ?? 0;
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
