/**
 * The one statement that writes a batch of charged settlements, and the plan that fills it: its values are
 * named columns (db/named-parameters.ts), the ledger's own (entries and heads, from `ledger.store.ts`)
 * beside the usage rows', the accounts' and the keys'.
 */
import type { LedgerHead } from '@chainmeter/schema';
import { namedParameters } from '../../db/named-parameters.ts';
import type { Statement } from '../../db/sql.ts';
import {
  chainLedgerBatch,
  headsInIdOrder,
  insertLedgerEntriesSql,
  LEDGER_ENTRY_PARAMETERS,
  LEDGER_HEAD_PARAMETERS,
  type LedgerEntryInput,
  ledgerEntryValues,
  ledgerHeadAssignmentsSql,
  ledgerHeadEventsSql,
  ledgerHeadReturningSql,
  ledgerHeadsUnnestSql,
  ledgerHeadValues,
} from '../ledger/ledger.store.ts';
import type { Settlement, SettleResult } from './settlement.ts';

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

const p = namedParameters([
  ...LEDGER_ENTRY_PARAMETERS,
  ...LEDGER_HEAD_PARAMETERS,
  /** Per account (in the heads' order): the seq its entries chain from (the guard), and what it releases. */
  'headFromSeqs',
  'headReleased',
  /** Per usage record, in id order. */
  'usageIds',
  'usageStatuses',
  'usagePromptTokens',
  'usageCompletionTokens',
  'usageProviderCosts',
  'usageUserPrices',
  'usageLatenciesMs',
  'usageFlags',
  'usageErrors',
  'usageAccountIds',
  'usageApiKeyIds',
  'usageHolds',
  'settledAt',
  /** 1 when no LOCK_FOR_SETTLEMENT counted this attempt already. */
  'attemptIncrement',
  /** Per API key, in id order. */
  'keyIds',
  'keyReleased',
  'keySpent',
]);
const { $ } = p;

/**
 * Every write of a batch of charged settlements, set-based (unnest), behind a guard: the batch's usage
 * records must still be open (HELD/UNSETTLED) with the account, key and hold it was computed from, and each
 * account's ledger must still be at the seq it chains from. The guard locks the rows it checks, in id
 * order, records first, then accounts (the order of LOCK_FOR_SETTLEMENT and of crediting: no deadlock),
 * so what it saw stays true until the commit. If it fails, nothing is written and the statement answers
 * `applied = 0` (the caller takes the locking path); if it passes, every row of every part is written,
 * or the statement fails and with it the whole transaction: a batch is never half-written. After
 * LOCK_FOR_SETTLEMENT, in the same transaction, the guard holds by construction. A key's `period_spent` grows
 * with its `spent`: a call held before a budget period ended and settled after counts in whichever period
 * the key is in when it settles (its hold counted against that period's limit meanwhile).
 *
 * Every table is reached through its primary key (`id = any(<the batch's ids>)`), and the records are
 * locked by id alone, their state checked by the guard: with `status in ('HELD', 'UNSETTLED')` in the lock's
 * WHERE, PostgreSQL read them through `usage_records_open_idx`, the partial index of open records, which
 * keeps an entry for every call settled since the table's last VACUUM, so each settlement scanned all of
 * them; and its generic plan, made on a connection's first run while the tables were small, joined the
 * whole of `usage_records` (a sequential scan) for the rest of the connection's life.
 */
