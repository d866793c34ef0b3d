/**
 * The solvency figures' SQL: what the ledger says the platform owes, summed exactly (sum(bigint) is
 * numeric), all in ONE statement so every figure comes from the same snapshot (then `outstandingCredits`
 * = `creditedDeposits` - `chargedUsage` + `operatorAdjustments` exactly, since a balance is the sum of its
 * entries); and `solvency_snapshots`, which this store alone writes.
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';

/** What the ledger and the accounts say, in micro-USD. */
export interface LedgerFigures {
  /** The sum of the balances: every credit the accounts hold (what calls in flight hold included). */
  outstandingCredits: bigint;
  /** The part of it that calls in flight hold. */
  heldCredits: bigint;
  /** What deep reorgs left accounts owing the platform (not subtracted from `outstandingCredits`). */
  accountDebt: bigint;
  /**
   * Credits from the chain: DEPOSIT entries, net of the ADJUSTMENTs that correct deposits after a deep reorg
   * (ADJUSTMENTs written by no operator).
   */
  creditedDeposits: bigint;
  /** What calls were charged: minus the sum of the USAGE entries (an operator's refund lowers it). */
  chargedUsage: bigint;
  /** What operators added (positive) or took (negative) with `adjustBalance`. */
  operatorAdjustments: bigint;
}

const LEDGER_FIGURES: Statement = {
  name: 'cm_solvency_ledger_figures',
  text: `select
     (select coalesce(sum(balance), 0) from accounts)::text as outstanding,
     (select coalesce(sum(held), 0) from accounts)::text as held,
     (select coalesce(sum(debt), 0) from accounts)::text as debt,
     l.credited::text as credited, l.charged::text as charged, l.adjusted::text as adjusted
   from (select
       coalesce(sum(amount) filter (where reason = 'DEPOSIT' or (reason = 'ADJUSTMENT' and operator is null)), 0)
         as credited,
       -coalesce(sum(amount) filter (where reason = 'USAGE'), 0) as charged,
       coalesce(sum(amount) filter (where reason = 'ADJUSTMENT' and operator is not null), 0) as adjusted
     from ledger_entries) l`,
};

const figuresRow = z.object({
  outstanding: z.string(),
  held: z.string(),
  debt: z.string(),
  credited: z.string(),
  charged: z.string(),
  adjusted: z.string(),
});

export async function readLedgerFigures(query: Query): Promise<LedgerFigures> {
  const [raw] = await query(LEDGER_FIGURES, []);
  const row = figuresRow.parse(raw);
  return {
    outstandingCredits: BigInt(row.outstanding),
    heldCredits: BigInt(row.held),
    accountDebt: BigInt(row.debt),
    creditedDeposits: BigInt(row.credited),
    chargedUsage: BigInt(row.charged),
    operatorAdjustments: BigInt(row.adjusted),
  };
}

/** The figures at one time: the ledger's, and the treasury's balance on chain at `asOfBlock`. */
export interface SolvencyFigures extends LedgerFigures {
  treasuryBalance: bigint;
  asOfBlock: bigint;
  /** When the figures were read. */
  takenAt: Date;
}

const INSERT_SNAPSHOT: Statement = {
  name: 'cm_solvency_insert_snapshot',
  text: `insert into solvency_snapshots (period, taken_at, as_of_block, treasury_balance, outstanding_credits,
     held_credits, credited_deposits, charged_usage, operator_adjustments, account_debt)
   values ($1::bigint, $2::timestamptz, $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7::bigint, $8::bigint,
     $9::bigint, $10::bigint)
   on conflict (period) do nothing
   returning 1`,
};

/**
 * Records `figures` as period `period`'s snapshot, unless one is recorded already (another replica, or an
 * earlier run in the same period): true when this one was written.
 */
export async function insertSolvencySnapshot(
  query: Query,
  period: bigint,
  figures: SolvencyFigures,
): Promise<boolean> {
  const rows = await query(INSERT_SNAPSHOT, [
    period.toString(),
    figures.takenAt.toISOString(),
    figures.asOfBlock.toString(),
    figures.treasuryBalance.toString(),
    figures.outstandingCredits.toString(),
    figures.heldCredits.toString(),
    figures.creditedDeposits.toString(),
    figures.chargedUsage.toString(),
    figures.operatorAdjustments.toString(),
    figures.accountDebt.toString(),
  ]);
  return rows.length === 1;
}

const SNAPSHOTS: Statement = {
  name: 'cm_solvency_snapshots',
  text: `select * from (
     select taken_at, as_of_block::text as as_of_block, treasury_balance::text as treasury_balance,
       outstanding_credits::text as outstanding_credits, held_credits::text as held_credits,
       credited_deposits::text as credited_deposits, charged_usage::text as charged_usage,
       operator_adjustments::text as operator_adjustments, account_debt::text as account_debt
     from solvency_snapshots where taken_at >= $1::timestamptz and taken_at < $2::timestamptz
     order by taken_at desc limit $3) newest
   order by taken_at`,
};

const snapshotRow = z
  .object({
    taken_at: z.coerce.date(),
    as_of_block: z.string(),
    treasury_balance: z.string(),
    outstanding_credits: z.string(),
    held_credits: z.string(),
    credited_deposits: z.string(),
    charged_usage: z.string(),
    operator_adjustments: z.string(),
    account_debt: z.string(),
  })
  .transform(
    (row): SolvencyFigures => ({
      takenAt: row.taken_at,
      asOfBlock: BigInt(row.as_of_block),
      treasuryBalance: BigInt(row.treasury_balance),
      outstandingCredits: BigInt(row.outstanding_credits),
      heldCredits: BigInt(row.held_credits),
      creditedDeposits: BigInt(row.credited_deposits),
      chargedUsage: BigInt(row.charged_usage),
      operatorAdjustments: BigInt(row.operator_adjustments),
      accountDebt: BigInt(row.account_debt),
    }),
  );

/** The newest `limit` snapshots taken in [from, to), oldest first. */
export async function readSolvencySnapshots(
  query: Query,
  range: { from: Date; to: Date },
  limit: number,
): Promise<SolvencyFigures[]> {
  const rows = await query(SNAPSHOTS, [range.from.toISOString(), range.to.toISOString(), limit]);
  return rows.map((row) => snapshotRow.parse(row));
}
