/**
 * The one owner of the ledger's write SQL: `ledger_entries` rows and the ledger columns of `accounts`
 * (`balance`, `ledger_seq`, `ledger_head`). Every writer chains its entries with {@link chainLedgerBatch}
 * (the hash chain of `chainLedgerEntry` in @chainmeter/schema) and writes them either with
 * {@link writeLedgerBatch} (one statement: the entries and the account heads) or, on a hot path that must stay
 * one statement, by embedding {@link insertLedgerEntriesSql} and {@link ledgerHeadAssignmentsSql} in its own
 * statement (the metering settlement), with the values of {@link ledgerEntryValues} / {@link ledgerHeadValues}.
 * The caller holds the accounts' row locks (or guards on their seq): each entry follows its account's head.
 */
import { randomUUID } from 'node:crypto';
import { type ChainedLedgerEntry, chainLedgerEntry, type LedgerHead } from '@chainmeter/schema';
import { z } from 'zod';
import { int4, int8Text, oneOf, text, textOrNull, timestamp } from '../../db/columns.ts';
import { namedParameters } from '../../db/named-parameters.ts';
import type { Query, Statement } from '../../db/sql.ts';
import {
  lowBalanceAssignmentsSql,
  lowBalanceEventsSql,
  lowBalanceReturningSql,
} from '../alerts/alerts.store.ts';
import {
  type DepositView,
  type DepositViewRow,
  depositViewColumnsSql,
  depositViewOf,
} from '../deposits/deposits.store.ts';
import { LEDGER_REASONS } from './ledger.entity.ts';

export type LedgerReason = (typeof LEDGER_REASONS)[number];

/** An entry to append: signed micro-USD, and the deposit it credits (DEPOSIT only). */
export interface LedgerEntryInput {
  accountId: string;
  amount: bigint;
  reason: LedgerReason;
  /** The deposit id for DEPOSIT (and an ADJUSTMENT of a deposit), the usage id for USAGE. */
  referenceId: string;
  depositId?: string | null;
  /** The operator who wrote it (an operator's ADJUSTMENT or resolution), with their reason; hashed. */
  operator?: string | null;
  reasonText?: string | null;
}

export interface ChainedEntry extends ChainedLedgerEntry {
  reason: LedgerReason;
  id: string;
  depositId: string | null;
}

/** Entries chained in order from their accounts' heads, and the heads they leave (per account). */
export interface LedgerBatch {
  createdAt: Date;
  entries: ChainedEntry[];
  heads: Map<string, LedgerHead>;
}

/**
 * Chains `inputs` in order, each after its account's current head (`headOf` for the first entry of an
 * account, then the entry before it), all stamped `createdAt` (the hash encodes it, to the millisecond).
 */
export function chainLedgerBatch(
  headOf: (accountId: string) => LedgerHead,
  inputs: readonly LedgerEntryInput[],
  createdAt: Date,
): LedgerBatch {
  const heads = new Map<string, LedgerHead>();
  const entries = inputs.map((input): ChainedEntry => {
    const { entry, head } = chainLedgerEntry(heads.get(input.accountId) ?? headOf(input.accountId), {
      accountId: input.accountId,
      amount: input.amount,
      reason: input.reason,
      referenceId: input.referenceId,
      createdAt,
      operator: input.operator ?? null,
      reasonText: input.operator ? (input.reasonText ?? null) : null,
    });
    heads.set(input.accountId, head);
    return { ...entry, reason: input.reason, id: randomUUID(), depositId: input.depositId ?? null };
  });
  return { createdAt, entries, heads };
}

/** The parameters an embedded {@link insertLedgerEntriesSql} reads: one array per column. */
export const LEDGER_ENTRY_PARAMETERS = [
  'entryIds',
  'entryAccountIds',
  'entrySeqs',
  'entryAmounts',
  'entryBalancesAfter',
  'entryReasons',
  'entryReferenceIds',
  'entryDepositIds',
  'entryPrevHashes',
  'entryHashes',
  'entryOperators',
  'entryReasonTexts',
  'entriesCreatedAt',
] as const;
type LedgerEntryParameter = (typeof LEDGER_ENTRY_PARAMETERS)[number];

