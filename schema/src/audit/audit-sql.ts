/**
 * How the audit reads the platform's tables (accounts, ledger_entries, deposits): one select list and one
 * row mapper, used by the API (auditor queries, `auditReport`, proofs) and by the CLI's `--database`
 * path, so both read exactly the same fields. Read-only; run the reads of one audit in one
 * REPEATABLE READ transaction for a consistent snapshot.
 */
import type { AuditAccount, AuditLedgerEntry } from './audit-types.ts';

export const AUDIT_ACCOUNT_COLUMNS =
  'a.id, a.wallet_address, a.balance::text as balance, a.debt::text as debt, a.ledger_seq, a.ledger_head';

export const AUDIT_ENTRY_COLUMNS = `e.account_id, e.seq, e.amount::text as amount, e.balance_after::text as balance_after,
  e.reason, e.reference_id, e.created_at, e.prev_hash, e.hash, d.chain_id, d.tx_hash, d.log_index,
  d.block_number::text as block_number, d.from_address, d.amount_token::text as amount_token,
  d.amount::text as deposit_amount, d.status as deposit_status`;

/** ledger_entries e joined to their deposit d (the DEPOSIT entries' chain reference). */
export const AUDIT_ENTRY_FROM = 'ledger_entries e left join deposits d on d.id = e.deposit_id';

export const AUDIT_ALL_ACCOUNTS_SQL = `select ${AUDIT_ACCOUNT_COLUMNS} from accounts a order by a.id`;
export const AUDIT_ALL_ENTRIES_SQL = `select ${AUDIT_ENTRY_COLUMNS} from ${AUDIT_ENTRY_FROM} order by e.account_id, e.seq`;

export interface AuditAccountRow {
  id: string;
  wallet_address: string;
  balance: string;
  debt: string;
  ledger_seq: number;
  ledger_head: string | null;
}

export interface AuditEntryRow {
  account_id: string;
  seq: number;
  amount: string;
  balance_after: string;
  reason: string;
  reference_id: string;
  created_at: Date | string;
  prev_hash: string | null;
  hash: string;
  chain_id: number | null;
  tx_hash: string | null;
  log_index: number | null;
  block_number: string | null;
  from_address: string | null;
  amount_token: string | null;
  deposit_amount: string | null;
  deposit_status: string | null;
}

export function auditAccountFromRow(row: AuditAccountRow): AuditAccount {
  return {
    accountId: row.id,
    walletAddress: row.wallet_address,
    balance: BigInt(row.balance),
    debt: BigInt(row.debt),
    ledgerSeq: Number(row.ledger_seq),
    ledgerHead: row.ledger_head,
  };
}

export function auditEntryFromRow(row: AuditEntryRow): AuditLedgerEntry {
  return {
    accountId: row.account_id,
    seq: Number(row.seq),
    amount: BigInt(row.amount),
    balanceAfter: BigInt(row.balance_after),
    reason: row.reason,
    referenceId: row.reference_id,
    createdAt: row.created_at instanceof Date ? row.created_at : new Date(row.created_at),
    prevHash: row.prev_hash,
    hash: row.hash,
    deposit:
      row.tx_hash === null
        ? null
        : {
            chainId: Number(row.chain_id),
            txHash: row.tx_hash.toLowerCase(),
            logIndex: Number(row.log_index),
            blockNumber: BigInt(row.block_number ?? '0'),
            from: row.from_address ?? '',
            amountToken: BigInt(row.amount_token ?? '0'),
            amount: BigInt(row.deposit_amount ?? '0'),
            status: row.deposit_status ?? '',
          },
  };
}
