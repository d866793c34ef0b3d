/**
 * The crediting path's SQL: deposits upserted set-based (unnest over arrays, one statement per table per
 * batch: a backlog of thousands of transfers credits in seconds), the accounts of a batch locked, debts and
 * the chain's cursor. The ledger itself is written through `ledger.store.ts`. These statements bypass the
 * identity map: run them in a fresh EntityManager's transaction.
 */
import type { LedgerHead } from '@chainmeter/schema';
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import type { IndexedTransfer, TransferCursor } from './indexer.client.ts';

const bigintText = z.string().transform((text) => BigInt(text));

const TRY_CREDITING_LOCK: Statement = {
  name: 'cm_try_crediting_lock',
  text: 'select pg_try_advisory_xact_lock($1::int, $2::int) as locked',
};

const lockedRow = z.object({ locked: z.boolean() });

/** Takes the chain's crediting lock for this transaction, unless another transaction holds it. */
export async function tryCreditingLock(query: Query, key: number, chainId: number): Promise<boolean> {
  const [row] = await query(TRY_CREDITING_LOCK, [key, chainId]);
  return lockedRow.parse(row).locked;
}

/** An account of a batch, locked: its ledger head and its debt (see `reverseReorgedCredits`). */
export interface LockedAccount {
  id: string;
  ledger: LedgerHead;
  /** micro-USD a deep reorg could not take back. */
  debt: bigint;
}

const LOCK_ACCOUNTS_OF_WALLETS: Statement = {
  name: 'cm_lock_accounts_of_wallets',
  text: `select id, wallet_address, balance::text as balance, debt::text as debt, ledger_seq, ledger_head
   from accounts where wallet_address = any($1::text[]) order by id for update`,
};

const lockedAccountRow = z.object({
  id: z.string(),
  wallet_address: z.string(),
  balance: bigintText,
  debt: bigintText,
  ledger_seq: z.number(),
  ledger_head: z.string().nullable(),
});

/** Locks the accounts of these wallets (in id order, so two batches cannot deadlock), keyed by wallet. */
export async function lockAccountsOfWallets(
  query: Query,
  wallets: readonly string[],
): Promise<Map<string, LockedAccount>> {
  const rows = (await query(LOCK_ACCOUNTS_OF_WALLETS, [wallets])).map((row) => lockedAccountRow.parse(row));
  return new Map(
    rows.map((row) => [
      row.wallet_address,
      {
        id: row.id,
        ledger: { seq: row.ledger_seq, hash: row.ledger_head, balance: row.balance },
        debt: row.debt,
      },
    ]),
  );
}

/** A transfer to write as a deposit, with its sender's account and its amount in micro-USD. */
export interface DepositWrite {
  transfer: IndexedTransfer;
  accountId: string;
  amount: bigint;
}

/** The deposit columns of a batch, read by `unnest(...) as t(...)` at parameters $4.. of the upserts. */
const DEPOSITS_UNNEST = `unnest($4::text[], $5::int[], $6::bigint[], $7::text[], $8::text[], $9::uuid[],
     $10::bigint[], $11::bigint[])
     as t(tx_hash, log_index, block_number, block_hash, from_address, account_id, amount_token, amount)`;

function depositValues(chainId: number, head: bigint, now: Date, rows: readonly DepositWrite[]): unknown[] {
  return [
    chainId,
    head.toString(),
    now.toISOString(),
    rows.map((r) => r.transfer.txHash.toLowerCase()),
    rows.map((r) => r.transfer.logIndex),
    rows.map((r) => r.transfer.blockNumber.toString()),
    rows.map((r) => r.transfer.blockHash.toLowerCase()),
    rows.map((r) => r.transfer.from),
    rows.map((r) => r.accountId),
    rows.map((r) => r.transfer.value.toString()),
    rows.map((r) => r.amount.toString()),
  ];
}

/**
 * What the account has been credited for deposit `<alias>` and not taken back: its DEPOSIT entry plus the
 * ADJUSTMENTs that reference it (reversal, debt settlements, re-credit). It equals the deposit's amount
 * while the deposit is CREDITED; otherwise it is what the account still owes for it.
 */
const creditedNetSql = (alias: string) =>
  `(select coalesce(sum(l.amount), 0) from ledger_entries l
     where l.account_id = ${alias}.account_id and l.reference_id = ${alias}.id::text
       and (l.reason = 'ADJUSTMENT' or l.deposit_id = ${alias}.id))`;