/** The parameters an embedded {@link ledgerHeadsUnnestSql} reads, accounts in id order. */
export const LEDGER_HEAD_PARAMETERS = ['headAccountIds', 'headBalances', 'headSeqs', 'headHashes'] as const;
type LedgerHeadParameter = (typeof LEDGER_HEAD_PARAMETERS)[number];

/** `insert into ledger_entries` of a batch's entries, only `where` it holds (a statement's guard). */
export function insertLedgerEntriesSql(
  $: Readonly<Record<LedgerEntryParameter, string>>,
  where = 'true',
): string {
  return `insert into ledger_entries (id, account_id, seq, amount, balance_after, reason, reference_id, deposit_id,
       created_at, prev_hash, hash, operator, reason_text)
     select t.id, t.account_id, t.seq, t.amount, t.balance_after, t.reason, t.reference_id, t.deposit_id,
       ${$.entriesCreatedAt}::timestamptz, t.prev_hash, t.hash, t.operator, t.reason_text
     from unnest(${$.entryIds}::uuid[], ${$.entryAccountIds}::uuid[], ${$.entrySeqs}::int[],
       ${$.entryAmounts}::bigint[], ${$.entryBalancesAfter}::bigint[], ${$.entryReasons}::text[],
       ${$.entryReferenceIds}::text[], ${$.entryDepositIds}::uuid[], ${$.entryPrevHashes}::text[],
       ${$.entryHashes}::text[], ${$.entryOperators}::text[], ${$.entryReasonTexts}::text[])
       as t(id, account_id, seq, amount, balance_after, reason, reference_id, deposit_id, prev_hash, hash,
         operator, reason_text)
     where ${where}`;
}

export function ledgerEntryValues(batch: LedgerBatch): Record<LedgerEntryParameter, unknown> {
  const { entries } = batch;
  return {
    entryIds: entries.map((e) => e.id),
    entryAccountIds: entries.map((e) => e.accountId),
    entrySeqs: entries.map((e) => e.seq),
    entryAmounts: entries.map((e) => e.amount.toString()),
    entryBalancesAfter: entries.map((e) => e.balanceAfter.toString()),
    entryReasons: entries.map((e) => e.reason),
    entryReferenceIds: entries.map((e) => e.referenceId),
    entryDepositIds: entries.map((e) => e.depositId),
    entryPrevHashes: entries.map((e) => e.prevHash),
    entryHashes: entries.map((e) => e.hash),
    entryOperators: entries.map((e) => e.operator ?? null),
    entryReasonTexts: entries.map((e) => e.reasonText ?? null),
    entriesCreatedAt: batch.createdAt.toISOString(),
  };
}

/**
 * `unnest(...) as <alias>(id, balance, seq, head, ...)`: the new heads, with `extra` columns of the
 * embedding statement beside them (e.g. what a settlement releases per account).
 */
export function ledgerHeadsUnnestSql(
  $: Readonly<Record<LedgerHeadParameter, string>>,
  alias: string,
  extra: readonly { column: string; array: string }[] = [],
): string {
  const arrays = [
    `${$.headAccountIds}::uuid[]`,
    `${$.headBalances}::bigint[]`,
    `${$.headSeqs}::int[]`,
    `${$.headHashes}::text[]`,
    ...extra.map((x) => x.array),
  ];
  const columns = ['id', 'balance', 'seq', 'head', ...extra.map((x) => x.column)];
  return `unnest(${arrays.join(', ')}) as ${alias}(${columns.join(', ')})`;
}

/**
 * The `set` list that moves an account to the head in `<alias>` (a row of {@link ledgerHeadsUnnestSql}), with
 * the low-balance alert's state (alerts.store.ts): an update with it must return
 * {@link ledgerHeadReturningSql} and embed {@link ledgerHeadEventsSql}, so a crossing is written to the outbox
 * by the statement that makes it.
 */
export function ledgerHeadAssignmentsSql(alias: string): string {
  return `balance = ${alias}.balance, ledger_seq = ${alias}.seq, ledger_head = ${alias}.head,
     ${lowBalanceAssignmentsSql(alias)}`;
}

/** The RETURNING list of an update with {@link ledgerHeadAssignmentsSql}. */
export const ledgerHeadReturningSql = lowBalanceReturningSql;

