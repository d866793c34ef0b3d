/**
 * The settlement's SQL. A settlement with a charge is ONE guarded statement when this process knows the
 * account's ledger head (from the hold, or its own last settlement): ledger entry + balance + key + usage
 * row, written only if the ledger is still at that head and the record still open. Else, or when the guard
 * fails, a short transaction of two statements: lock (record, then account), then the same writes. A
 * settlement without a charge is one statement (`releaseHold`). Lock order is always usage record ->
 * account -> api key, each in id order, so concurrent settlements cannot deadlock.
 *
 * The USAGE entries are chained and written through `ledger.store.ts` (its fragments, embedded here so the
 * settlement stays one statement), under the same invariants as every other ledger writer.
 */
import type { LedgerHead } from '@chainmeter/schema';
import { z } from 'zod';
import type { SqlRunner, Statement } from '../../db/sql.ts';
import { releaseHold } from './hold.store.ts';
import type { LedgerHeads } from './ledger-heads.ts';
import {
  type Settlement,
  type SettleOptions,
  type SettleResult,
  settlementFromJson,
  settlementToJson,
} from './settlement.ts';
import {
  type HeldRecord,
  type PendingSettlement,
  planSettlements,
  type SettlementPlan,
  WRITE_SETTLEMENTS,
} from './settlement-write.store.ts';

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
  if (settlement.userPrice === 0n) return releaseHold(sql, usageId, settlement, options);
  const results = await applyChargedSettlements(sql, [{ usageId, settlement }], undefined, options);
  return results.get(usageId) ?? { settled: false, reason: 'already settled' };
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

const lockedRecordRow = z.object({
  id: z.string(),
  account_id: z.string(),
  api_key_id: z.string().nullable(),
  hold_amount: z.string(),
  balance: z.string(),
  ledger_seq: z.number(),
  ledger_head: z.string().nullable(),
});

const appliedRow = z.object({ applied: z.number() });

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
    const [written] = await sql.query(WRITE_SETTLEMENTS, plan.values);
    if (appliedRow.parse(written).applied === 1) {
      heads.outcomes.guarded++;
      return learn(plan);
    }
    // A ledger moved on (or a record was settled elsewhere): nothing was written. Lock and re-read.
    heads.outcomes.stale++;
    for (const accountId of plan.heads.keys()) heads.forget(accountId);
  }
  return sql.inTwoRoundTrips<unknown, unknown, Map<string, SettleResult>>({
    first: {
      statement: LOCK_FOR_SETTLEMENT,
      values: [items.map((item) => item.usageId), options.expiredAt?.toISOString() ?? null],
    },
    between: (lockedRows) => {
      if (lockedRows.length === 0) return new Map();
      const rows = lockedRows.map((row) => lockedRecordRow.parse(row));
      const locked = new Map(rows.map((row) => [row.id, row]));
      const lockedHeads = new Map(
        rows.map((row) => [
          row.account_id,
          { seq: row.ledger_seq, hash: row.ledger_head, balance: BigInt(row.balance) },
        ]),
      );
      const plan = planSettlements(
        items,
        (usageId): HeldRecord | undefined => {
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
          if (appliedRow.parse(written).applied !== 1)
            throw new Error('settlement guard failed on locked rows');
          return learn(plan);
        },
      };
    },
  });
}

const MARK_UNSETTLED: Statement = {
  name: 'cm_mark_unsettled',
  text: `update usage_records set status = 'UNSETTLED', outcome = $1::jsonb, error = $2
   where id = $3::uuid and status in ('HELD', 'UNSETTLED') returning id`,
};

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
  const rows = await sql.query(MARK_UNSETTLED, [
    JSON.stringify(settlementToJson(settlement)),
    error.slice(0, 500),
    usageId,
  ]);
  return rows.length === 1;
}

const FIND_UNSETTLED: Statement = {
  name: 'cm_find_unsettled',
  text: `select id, outcome from usage_records where status = 'UNSETTLED' and outcome is not null
   order by hold_expires_at limit $1`,
};

const unsettledRow = z.object({
  id: z.string(),
  // jsonb: parsed by node-postgres, text through some EntityManager paths.
  outcome: z
    .union([z.string().transform((text) => JSON.parse(text) as unknown), z.unknown()])
    .pipe(z.record(z.string(), z.unknown())),
});

/** Settlements left UNSETTLED (by this process or a crashed one), oldest first. */
export async function findUnsettled(
  sql: SqlRunner,
  limit: number,
): Promise<{ id: string; settlement: Settlement }[]> {
  const rows = await sql.query(FIND_UNSETTLED, [limit]);
  return rows.map((raw) => {
    const row = unsettledRow.parse(raw);
    return { id: row.id, settlement: settlementFromJson(row.outcome) };
  });
}