const UPSERT_CREDITED_DEPOSITS: Statement = {
  name: 'cm_upsert_credited_deposits',
  text: `insert into deposits (chain_id, tx_hash, log_index, block_number, block_hash, from_address, account_id,
     amount_token, amount, status, confirmations, credited_at, created_at, updated_at)
   select $1::int, t.tx_hash, t.log_index, t.block_number, t.block_hash, t.from_address, t.account_id,
     t.amount_token, t.amount, 'CREDITED', greatest($2::bigint - t.block_number, 0)::int,
     $3::timestamptz, $3::timestamptz, $3::timestamptz
   from ${DEPOSITS_UNNEST}
   on conflict (chain_id, tx_hash, log_index) do update set
     status = 'CREDITED', block_number = excluded.block_number, block_hash = excluded.block_hash,
     confirmations = excluded.confirmations, credited_at = excluded.credited_at,
     updated_at = excluded.updated_at
   where deposits.status <> 'CREDITED'
   returning id, tx_hash, log_index,
     exists (select 1 from ledger_entries l where l.deposit_id = deposits.id) as recredit,
     case when exists (select 1 from ledger_entries l where l.deposit_id = deposits.id)
       then ${creditedNetSql('deposits')} else 0 end::text as credited_net`,
};

const creditedDepositRow = z.object({
  id: z.string(),
  tx_hash: z.string(),
  log_index: z.number(),
  recredit: z.boolean(),
  credited_net: bigintText,
});
export type CreditedDepositRow = z.infer<typeof creditedDepositRow>;

/**
 * Inserts these deposits CREDITED, or moves them there from PENDING/REORGED; one already CREDITED is left
 * alone and not returned. The guarded upsert takes the row lock, so nothing is credited twice. `recredit`:
 * credited before (a DEPOSIT entry exists), then taken back by a deep reorg; `credited_net`: what its
 * entries still net (see `creditedNetSql`).
 */
export async function upsertCreditedDeposits(
  query: Query,
  chainId: number,
  head: bigint,
  now: Date,
  rows: readonly DepositWrite[],
): Promise<CreditedDepositRow[]> {
  const result = await query(UPSERT_CREDITED_DEPOSITS, depositValues(chainId, head, now, rows));
  return result.map((row) => creditedDepositRow.parse(row));
}

const UPSERT_PENDING_DEPOSITS: Statement = {
  name: 'cm_upsert_pending_deposits',
  text: `insert into deposits (chain_id, tx_hash, log_index, block_number, block_hash, from_address, account_id,
     amount_token, amount, status, confirmations, created_at, updated_at)
   select $1::int, t.tx_hash, t.log_index, t.block_number, t.block_hash, t.from_address, t.account_id,
     t.amount_token, t.amount, 'PENDING', greatest($2::bigint - t.block_number, 0)::int,
     $3::timestamptz, $3::timestamptz
   from ${DEPOSITS_UNNEST}
   on conflict (chain_id, tx_hash, log_index) do update set
     status = 'PENDING', block_number = excluded.block_number, block_hash = excluded.block_hash,
     confirmations = excluded.confirmations, updated_at = excluded.updated_at
   where deposits.status <> 'CREDITED' and (deposits.status <> 'PENDING'
     or deposits.block_number <> excluded.block_number or deposits.block_hash <> excluded.block_hash
     or deposits.confirmations <> excluded.confirmations)
   returning id, account_id, (xmax = 0) as inserted`,
};

const depositOfAccountRow = z.object({ id: z.string(), account_id: z.string() });
// `xmax = 0`: the row version was made by an insert, not by the conflict's update.
const upsertedPendingRow = depositOfAccountRow.extend({ inserted: z.boolean() });

/**
 * Inserts or updates these PENDING deposits; returns those that changed (never a CREDITED one), `inserted`
 * when first seen.
 */
export async function upsertPendingDeposits(
  query: Query,
  chainId: number,
  head: bigint,
  now: Date,
  rows: readonly DepositWrite[],
): Promise<{ id: string; account_id: string; inserted: boolean }[]> {
  const result = await query(UPSERT_PENDING_DEPOSITS, depositValues(chainId, head, now, rows));
  return result.map((row) => upsertedPendingRow.parse(row));
}

const MARK_MISSING_PENDING_REORGED: Statement = {
  name: 'cm_mark_missing_pending_reorged',
  text: `update deposits set status = 'REORGED', updated_at = $1::timestamptz
   where chain_id = $2::int and status = 'PENDING' and block_number <= $3::bigint
     and not (tx_hash || ':' || log_index::text = any($4::text[]))
   returning id, account_id`,
};

