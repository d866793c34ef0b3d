import { tokenUnitsToMicroUsd } from '../money.ts';
import { sameAddress, transferKey } from './audit-sides.ts';
import type {
  AuditAccount,
  AuditLedgerEntry,
  ChainTransfer,
  DepositReference,
  Discrepancy,
  ReversedCredit,
} from './audit-types.ts';
import { type DiscrepancyLocation, discrepancy, discrepancyAt } from './discrepancy-location.ts';

/** What a credit is checked against: the audited range, the chain's transfers and the platform's corrections. */
export interface CreditCheckScope {
  chainId: number;
  fromBlock: bigint;
  head: bigint;
  tokenDecimals: number;
  /** Creditable transfers in range, keyed by `transferKey`. */
  transfers: ReadonlyMap<string, ChainTransfer>;
  /** ADJUSTMENTs summed by the deposit id they reference. */
  corrections: ReadonlyMap<string, bigint>;
  /** The credit that stands for each credited log (`standingCredits`). */
  standingCredits: ReadonlyMap<string, AuditLedgerEntry>;
}

/**
 * The credit that stands for each log credited on the audited chain. When one log is credited more than
 * once, it is the one to the transfer's sender (then the oldest); every other one is the duplicate,
 * whatever order the accounts come in.
 */
export function standingCredits(
  entries: readonly AuditLedgerEntry[],
  chainId: number,
  transfers: ReadonlyMap<string, ChainTransfer>,
  accounts: ReadonlyMap<string, AuditAccount>,
): Map<string, AuditLedgerEntry> {
  const creditedBy = new Map<string, AuditLedgerEntry>();
  const rank = (entry: AuditLedgerEntry, transfer: ChainTransfer | undefined) => {
    const wallet = accounts.get(entry.accountId)?.walletAddress ?? '';
    return [transfer && sameAddress(wallet, transfer.from) ? 0 : 1, entry.createdAt.getTime()] as const;
  };
  for (const entry of entries) {
    if (entry.reason !== 'DEPOSIT' || !entry.deposit || entry.deposit.chainId !== chainId) continue;
    const key = transferKey(entry.deposit.txHash, entry.deposit.logIndex);
    const current = creditedBy.get(key);
    if (!current) {
      creditedBy.set(key, entry);
      continue;
    }
    const transfer = transfers.get(key);
    const [a, b] = [rank(entry, transfer), rank(current, transfer)];
    if (a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])) creditedBy.set(key, entry);
  }
  return creditedBy;
}

/** What checking one account's credits found, to add to the report. */
export interface AccountCreditsCheck {
  /** Discrepancies of its DEPOSIT entries in seq order, then of its stored debt. */
  discrepancies: Discrepancy[];
  /** Transfers its credits match (each by the credit that stands). */
  matchedTransferKeys: string[];
  reversedCredits: ReversedCredit[];
  depositCredits: number;
  totalCredited: bigint;
  creditsBeforeFromBlock: number;
  creditsAfterHead: number;
}

/**
 * One account's credits against the chain, each net of the ADJUSTMENTs referencing its deposit, then (for
 * an account of the snapshot) its stored debt against what its deposits taken back by deep reorgs still owe.
 *
 * @param entries the account's entries in seq order
 */
