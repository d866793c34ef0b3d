/**
 * The wire shapes of audit records: the auditor GraphQL types (`AuditAccount`, `AuditLedgerEntry`), the
 * per-account proof document and the CLI's JSON report all use these field names, with bigints as
 * decimal strings and money in micro-USD (`...MicroUsd`), so a record read over GraphQL, from a proof
 * file or from the database parses the same way.
 */
import type {
  AuditAccount,
  AuditLedgerEntry,
  AuditPaidCall,
  AuditReport,
  DepositReference,
} from './audit-types.ts';
import { AuditFormatError, big, int, nullableStr, object, str } from './record-fields.ts';

export interface DepositReferenceJson {
  chainId: number;
  txHash: string;
  logIndex: number;
  blockNumber: string;
  from: string;
  amountToken: string;
  amountMicroUsd: string;
  /** CREDITED, or REORGED / PENDING after a reorg deeper than CONFIRMATIONS took the credit back. */
  status: string;
}

export interface AuditLedgerEntryJson {
  accountId: string;
  seq: number;
  amountMicroUsd: string;
  balanceAfterMicroUsd: string;
  reason: string;
  referenceId: string;
  /** ISO-8601 with milliseconds, exactly as hashed. */
  createdAt: string;
  prevHash: string | null;
  hash: string;
  /** Set on entries an operator wrote; hashed with the entry (absent in documents written before). */
  operator?: string | null;
  reasonText?: string | null;
  deposit: DepositReferenceJson | null;
}

export interface AuditAccountJson {
  accountId: string;
  walletAddress: string;
  balanceMicroUsd: string;
  /** What calls in flight hold (absent in documents written before). */
  heldMicroUsd?: string;
  /** What deep reorgs left the account owing. */
  debtMicroUsd: string;
  ledgerSeq: number;
  ledgerHead: string | null;
}

export function ledgerEntryToJson(entry: AuditLedgerEntry): AuditLedgerEntryJson {
  return {
    accountId: entry.accountId,
    seq: entry.seq,
    amountMicroUsd: entry.amount.toString(),
    balanceAfterMicroUsd: entry.balanceAfter.toString(),
    reason: entry.reason,
    referenceId: entry.referenceId,
    createdAt: entry.createdAt.toISOString(),
    prevHash: entry.prevHash ?? null,
    hash: entry.hash,
    operator: entry.operator ?? null,
    reasonText: entry.reasonText ?? null,
    deposit: entry.deposit ? depositToJson(entry.deposit) : null,
  };
}

function depositToJson(deposit: DepositReference): DepositReferenceJson {
  return {
    chainId: deposit.chainId,
    txHash: deposit.txHash,
    logIndex: deposit.logIndex,
    blockNumber: deposit.blockNumber.toString(),
    from: deposit.from,
    amountToken: deposit.amountToken.toString(),
    amountMicroUsd: deposit.amount.toString(),
    status: deposit.status,
  };
}

export function accountToJson(account: AuditAccount): AuditAccountJson {
  return {
    accountId: account.accountId,
    walletAddress: account.walletAddress,
    balanceMicroUsd: account.balance.toString(),
    ...(account.held === undefined ? {} : { heldMicroUsd: account.held.toString() }),
    debtMicroUsd: account.debt.toString(),
    ledgerSeq: account.ledgerSeq,
    ledgerHead: account.ledgerHead,
  };
}

export function ledgerEntryFromJson(value: unknown, where = 'ledger entry'): AuditLedgerEntry {
  const record = object(value, where);
  const createdAt = new Date(str(record, 'createdAt', where));
  if (Number.isNaN(createdAt.getTime())) throw new AuditFormatError(`${where}: "createdAt" is not a date`);
  const rawDeposit = record.deposit;
  let deposit: DepositReference | null = null;
  if (rawDeposit !== null && rawDeposit !== undefined) {
    const d = object(rawDeposit, `${where}.deposit`);
    const w = `${where}.deposit`;
    deposit = {
      chainId: int(d, 'chainId', w),
      txHash: str(d, 'txHash', w).toLowerCase(),
      logIndex: int(d, 'logIndex', w),
      blockNumber: big(d, 'blockNumber', w),
      from: str(d, 'from', w),
      amountToken: big(d, 'amountToken', w),
      amount: big(d, 'amountMicroUsd', w),
      // Documents written before deep-reorg debts carry no status: their deposits were CREDITED.
      status: d.status === undefined ? 'CREDITED' : str(d, 'status', w),
    };
  }
  return {
    accountId: str(record, 'accountId', where),
    seq: int(record, 'seq', where),
    amount: big(record, 'amountMicroUsd', where),
    balanceAfter: big(record, 'balanceAfterMicroUsd', where),
    reason: str(record, 'reason', where),
    referenceId: str(record, 'referenceId', where),
    createdAt,
    prevHash: nullableStr(record, 'prevHash', where),
    hash: str(record, 'hash', where),
    operator: nullableStr(record, 'operator', where),
    reasonText: nullableStr(record, 'reasonText', where),
    deposit,
  };
}

