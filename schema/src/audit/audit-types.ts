/**
 * The audit's data model, shared by the audit CLI (`scripts/src/audit.ts`) and the API's `auditReport`:
 * both feed the same `checkAudit` with transfers read from the chain and records read from the platform.
 * Money is exact bigint micro-USD; a report serializes it as decimal strings (`auditReportToJson`).
 */
import type { StoredLedgerEntry } from '../ledger-hash.ts';

export const DISCREPANCY_KINDS = [
  'CREDIT_WITHOUT_TRANSFER',
  'TRANSFER_NOT_CREDITED',
  'AMOUNT_MISMATCH',
  'DUPLICATE_CREDIT',
  'BALANCE_MISMATCH',
  'HASH_CHAIN_BROKEN',
  'PAID_CALL_MISMATCH',
] as const;

export type DiscrepancyKind = (typeof DISCREPANCY_KINDS)[number];

/** One `Transfer(from, to = treasury, value)` log of the token, as read from the chain. */
export interface ChainTransfer {
  chainId: number;
  /** Lowercase. */
  txHash: string;
  logIndex: number;
  blockNumber: bigint;
  blockHash: string;
  /** EIP-55 checksummed. */
  from: string;
  /** Token base units. */
  value: bigint;
}

/** The chain reference a DEPOSIT ledger entry carries: the log it claims to credit. */
export interface DepositReference {
  chainId: number;
  txHash: string;
  logIndex: number;
  blockNumber: bigint;
  /** The sender the platform recorded. */
  from: string;
  /** Token base units the platform recorded. */
  amountToken: bigint;
  /** micro-USD the platform recorded on the deposit. */
  amount: bigint;
  /**
   * The deposit's status as the platform recorded it: CREDITED, or (after a reorg deeper than
   * CONFIRMATIONS took the credit back) REORGED, or PENDING again once the transfer is mined again.
   */
  status: string;
}

export interface AuditLedgerEntry extends StoredLedgerEntry {
  /** Present on DEPOSIT entries (null when the platform lost it, which the audit reports). */
  deposit: DepositReference | null;
}

/** An account as stored: its balance and the head of its hash chain. */
export interface AuditAccount {
  accountId: string;
  walletAddress: string;
  /** micro-USD. */
  balance: bigint;
  /** micro-USD that calls in flight hold (part of `balance`); absent in records that do not carry it. */
  held?: bigint;
  /**
   * micro-USD a reorg deeper than CONFIRMATIONS took back and the account could not pay: the sum, over its
   * deposits that are not CREDITED, of their DEPOSIT entry and the ADJUSTMENTs referencing them.
   */
  debt: bigint;
  /** Number of entries the account says it has (the newest seq). */
  ledgerSeq: number;
  /** Hash of the newest entry; null before the first. */
  ledgerHead: string | null;
}

export interface AuditScope {
  chainId: number;
  tokenAddress: string;
  treasuryAddress: string;
  confirmations: number;
  tokenDecimals?: number;
  /** First block scanned; credits of transfers before it are not matched against the chain. */
  fromBlock: bigint;
  /**
   * The chain head the audit read the logs up to. Read it BEFORE the platform's records: every transfer
   * due at `head` has then had time to be credited, and credits of later blocks are left to the next audit.
   */
  head: bigint;
}

/** A call paid per request (x402) as the platform recorded it, with its settlement's deposit if indexed. */
export interface AuditPaidCall {
  usageId: string;
  accountId: string;
  /** EIP-55 checksummed. */
  payer: string;
  scheme: 'exact' | 'upto';
  /** HELD, AWAITING_PAYMENT, BILLED, NEEDS_REVIEW, RELEASED or UNPAID. */
  status: string;
  /** micro-USD: the most it could cost (what `exact` settled). */
  holdAmount: bigint;
  /** micro-USD charged (or, UNPAID, owed). */
  userPrice: bigint;
  /** The settlement's transaction (lowercase), null when none was made. */
  txHash: string | null;
  /** The settlement's block as its deposit records it; null when not indexed. */
  settlementBlock: bigint | null;
  /** Whether the settlement's deposit is CREDITED. */
  settlementCredited: boolean;
}

/** A call paid per request that was served and never paid (listed by the audit). */
export interface UnpaidCall {
  usageId: string;
  accountId: string;
  payer: string;
  scheme: string;
  userPrice: bigint;
}