export const WRITE_SETTLEMENTS: Statement = {
  name: 'cm_write_settlements',
  text: `with v as materialized (
     select * from unnest(${$.usageIds}::uuid[], ${$.usageStatuses}::text[], ${$.usagePromptTokens}::int[],
       ${$.usageCompletionTokens}::int[], ${$.usageProviderCosts}::bigint[], ${$.usageUserPrices}::bigint[],
       ${$.usageLatenciesMs}::int[], ${$.usageFlags}::text[], ${$.usageErrors}::text[], ${$.usageAccountIds}::uuid[],
       ${$.usageApiKeyIds}::uuid[], ${$.usageHolds}::bigint[])
       as v(id, status, prompt_tokens, completion_tokens, provider_cost, user_price, latency_ms, flags, error,
         account_id, api_key_id, hold_amount)
   ), locked_records as materialized (
     select id, status, account_id, api_key_id, hold_amount from usage_records
     where id = any(${$.usageIds}::uuid[])
     order by id for update
   ), locked_accounts as materialized (
     select id, ledger_seq from accounts where id = any(${$.headAccountIds}::uuid[]) order by id for update
   ), guard as materialized (
     select
       (select count(*) from locked_records r join v on v.id = r.id and r.status in ('HELD', 'UNSETTLED')
          and v.account_id = r.account_id and v.hold_amount = r.hold_amount
          and v.api_key_id is not distinct from r.api_key_id)
         = cardinality(${$.usageIds}::uuid[])
       and (select count(*) from locked_accounts l
          join unnest(${$.headAccountIds}::uuid[], ${$.headFromSeqs}::int[]) as f(id, from_seq)
          on f.id = l.id and f.from_seq = l.ledger_seq)
         = cardinality(${$.headAccountIds}::uuid[]) as ok
   ), u as (
     update usage_records set status = v.status, prompt_tokens = v.prompt_tokens,
       completion_tokens = v.completion_tokens, provider_cost = v.provider_cost, user_price = v.user_price,
       latency_ms = v.latency_ms, flags = coalesce(string_to_array(nullif(v.flags, ''), ','), '{}'),
       error = v.error, outcome = null, settled_at = ${$.settledAt}::timestamptz,
       settle_attempts = usage_records.settle_attempts + ${$.attemptIncrement}::int
     from v
     where usage_records.id = v.id and usage_records.id = any(${$.usageIds}::uuid[]) and (select ok from guard)
     returning 1
   ), a as (
     update accounts set ${ledgerHeadAssignmentsSql('h')}, held = accounts.held - h.released
     from ${ledgerHeadsUnnestSql($, 'h', [{ column: 'released', array: `${$.headReleased}::bigint[]` }])}
     where accounts.id = h.id and accounts.id = any(${$.headAccountIds}::uuid[]) and (select ok from guard)
     returning ${ledgerHeadReturningSql('h')}
   ), alerts as (
     ${ledgerHeadEventsSql('a')}
     returning 1
   ), e as (
     ${insertLedgerEntriesSql($, '(select ok from guard)')}
     returning 1
   ), k as (
     update api_keys set held = api_keys.held - x.released, spent = api_keys.spent + x.spent,
       period_spent = api_keys.period_spent + x.spent
     from unnest(${$.keyIds}::uuid[], ${$.keyReleased}::bigint[], ${$.keySpent}::bigint[]) as x(id, released, spent)
     where api_keys.id = x.id and api_keys.id = any(${$.keyIds}::uuid[]) and (select ok from guard)
     returning 1
   ), written as (
     select (select ok from guard) as ok, (select count(*) from u) as u, (select count(*) from a) as a,
       (select count(*) from e) as e, (select count(*) from k) as k
   )
   select case
     when not ok then 0
     when u = cardinality(${$.usageIds}::uuid[]) and a = cardinality(${$.headAccountIds}::uuid[])
       and e = cardinality(${$.entryIds}::uuid[]) and k = cardinality(${$.keyIds}::uuid[]) then 1
     -- never, with the guard passed: a failed cast is how plain SQL raises, so the batch is rolled back
     else ('settlement batch half-written: ' || u || '/' || cardinality(${$.usageIds}::uuid[]) || ' usage rows, '
       || a || '/' || cardinality(${$.headAccountIds}::uuid[]) || ' accounts, ' || e || '/'
       || cardinality(${$.entryIds}::uuid[]) || ' entries, ' || k || '/' || cardinality(${$.keyIds}::uuid[])
       || ' keys')::int end as applied
   from written`,
};