/** A paid call as the auditor GraphQL type `AuditPaidCall` serves it. */
export function paidCallFromJson(value: unknown, where = 'paid call'): AuditPaidCall {
  const record = object(value, where);
  const scheme = str(record, 'scheme', where);
  if (scheme !== 'exact' && scheme !== 'upto') throw new AuditFormatError(`${where}: scheme ${scheme}`);
  const block = nullableStr(record, 'settlementBlock', where);
  if (typeof record.settlementCredited !== 'boolean') {
    throw new AuditFormatError(`${where}: "settlementCredited" is not a boolean`);
  }
  return {
    usageId: str(record, 'usageId', where),
    accountId: str(record, 'accountId', where),
    payer: str(record, 'payer', where),
    scheme,
    status: str(record, 'status', where),
    holdAmount: big(record, 'holdAmountMicroUsd', where),
    userPrice: big(record, 'userPriceMicroUsd', where),
    txHash: nullableStr(record, 'txHash', where)?.toLowerCase() ?? null,
    settlementBlock: block === null ? null : BigInt(block),
    settlementCredited: record.settlementCredited,
  };
}

export function accountFromJson(value: unknown, where = 'account'): AuditAccount {
  const record = object(value, where);
  return {
    accountId: str(record, 'accountId', where),
    walletAddress: str(record, 'walletAddress', where),
    balance: big(record, 'balanceMicroUsd', where),
    ...(record.heldMicroUsd === undefined || record.heldMicroUsd === null
      ? {}
      : { held: big(record, 'heldMicroUsd', where) }),
    // Documents written before deep-reorg debts carry none: the account owed nothing.
    debt: record.debtMicroUsd === undefined ? 0n : big(record, 'debtMicroUsd', where),
    ledgerSeq: int(record, 'ledgerSeq', where),
    ledgerHead: nullableStr(record, 'ledgerHead', where),
  };
}

function summaryToJson({
  totalDue,
  totalCredited,
  totalBalance,
  totalDebt,
  totalOperatorAdjusted,
  ...counts
}: AuditReport['summary']) {
  return {
    ...counts,
    totalOperatorAdjustedMicroUsd: totalOperatorAdjusted.toString(),
    totalDueMicroUsd: totalDue.toString(),
    totalCreditedMicroUsd: totalCredited.toString(),
    totalBalanceMicroUsd: totalBalance.toString(),
    totalDebtMicroUsd: totalDebt.toString(),
  };
}

/** The solvency figures in micro-USD, as decimal strings. */
function solvencyToJson(s: AuditReport['solvency']) {
  const text = (value: bigint | null) => (value === null ? null : value.toString());
  return {
    treasuryBalanceMicroUsd: text(s.treasuryBalance),
    asOfBlock: s.asOfBlock.toString(),
    outstandingCreditsMicroUsd: s.outstandingCredits.toString(),
    heldCreditsMicroUsd: text(s.heldCredits),
    creditedDepositsMicroUsd: s.creditedDeposits.toString(),
    chargedUsageMicroUsd: s.chargedUsage.toString(),
    operatorAdjustmentsMicroUsd: s.operatorAdjustments.toString(),
    accountDebtMicroUsd: s.accountDebt.toString(),
  };
}

/** The report as JSON-safe values: bigints as decimal strings (micro-USD for money). */
export function auditReportToJson(report: AuditReport) {
  return {
    consistent: report.consistent,
    chainId: report.chainId,
    tokenAddress: report.tokenAddress,
    treasuryAddress: report.treasuryAddress,
    confirmations: report.confirmations,
    fromBlock: report.fromBlock.toString(),
    head: report.head.toString(),
    summary: summaryToJson(report.summary),
    solvency: solvencyToJson(report.solvency),
    counts: report.counts,
    reversedCredits: report.reversedCredits.map((r) => ({
      ...r,
      blockNumber: r.blockNumber.toString(),
      amount: r.amount.toString(),
      owed: r.owed.toString(),
    })),
    unpaidCalls: report.unpaidCalls.map((u) => ({ ...u, userPrice: u.userPrice.toString() })),
    discrepancies: report.discrepancies.map((d) => ({
      ...d,
      blockNumber: d.blockNumber === null ? null : d.blockNumber.toString(),
    })),
  };
}