export function checkAccountCredits(
  account: AuditAccount,
  entries: readonly AuditLedgerEntry[],
  inSnapshot: boolean,
  scope: CreditCheckScope,
): AccountCreditsCheck {
  const check: AccountCreditsCheck = {
    discrepancies: [],
    matchedTransferKeys: [],
    reversedCredits: [],
    depositCredits: 0,
    totalCredited: 0n,
    creditsBeforeFromBlock: 0,
    creditsAfterHead: 0,
  };
  let owedByDeposits = 0n;
  for (const entry of entries) {
    if (entry.reason !== 'DEPOSIT') continue;
    check.depositCredits++;
    check.totalCredited += entry.amount;
    const credit = checkDepositCredit(account, entry, scope);
    owedByDeposits += credit.owed;
    if (credit.discrepancy) check.discrepancies.push(credit.discrepancy);
    if (credit.reversed) check.reversedCredits.push(credit.reversed);
    if (credit.matchedTransferKey) check.matchedTransferKeys.push(credit.matchedTransferKey);
    if (credit.outsideRange === 'beforeFromBlock') check.creditsBeforeFromBlock++;
    if (credit.outsideRange === 'afterHead') check.creditsAfterHead++;
  }
  // Entries newer than the account snapshot may have changed the debt since it was read: the next audit.
  if (inSnapshot && !entries.some((e) => e.seq > account.ledgerSeq) && owedByDeposits !== account.debt) {
    check.discrepancies.push(
      discrepancy({
        kind: 'BALANCE_MISMATCH',
        ...discrepancyAt(account, null),
        expected: owedByDeposits.toString(),
        actual: account.debt.toString(),
        message: `stored debt ${account.debt} is not what the account's deposits taken back by deep reorgs still owe (${owedByDeposits})`,
      }),
    );
  }
  return check;
}

/** What checking one DEPOSIT entry found. */
interface DepositCreditCheck {
  /** micro-USD the account still owes for it (its deposit is not CREDITED any more); 0 otherwise. */
  owed: bigint;
  discrepancy?: Discrepancy;
  /** A credit of a transfer the audit does not cover: not matched against the chain. */
  outsideRange?: 'beforeFromBlock' | 'afterHead';
  reversed?: ReversedCredit;
  matchedTransferKey?: string;
}

/**
 * One DEPOSIT entry against the chain: it must name a log of the audited chain and be the credit that
 * stands for it; in range, its transfer must be on chain, paid by the account's wallet and credited in
 * full, or be gone with the credit reversed after a deep reorg.
 */