/** The writes of one batch, computed from each record and its account's head. */
export interface SettlementPlan {
  values: unknown[];
  results: Map<string, SettleResult>;
  heads: Map<string, LedgerHead>;
}

/**
 * Chains the batch's ledger entries in the callers' order (so each account's entries follow the order its
 * calls were settled in), from each account's head. Records `recordOf` does not know are left out (already
 * settled); a usage id given twice is settled once.
 */
export function planSettlements(
  items: readonly PendingSettlement[],
  recordOf: (usageId: string) => HeldRecord | undefined,
  headOf: (accountId: string) => LedgerHead,
  attemptIncrement: 0 | 1,
): SettlementPlan {
  const now = new Date();
  const released = new Map<string, bigint>();
  const keys = new Map<string, { released: bigint; spent: bigint }>();
  const inputs: LedgerEntryInput[] = [];
  const settled = new Map<string, PendingSettlement & { record: HeldRecord }>();
  for (const item of items) {
    const record = settled.has(item.usageId) ? undefined : recordOf(item.usageId);
    if (!record) continue;
    const price = item.settlement.userPrice;
    if (price > record.hold) {
      throw new RangeError(`usage ${item.usageId}: price ${price} exceeds its hold ${record.hold}`);
    }
    inputs.push({ accountId: record.accountId, amount: -price, reason: 'USAGE', referenceId: item.usageId });
    released.set(record.accountId, (released.get(record.accountId) ?? 0n) + record.hold);
    if (record.apiKeyId) {
      const key = keys.get(record.apiKeyId) ?? { released: 0n, spent: 0n };
      key.released += record.hold;
      key.spent += price;
      keys.set(record.apiKeyId, key);
    }
    settled.set(item.usageId, { ...item, record });
  }
  const batch = chainLedgerBatch(headOf, inputs, now);
  const results = new Map<string, SettleResult>();
  for (const entry of batch.entries) {
    results.set(entry.referenceId, { settled: true, ledgerEntryId: entry.id, accountId: entry.accountId });
  }
  // In id order, the order rows are locked in.
  const heads = headsInIdOrder(batch.heads);
  const keyList = [...keys.entries()].sort(([x], [y]) => (x < y ? -1 : 1));
  const records = [...settled.values()].sort((x, y) => (x.usageId < y.usageId ? -1 : 1));
  const s = records.map((item) => item.settlement);
  return {
    results,
    heads: new Map(heads),
    values: p.values({
      ...ledgerEntryValues(batch),
      ...ledgerHeadValues(heads),
      headFromSeqs: heads.map(([id]) => headOf(id).seq),
      headReleased: heads.map(([id]) => (released.get(id) ?? 0n).toString()),
      usageIds: records.map((item) => item.usageId),
      usageStatuses: s.map((x) => x.status),
      usagePromptTokens: s.map((x) => x.promptTokens),
      usageCompletionTokens: s.map((x) => x.completionTokens),
      usageProviderCosts: s.map((x) => x.providerCost?.toString() ?? null),
      usageUserPrices: s.map((x) => x.userPrice.toString()),
      usageLatenciesMs: s.map((x) => (x.latencyMs === null ? null : Math.round(x.latencyMs))),
      usageFlags: s.map((x) => x.flags.join(',')),
      usageErrors: s.map((x) => x.error),
      usageAccountIds: records.map((item) => item.record.accountId),
      usageApiKeyIds: records.map((item) => item.record.apiKeyId),
      usageHolds: records.map((item) => item.record.hold.toString()),
      settledAt: now.toISOString(),
      attemptIncrement,
      keyIds: keyList.map(([id]) => id),
      keyReleased: keyList.map(([, k]) => k.released.toString()),
      keySpent: keyList.map(([, k]) => k.spent.toString()),
    }),
  };
}