export interface AuditInput extends AuditScope {
  /** The token's balanceOf(treasury) at `head`, in micro-USD, when the caller read it: the solvency figures. */
  treasuryBalance?: bigint;
  /** Every Transfer(to = treasury) log of the token in [fromBlock, head] (any order). */
  transfers: readonly ChainTransfer[];
  accounts: readonly AuditAccount[];
  /** Ledger entries of those accounts (any order). Entries past an account's `ledgerSeq` are newer
   * than the account snapshot: they are matched against transfers and hash-checked, not summed. */
  entries: readonly AuditLedgerEntry[];
  /** Calls paid per request, checked against their settlements (omitted: not checked). */
  paidCalls?: readonly AuditPaidCall[];
}

export interface Discrepancy {
  kind: DiscrepancyKind;
  accountId: string | null;
  walletAddress: string | null;
  txHash: string | null;
  logIndex: number | null;
  blockNumber: bigint | null;
  /** The ledger entry concerned, when there is one. */
  seq: number | null;
  expected: string | null;
  actual: string | null;
  message: string;
}

export interface AuditSummary {
  /** Treasury transfer logs read from the chain in the range. */
  transfersOnChain: number;
  /** Zero-value transfers, mints and the treasury paying itself: they credit nothing. */
  transfersNotCreditable: number;
  /** Creditable transfers with at least `confirmations` blocks on top. */
  transfersDue: number;
  /** Creditable transfers still inside the confirmation window. */
  transfersNotYetDue: number;
  /** Transfers matched by exactly one credit of the right amount to the right account. */
  transfersCredited: number;
  accounts: number;
  ledgerEntries: number;
  depositCredits: number;
  /** DEPOSIT credits of transfers before `fromBlock` (not matched against the chain). */
  creditsBeforeFromBlock: number;
  /** DEPOSIT credits of transfers in blocks after `head` (credited while the audit ran; not matched). */
  creditsAfterHead: number;
  /** DEPOSIT credits whose transfer is gone (a reorg deeper than CONFIRMATIONS) and that ADJUSTMENT
   * entries referencing the deposit reversed, in full or up to what the account still owes for it. */
  creditsReversed: number;
  /** micro-USD. */
  totalDue: bigint;
  totalCredited: bigint;
  totalBalance: bigint;
  /** micro-USD the accounts owe after deep reorgs (the sum of their stored debts). */
  totalDebt: bigint;
  /** ADJUSTMENTs written by an operator (`adjustBalance`): each carries the operator and a reason. */
  operatorAdjustments: number;
  /** micro-USD, signed: their sum. */
  totalOperatorAdjusted: bigint;
  /** Paid calls (x402) billed and checked against their settlement. */
  paidCallsChecked: number;
  /** Paid calls priced and waiting for their settlement's credit. */
  paidCallsAwaiting: number;
  /** Paid calls served and never paid (listed in `unpaidCalls`). */
  paidCallsUnpaid: number;
}

/**
 * What the treasury holds against what the platform owes, from the account snapshot (its entries up to
 * each account's `ledgerSeq`), as the API's `solvency` query reports it. micro-USD.
 * outstandingCredits = creditedDeposits - chargedUsage + operatorAdjustments, since a balance is the sum of
 * its entries.
 */
export interface AuditSolvency {
  /** balanceOf(treasury) at `asOfBlock`; null when the audit did not read it (a proof file). */
  treasuryBalance: bigint | null;
  asOfBlock: bigint;
  /** The sum of the balances (what calls in flight hold included). */
  outstandingCredits: bigint;
  /** The sum of what calls in flight hold; null when the records do not carry it. */
  heldCredits: bigint | null;
  /** DEPOSIT entries and the ADJUSTMENTs no operator wrote (the corrections of deep reorgs). */
  creditedDeposits: bigint;
  /** Minus the sum of the USAGE entries. */
  chargedUsage: bigint;
  /** The sum of the operators' ADJUSTMENTs. */
  operatorAdjustments: bigint;
  accountDebt: bigint;
}

/**
 * A credit whose transfer a deep reorg removed, reversed by ADJUSTMENTs in full or up to what the account
 * still owes for it (`owed`, part of its debt): reported, not a discrepancy.
 */
export interface ReversedCredit {
  accountId: string;
  walletAddress: string | null;
  txHash: string;
  logIndex: number;
  blockNumber: bigint;
  seq: number;
  /** micro-USD credited. */
  amount: bigint;
  /** micro-USD of it not taken back yet: owed by the account (0 when reversed in full). */
  owed: bigint;
}

export interface AuditReport extends AuditScope {
  consistent: boolean;
  summary: AuditSummary;
  solvency: AuditSolvency;
  reversedCredits: ReversedCredit[];
  unpaidCalls: UnpaidCall[];
  counts: Record<DiscrepancyKind, number>;
  discrepancies: Discrepancy[];
}