/** Marks REORGED every PENDING deposit of the chain at or below `head` whose log key is not in `present`. */
export async function markMissingPendingReorged(
  query: Query,
  chainId: number,
  head: bigint,
  present: readonly string[],
  now: Date,
): Promise<{ id: string; account_id: string }[]> {
  const result = await query(MARK_MISSING_PENDING_REORGED, [
    now.toISOString(),
    chainId,
    head.toString(),
    present,
  ]);
  return result.map((row) => depositOfAccountRow.parse(row));
}

/** A deposit the account still owes for (debt), oldest first. */
export interface OwedDeposit {
  depositId: string;
  owed: bigint;
}

const OWED_DEPOSITS: Statement = {
  name: 'cm_owed_deposits',
  text: `select d.id, d.account_id, n.owed::text as owed from deposits d,
     lateral (select ${creditedNetSql('d')} as owed) n
   where d.account_id = any($1::uuid[]) and d.status <> 'CREDITED' and n.owed > 0
   order by d.block_number, d.log_index, d.id`,
};

const owedRow = z.object({ id: z.string(), account_id: z.string(), owed: bigintText });

/** Per account id: the deposits that are not CREDITED and still carry part of the account's debt. */
export async function readOwedDeposits(
  query: Query,
  accountIds: readonly string[],
): Promise<Map<string, OwedDeposit[]>> {
  const owed = new Map<string, OwedDeposit[]>();
  if (accountIds.length === 0) return owed;
  for (const row of (await query(OWED_DEPOSITS, [accountIds])).map((r) => owedRow.parse(r))) {
    const list = owed.get(row.account_id) ?? [];
    list.push({ depositId: row.id, owed: row.owed });
    owed.set(row.account_id, list);
  }
  return owed;
}

const SET_DEBTS: Statement = {
  name: 'cm_set_debts',
  text: `update accounts a set debt = v.debt from unnest($1::uuid[], $2::bigint[]) as v(id, debt)
   where a.id = v.id`,
};

/** Sets these accounts' debts (crediting is the only writer of `debt`; the caller holds their locks). */
export async function setDebts(
  query: Query,
  debts: readonly { accountId: string; debt: bigint }[],
): Promise<void> {
  if (debts.length === 0) return;
  await query(SET_DEBTS, [debts.map((d) => d.accountId), debts.map((d) => d.debt.toString())]);
}

const ADVANCE_CURSOR: Statement = {
  name: 'cm_advance_crediting_cursor',
  text: `insert into crediting_cursors (chain_id, block_number, log_index, updated_at) values ($1::int, $2::bigint, $3::int, now())
   on conflict (chain_id) do update set block_number = excluded.block_number, log_index = excluded.log_index,
     updated_at = excluded.updated_at
   where (crediting_cursors.block_number, crediting_cursors.log_index) < (excluded.block_number, excluded.log_index)`,
};

/** Moves the chain's cursor forward (never back: a slower replica cannot rewind it). */
export async function advanceCursor(query: Query, chainId: number, cursor: TransferCursor): Promise<void> {
  await query(ADVANCE_CURSOR, [chainId, cursor.blockNumber.toString(), cursor.logIndex]);
}

const READ_CURSOR: Statement = {
  name: 'cm_read_crediting_cursor',
  text: 'select block_number::text as block_number, log_index from crediting_cursors where chain_id = $1::int',
};

const LOCK_CURSOR: Statement = {
  name: 'cm_lock_crediting_cursor',
  text: `${READ_CURSOR.text} for update`,
};

const cursorRow = z
  .object({ block_number: bigintText, log_index: z.number() })
  .transform((row): TransferCursor => ({ blockNumber: row.block_number, logIndex: row.log_index }));

/** The chain's cursor (locked for the transaction with `forUpdate`), or null before the first credit. */
export async function readCursor(
  query: Query,
  chainId: number,
  forUpdate: boolean,
): Promise<TransferCursor | null> {
  const [row] = await query(forUpdate ? LOCK_CURSOR : READ_CURSOR, [chainId]);
  return row === undefined ? null : cursorRow.parse(row);
}

const DELETE_CURSOR: Statement = {
  name: 'cm_delete_crediting_cursor',
  text: 'delete from crediting_cursors where chain_id = $1::int',
};

const REWIND_CURSOR: Statement = {
  name: 'cm_rewind_crediting_cursor',
  text: 'update crediting_cursors set block_number = $1::bigint, log_index = $2::int, updated_at = now() where chain_id = $3::int',
};

/** Sets the chain's cursor back to `to` (null: to the start). */
export async function rewindCursor(query: Query, chainId: number, to: TransferCursor | null): Promise<void> {
  if (to === null) await query(DELETE_CURSOR, [chainId]);
  else await query(REWIND_CURSOR, [to.blockNumber.toString(), to.logIndex, chainId]);
}
