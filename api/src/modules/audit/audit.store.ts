/**
 * The audit's reads of accounts, ledger_entries and deposits, read-only: the auditor queries' pages (keyset
 * on the account id, then on (account id, seq)), one consistent snapshot of everything, and one account's
 * ledger. The select lists and row parsers are the CLI's too (@chainmeter/schema `audit-records.store.ts`).
 */
import {
  AUDIT_ACCOUNT_COLUMNS,
  AUDIT_ENTRY_COLUMNS,
  AUDIT_ENTRY_FROM,
  AUDIT_PAID_CALL_COLUMNS,
  AUDIT_PAID_CALL_FROM,
  type AuditAccount,
  type AuditLedgerEntry,
  type AuditPaidCall,
  auditAccountFromRow,
  auditEntryFromRow,
  auditPaidCallFromRow,
  readAllAuditRecords,
} from '@chainmeter/schema';
import { IsolationLevel } from '@mikro-orm/core';
import type { Em } from '../../db/orm.ts';
import { type Statement, sqlOf } from '../../db/sql.ts';

const ACCOUNTS_PAGE: Statement = {
  name: 'cm_audit_accounts_page',
  text: `select ${AUDIT_ACCOUNT_COLUMNS} from accounts a order by a.id limit $1`,
};

const ACCOUNTS_PAGE_AFTER: Statement = {
  name: 'cm_audit_accounts_page_after',
  text: `select ${AUDIT_ACCOUNT_COLUMNS} from accounts a where a.id > $1::uuid order by a.id limit $2`,
};

const ENTRIES_PAGE: Statement = {
  name: 'cm_audit_entries_page',
  text: `select ${AUDIT_ENTRY_COLUMNS} from ${AUDIT_ENTRY_FROM} order by e.account_id, e.seq limit $1`,
};

const ENTRIES_PAGE_AFTER: Statement = {
  name: 'cm_audit_entries_page_after',
  text: `select ${AUDIT_ENTRY_COLUMNS} from ${AUDIT_ENTRY_FROM}
    where (e.account_id, e.seq) > ($1::uuid, $2::int) order by e.account_id, e.seq limit $3`,
};

const PAID_CALLS_PAGE: Statement = {
  name: 'cm_audit_paid_calls_page',
  text: `select ${AUDIT_PAID_CALL_COLUMNS} from ${AUDIT_PAID_CALL_FROM}
    and ($1::uuid is null or u.id > $1::uuid) order by u.id limit $2`,
};

const ACCOUNT_BY_WALLET: Statement = {
  name: 'cm_audit_account_by_wallet',
  text: `select ${AUDIT_ACCOUNT_COLUMNS} from accounts a where a.wallet_address = $1`,
};

const ACCOUNT_ENTRIES: Statement = {
  name: 'cm_audit_account_entries',
  text: `select ${AUDIT_ENTRY_COLUMNS} from ${AUDIT_ENTRY_FROM} where e.account_id = $1::uuid order by e.seq`,
};

const SNAPSHOT = { isolationLevel: IsolationLevel.REPEATABLE_READ, readOnly: true } as const;

/** Up to `limit` accounts by id, after the account `afterId` when given. */
export async function findAuditAccounts(
  em: Em,
  afterId: string | null,
  limit: number,
): Promise<AuditAccount[]> {
  const rows =
    afterId === null
      ? await sqlOf(em).query(ACCOUNTS_PAGE, [limit])
      : await sqlOf(em).query(ACCOUNTS_PAGE_AFTER, [afterId, limit]);
  return rows.map(auditAccountFromRow);
}

/** Up to `limit` ledger entries by (account id, seq), after the entry `after` when given. */
export async function findAuditEntries(
  em: Em,
  after: { accountId: string; seq: number } | null,
  limit: number,
): Promise<AuditLedgerEntry[]> {
  const rows =
    after === null
      ? await sqlOf(em).query(ENTRIES_PAGE, [limit])
      : await sqlOf(em).query(ENTRIES_PAGE_AFTER, [after.accountId, after.seq, limit]);
  return rows.map(auditEntryFromRow);
}

/** Up to `limit` calls paid per request by id, after the call `afterId` when given. */
export async function findAuditPaidCalls(
  em: Em,
  afterId: string | null,
  limit: number,
): Promise<AuditPaidCall[]> {
  const rows = await sqlOf(em).query(PAID_CALLS_PAGE, [afterId, limit]);
  return rows.map(auditPaidCallFromRow);
}

/** Every account and entry, read in one REPEATABLE READ transaction (one consistent snapshot). */
export function readAuditSnapshot(
  em: Em,
): Promise<{ accounts: AuditAccount[]; entries: AuditLedgerEntry[]; paidCalls: AuditPaidCall[] }> {
  return em.transactional((tx) => readAllAuditRecords(sqlOf(tx).query), SNAPSHOT);
}

/** One account and its whole ledger from one snapshot, or null when the wallet has no account. */
export function readAccountLedger(
  em: Em,
  walletAddress: string,
): Promise<{ account: AuditAccount; entries: AuditLedgerEntry[] } | null> {
  return em.transactional(async (tx) => {
    const { query } = sqlOf(tx);
    const [row] = await query(ACCOUNT_BY_WALLET, [walletAddress]);
    if (!row) return null;
    const account = auditAccountFromRow(row);
    const entries = (await query(ACCOUNT_ENTRIES, [account.accountId])).map(auditEntryFromRow);
    return { account, entries };
  }, SNAPSHOT);
}