/** The outbox insert of the events the heads written by `updated` (a CTE returning the above) fire. */
export const ledgerHeadEventsSql = lowBalanceEventsSql;

/** The heads in account id order (the order rows are locked in), as their columns. */
export function ledgerHeadValues(
  heads: readonly (readonly [string, LedgerHead])[],
): Record<LedgerHeadParameter, unknown> {
  return {
    headAccountIds: heads.map(([id]) => id),
    headBalances: heads.map(([, head]) => head.balance.toString()),
    headSeqs: heads.map(([, head]) => head.seq),
    headHashes: heads.map(([, head]) => head.hash),
  };
}

/** `heads` sorted by account id. */
export function headsInIdOrder(heads: ReadonlyMap<string, LedgerHead>): [string, LedgerHead][] {
  return [...heads.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
}

const writeBatch = namedParameters([...LEDGER_ENTRY_PARAMETERS, ...LEDGER_HEAD_PARAMETERS]);

const WRITE_LEDGER_BATCH: Statement = {
  name: 'cm_write_ledger_batch',
  text: `with e as (
     ${insertLedgerEntriesSql(writeBatch.$)}
     returning 1
   ), a as (
     update accounts set ${ledgerHeadAssignmentsSql('v')}
     from ${ledgerHeadsUnnestSql(writeBatch.$, 'v')}
     where accounts.id = v.id
     returning ${ledgerHeadReturningSql('v')}
   ), alerts as (
     ${ledgerHeadEventsSql('a')}
     returning 1
   )
   select (select count(*) from e)::int as entries, (select count(*) from a)::int as accounts`,
};

const writtenRow = z.object({ entries: z.number(), accounts: z.number() });

/**
 * Writes a chained batch in one statement: its entries, and each account's new head (balance, seq, hash).
 * The caller holds the accounts' locks in the same transaction, and chained from the heads it read under them.
 */
export async function writeLedgerBatch(query: Query, batch: LedgerBatch): Promise<void> {
  if (batch.entries.length === 0) return;
  const heads = headsInIdOrder(batch.heads);
  const [row] = await query(
    WRITE_LEDGER_BATCH,
    writeBatch.values({ ...ledgerEntryValues(batch), ...ledgerHeadValues(heads) }),
  );
  const written = writtenRow.parse(row);
  if (written.entries !== batch.entries.length || written.accounts !== heads.length) {
    throw new Error(
      `ledger batch half-written: ${written.entries}/${batch.entries.length} entries, ${written.accounts}/${heads.length} accounts`,
    );
  }
}

/**
 * A ledger entry as the read path serves it: plain columns read with one SQL statement, no entity
 * hydration (a page of 100 entries is a hot read; hydrating them cost more than the query itself).
 */
export interface LedgerEntryView {
  id: string;
  accountId: string;
  seq: number;
  amount: bigint;
  balanceAfter: bigint;
  reason: LedgerReason;
  referenceId: string;
  depositId: string | null;
  createdAt: Date;
  prevHash: string | null;
  hash: string;
  /** Set on entries an operator wrote (`adjustBalance`, `resolveUsage`): who, and the reason they gave. */
  operator: string | null;
  reasonText: string | null;
  /**
   * The deposit the entry credits or corrects (see {@link ledgerDepositIdSql}), when it was read with the
   * entry ({@link readLedgerPage}): null when there is none; absent when not read.
   */
  deposit?: DepositView | null;
}

/** The columns of {@link LedgerEntryView} of table (or alias) `e`. */
const viewColumns = (e: string) => `${e}.id, ${e}.account_id, ${e}.seq, ${e}.amount::text as amount,
  ${e}.balance_after::text as balance_after, ${e}.reason, ${e}.reference_id, ${e}.deposit_id, ${e}.created_at,
  ${e}.prev_hash, ${e}.hash, ${e}.operator, ${e}.reason_text`;

/** A row with the columns of {@link viewColumns}. */
interface LedgerEntryRow {
  id: unknown;
  account_id: unknown;
  seq: unknown;
  amount: unknown;
  balance_after: unknown;
  reason: unknown;
  reference_id: unknown;
  deposit_id: unknown;
  created_at: unknown;
  prev_hash: unknown;
  hash: unknown;
  operator: unknown;
  reason_text: unknown;
}

/** A row of {@link viewColumns} as the view, each column checked (db/columns.ts: no zod on this hot read). */
function ledgerEntryViewOf(row: LedgerEntryRow): LedgerEntryView {
  return {
    id: text(row.id, 'id'),
    accountId: text(row.account_id, 'account_id'),
    seq: int4(row.seq, 'seq'),
    amount: int8Text(row.amount, 'amount'),
    balanceAfter: int8Text(row.balance_after, 'balance_after'),
    reason: oneOf(LEDGER_REASONS, row.reason, 'reason'),
    referenceId: text(row.reference_id, 'reference_id'),
    depositId: textOrNull(row.deposit_id, 'deposit_id'),
    createdAt: timestamp(row.created_at, 'created_at'),
    prevHash: textOrNull(row.prev_hash, 'prev_hash'),
    hash: text(row.hash, 'hash'),
    operator: textOrNull(row.operator, 'operator'),
    reasonText: textOrNull(row.reason_text, 'reason_text'),
  };
}

/**
 * The deposit an entry belongs to: a DEPOSIT entry's `deposit_id`, or the deposit an ADJUSTMENT's reference
 * names when it corrects one after a reorg deeper than CONFIRMATIONS (other references are not uuids, or
 * name no deposit and find none).
 */
export function ledgerDepositIdSql(alias: string): string {
  return `coalesce(${alias}.deposit_id, case when ${alias}.reason = 'ADJUSTMENT'
     and ${alias}.reference_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     then ${alias}.reference_id::uuid end)`;
}

/** An ADJUSTMENT's reference is a deposit id when it corrects a deposit. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** {@link ledgerDepositIdSql} for an entry already read: the id of its deposit, or null. */
export function depositIdOf(
  entry: Pick<LedgerEntryView, 'depositId' | 'reason' | 'referenceId'>,
): string | null {
  return (
    entry.depositId ??
    (entry.reason === 'ADJUSTMENT' && UUID.test(entry.referenceId) ? entry.referenceId : null)
  );
}

const LEDGER_PAGE: Statement = {
  name: 'cm_ledger_page_with_deposits',
  text: `select ${viewColumns('e')}, ${depositViewColumnsSql('d')}
   from ledger_entries e left join deposits d on d.id = ${ledgerDepositIdSql('e')}
   where e.account_id = $1::uuid and e.seq < coalesce($2::int, 2147483647) order by e.seq desc limit $3`,
};

/**
 * Up to `limit` entries of an account, newest first, below seq `before` (all when null), each with its
 * deposit: one statement for a page of the ledger as the account's page shows it.
 */
export async function readLedgerPage(
  query: Query,
  accountId: string,
  before: number | null,
  limit: number,
): Promise<LedgerEntryView[]> {
  const rows = await query<LedgerEntryRow & DepositViewRow>(LEDGER_PAGE, [accountId, before, limit]);
  return rows.map((row) => {
    const entry = ledgerEntryViewOf(row);
    entry.deposit = depositViewOf(row);
    return entry;
  });
}

const LEDGER_ENTRY_BY_ID: Statement = {
  name: 'cm_ledger_entry_by_id',
  text: `select ${viewColumns('ledger_entries')} from ledger_entries where id = $1::uuid`,
};

export async function readLedgerEntry(query: Query, id: string): Promise<LedgerEntryView | null> {
  const [row] = await query<LedgerEntryRow>(LEDGER_ENTRY_BY_ID, [id]);
  return row === undefined ? null : ledgerEntryViewOf(row);
}

const OPERATOR_ADJUSTMENT: Statement = {
  name: 'cm_operator_adjustment',
  text: `select ${viewColumns('ledger_entries')} from ledger_entries
   where account_id = $1::uuid and reference_id = $2 and reason = 'ADJUSTMENT' and operator is not null`,
};

/** The operator ADJUSTMENT of an account with this reference (unique: `ledger_entries_operator_reference_key`). */
export async function readOperatorAdjustment(
  query: Query,
  accountId: string,
  referenceId: string,
): Promise<LedgerEntryView | null> {
  const [row] = await query<LedgerEntryRow>(OPERATOR_ADJUSTMENT, [accountId, referenceId]);
  return row === undefined ? null : ledgerEntryViewOf(row);
}