function checkDepositCredit(
  account: AuditAccount,
  entry: AuditLedgerEntry,
  scope: CreditCheckScope,
): DepositCreditCheck {
  const at = discrepancyAt(account, entry);
  const deposit = entry.deposit;
  if (!deposit) {
    return {
      owed: 0n,
      discrepancy: discrepancy({
        kind: 'CREDIT_WITHOUT_TRANSFER',
        ...at,
        actual: entry.amount.toString(),
        message: `DEPOSIT entry ${entry.seq} names no on-chain transfer`,
      }),
    };
  }
  if (deposit.chainId !== scope.chainId) {
    return {
      owed: 0n,
      discrepancy: discrepancy({
        kind: 'CREDIT_WITHOUT_TRANSFER',
        ...at,
        expected: String(scope.chainId),
        actual: String(deposit.chainId),
        message: `DEPOSIT entry ${entry.seq} credits a transfer on chain ${deposit.chainId}, not the audited chain ${scope.chainId}`,
      }),
    };
  }
  const key = transferKey(deposit.txHash, deposit.logIndex);
  const first = scope.standingCredits.get(key);
  if (first && first !== entry) {
    return {
      owed: 0n,
      discrepancy: discrepancy({
        kind: 'DUPLICATE_CREDIT',
        ...at,
        actual: entry.amount.toString(),
        message: `transfer ${deposit.txHash}#${deposit.logIndex} credited again (the credit that stands is entry ${first.seq} of account ${first.accountId})`,
      }),
    };
  }
  const corrected = scope.corrections.get(entry.referenceId) ?? 0n;
  const net = entry.amount + corrected;
  // A deposit that is not CREDITED keeps what was not taken back as the account's debt.
  const taken = deposit.status !== 'CREDITED';
  const owed = taken ? net : 0n;
  if (deposit.blockNumber < scope.fromBlock) return { owed, outsideRange: 'beforeFromBlock' };
  // Credited after the audit read the head (records are read after it): the next audit covers it.
  if (deposit.blockNumber > scope.head) return { owed, outsideRange: 'afterHead' };

  const transfer = scope.transfers.get(key);
  if (!transfer) {
    if (net === 0n || (taken && net > 0n && net <= entry.amount)) {
      // Reversed after a deep reorg, in full or down to a debt (checked against the stored debt):
      // reported in the summary, not a discrepancy.
      const reversed: ReversedCredit = {
        accountId: account.accountId,
        walletAddress: account.walletAddress || null,
        txHash: deposit.txHash,
        logIndex: deposit.logIndex,
        blockNumber: deposit.blockNumber,
        seq: entry.seq,
        amount: entry.amount,
        owed: net,
      };
      return { owed, reversed };
    }
    if (net < 0n || net > entry.amount) {
      return {
        owed,
        discrepancy: discrepancy({
          kind: 'AMOUNT_MISMATCH',
          ...at,
          expected: '0',
          actual: net.toString(),
          message: `the transfer ${deposit.txHash}#${deposit.logIndex} is gone from the chain, and its credit of ${entry.amount} nets to ${net} micro-USD with the ADJUSTMENTs referencing it`,
        }),
      };
    }
    return {
      owed,
      discrepancy: discrepancy({
        kind: 'CREDIT_WITHOUT_TRANSFER',
        ...at,
        expected: '0',
        actual: net.toString(),
        message: `no creditable Transfer to the treasury at ${deposit.txHash}#${deposit.logIndex} on chain ${scope.chainId} (up to block ${scope.head})${corrected === 0n ? '' : `; only ${-corrected} of the ${entry.amount} credited was reversed`}`,
      }),
    };
  }
  if (account.walletAddress && !sameAddress(transfer.from, account.walletAddress)) {
    return {
      owed,
      discrepancy: discrepancy({
        kind: 'CREDIT_WITHOUT_TRANSFER',
        ...at,
        expected: transfer.from,
        actual: account.walletAddress,
        message: `transfer ${transfer.txHash}#${transfer.logIndex} was paid by ${transfer.from} but credited to ${account.walletAddress}`,
      }),
    };
  }
  const due = tokenUnitsToMicroUsd(transfer.value, scope.tokenDecimals);
  if (taken && entry.amount === due && net >= 0n && net <= due) {
    // Taken back by a deep reorg and mined again, not credited again yet: owed until then. Left
    // unmatched, so once it is due it is reported as TRANSFER_NOT_CREDITED.
    return { owed };
  }
  return {
    owed,
    discrepancy: creditAmountDiscrepancy(at, entry, deposit, transfer, due, net),
    matchedTransferKey: key,
  };
}

/** How a credit of a transfer on chain differs from it, if it does: credited, net or recorded amount. */
function creditAmountDiscrepancy(
  at: DiscrepancyLocation,
  entry: AuditLedgerEntry,
  deposit: DepositReference,
  transfer: ChainTransfer,
  due: bigint,
  net: bigint,
): Discrepancy | undefined {
  if (entry.amount !== due) {
    return discrepancy({
      kind: 'AMOUNT_MISMATCH',
      ...at,
      expected: due.toString(),
      actual: entry.amount.toString(),
      message: `credited ${entry.amount} micro-USD for a transfer of ${transfer.value} token units (${due} micro-USD)`,
    });
  }
  if (net !== due) {
    return discrepancy({
      kind: 'AMOUNT_MISMATCH',
      ...at,
      expected: due.toString(),
      actual: net.toString(),
      message: `the transfer ${transfer.txHash}#${transfer.logIndex} is on chain, but its DEPOSIT entry and the ADJUSTMENTs referencing it sum to ${net} micro-USD, not ${due}`,
    });
  }
  if (deposit.amountToken !== transfer.value || deposit.amount !== due) {
    return discrepancy({
      kind: 'AMOUNT_MISMATCH',
      ...at,
      expected: `${transfer.value} token units / ${due} micro-USD`,
      actual: `${deposit.amountToken} token units / ${deposit.amount} micro-USD`,
      message: `the deposit record of ${transfer.txHash}#${transfer.logIndex} differs from the transfer on chain`,
    });
  }
  return undefined;
}
