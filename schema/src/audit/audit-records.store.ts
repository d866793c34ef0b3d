/**
 * How the audit reads the platform's tables (accounts, ledger_entries, deposits): one select list, one
 * checked row parser per table and the statements that read everything, used by the API (auditor queries,
 * `auditReport`, proofs) and by the CLI's `--database` path, so both read exactly the same fields.
 * Read-only. The API's paged and per-account reads embed the select lists (`api/src/modules/audit/audit.store.ts`).
 */
import type { AuditAccount, AuditLedgerEntry, AuditPaidCall, DepositReference } from './audit-types.ts';
import { AuditFormatError, big, date, type Fields, int, nullableStr, object, str } from './record-fields.ts';

export const AUDIT_ACCOUNT_COLUMNS =
  'a.id, a.wallet_address, a.balance::text as balance, a.held::text as held, a.debt::text as debt, a.ledger_seq, a.ledger_head';

export const AUDIT_ENTRY_COLUMNS = `e.account_id, e.seq, e.amount::text as amount, e.balance_after::text as balance_after,
  e.reason, e.reference_id, e.created_at, e.prev_hash, e.hash, e.operator, e.reason_text, d.chain_id, d.tx_hash, d.log_index,
  d.block_number::text as block_number, d.from_address, d.amount_token::text as amount_token,
  d.amount::text as deposit_amount, d.status as deposit_status`;

/** ledger_entries e joined to their deposit d (the DEPOSIT entries' chain reference). */
export const AUDIT_ENTRY_FROM = 'ledger_entries e left join deposits d on d.id = e.deposit_id';

/** A named statement without parameters (the shape of the API's `Statement`). */
interface AuditStatement {
  name: string;
  text: string;
}

const ALL_ACCOUNTS: AuditStatement = {
  name: 'cm_audit_all_accounts',
  text: `select ${AUDIT_ACCOUNT_COLUMNS} from accounts a order by a.id`,
};

const ALL_ENTRIES: AuditStatement = {
  name: 'cm_audit_all_entries',
  text: `select ${AUDIT_ENTRY_COLUMNS} from ${AUDIT_ENTRY_FROM} order by e.account_id, e.seq`,
};

/** The select list of calls paid per request (x402), with their settlement's deposit once indexed. */
export const AUDIT_PAID_CALL_COLUMNS = `u.id, u.account_id, u.payer_address, u.payment_scheme, u.status,
  u.hold_amount::text as hold_amount, u.user_price::text as user_price, u.payment_tx_hash,
  d.block_number::text as settlement_block, coalesce(d.status = 'CREDITED', false) as settlement_credited`;

/** usage_records u (paid calls only: add `and ...` to filter further) joined to its settlement's deposit d. */
export const AUDIT_PAID_CALL_FROM = `usage_records u
  left join lateral (select block_number, status from deposits where tx_hash = u.payment_tx_hash
    order by block_number desc limit 1) d on true
  where u.payment_scheme is not null`;

const ALL_PAID_CALLS: AuditStatement = {
  name: 'cm_audit_all_paid_calls',
  text: `select ${AUDIT_PAID_CALL_COLUMNS} from ${AUDIT_PAID_CALL_FROM} order by u.id`,
};

/** Runs one statement and returns its rows, as they come from the driver. */
type AuditQuery = (statement: AuditStatement, values: readonly unknown[]) => Promise<unknown[]>;

/**
 * Every account, then every entry. Run it inside one REPEATABLE READ transaction (the caller's `query`
 * belongs to it) so both reads see one consistent snapshot.
 */
export async function readAllAuditRecords(
  query: AuditQuery,
): Promise<{ accounts: AuditAccount[]; entries: AuditLedgerEntry[]; paidCalls: AuditPaidCall[] }> {
  const accounts = await query(ALL_ACCOUNTS, []);
  const entries = await query(ALL_ENTRIES, []);
  const paidCalls = await query(ALL_PAID_CALLS, []);
  return {
    accounts: accounts.map(auditAccountFromRow),
    entries: entries.map(auditEntryFromRow),
    paidCalls: paidCalls.map(auditPaidCallFromRow),
  };
}

/** A row of ALL_PAID_CALLS, checked. */
export function auditPaidCallFromRow(value: unknown): AuditPaidCall {
  const where = 'usage_records row';
  const row = object(value, where);
  const scheme = str(row, 'payment_scheme', where);
  if (scheme !== 'exact' && scheme !== 'upto')
    throw new AuditFormatError(`${where}: payment_scheme ${scheme}`);
  const block = nullableStr(row, 'settlement_block', where);
  return {
    usageId: str(row, 'id', where),
    accountId: str(row, 'account_id', where),
    payer: str(row, 'payer_address', where),
    scheme,
    status: str(row, 'status', where),
    holdAmount: big(row, 'hold_amount', where),
    userPrice: big(row, 'user_price', where),
    txHash: nullableStr(row, 'payment_tx_hash', where)?.toLowerCase() ?? null,
    settlementBlock: block === null ? null : BigInt(block),
    settlementCredited: row.settlement_credited === true || row.settlement_credited === 't',
  };
}

/** A row of `AUDIT_ACCOUNT_COLUMNS`, checked. */
export function auditAccountFromRow(value: unknown): AuditAccount {
  const where = 'accounts row';
  const row = object(value, where);
  return {
    accountId: str(row, 'id', where),
    walletAddress: str(row, 'wallet_address', where),
    balance: big(row, 'balance', where),
    held: big(row, 'held', where),
    debt: big(row, 'debt', where),
    ledgerSeq: int(row, 'ledger_seq', where),
    ledgerHead: nullableStr(row, 'ledger_head', where),
  };
}

/** A row of `AUDIT_ENTRY_COLUMNS` from `AUDIT_ENTRY_FROM`, checked. */
export function auditEntryFromRow(value: unknown): AuditLedgerEntry {
  const where = 'ledger_entries row';
  const row = object(value, where);
  return {
    accountId: str(row, 'account_id', where),
    seq: int(row, 'seq', where),
    amount: big(row, 'amount', where),
    balanceAfter: big(row, 'balance_after', where),
    reason: str(row, 'reason', where),
    referenceId: str(row, 'reference_id', where),
    createdAt: date(row, 'created_at', where),
    prevHash: nullableStr(row, 'prev_hash', where),
    hash: str(row, 'hash', where),
    operator: nullableStr(row, 'operator', where),
    reasonText: nullableStr(row, 'reason_text', where),
    deposit: row.tx_hash === null ? null : depositFromRow(row, where),
  };
}

/** The joined deposit's columns: every one is NOT NULL in `deposits`, so present when the join matched. */
function depositFromRow(row: Fields, where: string): DepositReference {
  return {
    chainId: int(row, 'chain_id', where),
    txHash: str(row, 'tx_hash', where).toLowerCase(),
    logIndex: int(row, 'log_index', where),
    blockNumber: big(row, 'block_number', where),
    from: str(row, 'from_address', where),
    amountToken: big(row, 'amount_token', where),
    amount: big(row, 'deposit_amount', where),
    status: str(row, 'deposit_status', where),
  };
}
