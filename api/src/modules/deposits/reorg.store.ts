/**
 * The SQL of the deep-reorg path (`reorg.service.ts`) and of paying debts (`debt.service.ts`): credited
 * deposits read, reversed or moved, the accounts they touch locked with their ledger head and debt, and
 * the head each chain's last complete reorg check reached (`reorg_checks`).
 */
import type { LedgerHead } from '@chainmeter/schema';
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import type { IndexedTransfer } from './indexer.client.ts';

const bigintText = z.string().transform((text) => BigInt(text));

const CREDITED_DEPOSITS_IN_RANGE: Statement = {
  name: 'cm_credited_deposits_in_range',
  text: `select id, account_id, tx_hash, log_index, block_number::text as block_number, block_hash,
     amount::text as amount from deposits
   where chain_id = $1::int and status = 'CREDITED' and block_number between $2::bigint and $3::bigint
   order by block_number, log_index`,
};

const creditedDepositRow = z.object({
  id: z.string(),
  account_id: z.string(),
  tx_hash: z.string(),
  log_index: z.number(),
  block_number: bigintText,
  block_hash: z.string(),
  amount: bigintText,
});
export type CreditedDeposit = z.infer<typeof creditedDepositRow>;

/** The chain's CREDITED deposits in blocks [fromBlock, toBlock], in chain order. */
export async function readCreditedDeposits(
  query: Query,
  chainId: number,
  range: { fromBlock: bigint; toBlock: bigint },
): Promise<CreditedDeposit[]> {
  const rows = await query(CREDITED_DEPOSITS_IN_RANGE, [
    chainId,
    range.fromBlock.toString(),
    range.toBlock.toString(),
  ]);
  return rows.map((row) => creditedDepositRow.parse(row));
}

const MARK_CREDIT_REORGED: Statement = {
  name: 'cm_mark_credit_reorged',
  text: `update deposits set status = 'REORGED', confirmations = 0, credited_at = null, updated_at = now()
   where id = $1::uuid and status = 'CREDITED' returning id`,
};

/** Moves a deposit CREDITED -> REORGED; false when it is no longer CREDITED. */
export async function markCreditReorged(query: Query, depositId: string): Promise<boolean> {
  return (await query(MARK_CREDIT_REORGED, [depositId])).length === 1;
}

/** An account locked for a reversal or a debt payment: its ledger head, what calls hold, its debt. */
export interface AccountFunds {
  id: string;
  ledger: LedgerHead;
  held: bigint;
  debt: bigint;
}

const FUNDS_COLUMNS = `id, balance::text as balance, held::text as held, debt::text as debt, ledger_seq, ledger_head`;

const fundsRow = z
  .object({
    id: z.string(),
    balance: bigintText,
    held: bigintText,
    debt: bigintText,
    ledger_seq: z.number(),
    ledger_head: z.string().nullable(),
  })
  .transform(
    (row): AccountFunds => ({
      id: row.id,
      ledger: { seq: row.ledger_seq, hash: row.ledger_head, balance: row.balance },
      held: row.held,
      debt: row.debt,
    }),
  );

const LOCK_ACCOUNT_FUNDS: Statement = {
  name: 'cm_lock_account_funds',
  text: `select ${FUNDS_COLUMNS} from accounts where id = $1::uuid for update`,
};

export async function lockAccountFunds(query: Query, accountId: string): Promise<AccountFunds | null> {
  const [row] = await query(LOCK_ACCOUNT_FUNDS, [accountId]);
  return row === undefined ? null : fundsRow.parse(row);
}

const LOCK_INDEBTED_ACCOUNTS: Statement = {
  name: 'cm_lock_indebted_accounts',
  text: `select ${FUNDS_COLUMNS} from accounts where debt > 0 and balance > held order by id for update`,
};

/** Every account with a debt and something spendable (balance above what is held), locked in id order. */
export async function lockIndebtedAccounts(query: Query): Promise<AccountFunds[]> {
  return (await query(LOCK_INDEBTED_ACCOUNTS, [])).map((row) => fundsRow.parse(row));
}

const MOVE_CREDITED_DEPOSITS: Statement = {
  name: 'cm_move_credited_deposits',
  text: `update deposits d set block_number = t.block_number, block_hash = t.block_hash, updated_at = now()
   from unnest($1::uuid[], $2::bigint[], $3::text[]) as t(id, block_number, block_hash)
   where d.id = t.id and d.status = 'CREDITED'`,
};

/** Points credited deposits at the block their transfer was mined again in. */
export async function moveCreditedDeposits(
  query: Query,
  moved: readonly { id: string; transfer: IndexedTransfer }[],
): Promise<void> {
  if (moved.length === 0) return;
  await query(MOVE_CREDITED_DEPOSITS, [
    moved.map((m) => m.id),
    moved.map((m) => m.transfer.blockNumber.toString()),
    moved.map((m) => m.transfer.blockHash.toLowerCase()),
  ]);
}

const CREDITED_AMONG: Statement = {
  name: 'cm_credited_among',
  text: `select d.tx_hash, d.log_index from deposits d
   join unnest($1::text[], $2::int[]) as t(tx_hash, log_index)
     on d.chain_id = $3::int and d.tx_hash = t.tx_hash and d.log_index = t.log_index
   where d.status = 'CREDITED'`,
};

const logRow = z.object({ tx_hash: z.string(), log_index: z.number() });

/** Which of these transfers have a CREDITED deposit, as (tx hash, log index) rows. */
export async function readCreditedAmong(
  query: Query,
  chainId: number,
  transfers: readonly IndexedTransfer[],
): Promise<{ tx_hash: string; log_index: number }[]> {
  const rows = await query(CREDITED_AMONG, [
    transfers.map((t) => t.txHash.toLowerCase()),
    transfers.map((t) => t.logIndex),
    chainId,
  ]);
  return rows.map((row) => logRow.parse(row));
}

const RECORD_REORG_CHECK: Statement = {
  name: 'cm_record_reorg_check',
  text: `insert into reorg_checks (chain_id, checked_head, updated_at) values ($1::int, $2::bigint, now())
   on conflict (chain_id) do update set checked_head = excluded.checked_head, updated_at = now()`,
};

/** Records that a complete reorg check compared every credit of the chain up to `head`. */
export async function recordReorgCheck(query: Query, chainId: number, head: bigint): Promise<void> {
  await query(RECORD_REORG_CHECK, [chainId, head.toString()]);
}

const READ_REORG_CHECK: Statement = {
  name: 'cm_read_reorg_check',
  text: 'select checked_head::text as checked_head from reorg_checks where chain_id = $1::int',
};

const reorgCheckRow = z.object({ checked_head: bigintText });

/** The head the chain's last complete reorg check reached, or null before the first one. */
export async function readReorgCheck(query: Query, chainId: number): Promise<bigint | null> {
  const [row] = await query(READ_REORG_CHECK, [chainId]);
  return row === undefined ? null : reorgCheckRow.parse(row).checked_head;
}
