import { USDC_DECIMALS } from '../money.ts';
import { checkAccountLedger, checkAdjustmentsAccountedFor } from './account-ledger-check.ts';
import { depositCorrections, gatherChainSide, gatherPlatformSide } from './audit-sides.ts';
import {
  type AuditInput,
  type AuditReport,
  DISCREPANCY_KINDS,
  type Discrepancy,
  type DiscrepancyKind,
  type ReversedCredit,
} from './audit-types.ts';
import { checkAccountCredits, standingCredits } from './deposit-credit-check.ts';
import { checkPaidCalls } from './paid-call-check.ts';
import { checkTransfersCredited } from './uncredited-transfers.ts';

/**
 * The audit itself, a pure function: every credit re-derived from the chain's transfers, every
 * account's hash chain and balance recomputed. Used as-is by the CLI and by the API's `auditReport`.
 *
 * A deposit's credit is its DEPOSIT entry plus every ADJUSTMENT, in any account, whose referenceId is the
 * deposit's id (the DEPOSIT entry's referenceId): after a reorg deeper than CONFIRMATIONS, the reversal
 * (negative, up to what the account held), payments of the debt it left (negative) and the re-credit when
 * the transfer is mined again (positive). While its transfer is on chain and its deposit CREDITED, a
 * credit must sum to the transfer's amount; once the transfer is gone, to 0, or (deposit not CREDITED) to
 * what the account still owes for it, which is part of the account's stored debt.
 *
 * - CREDIT_WITHOUT_TRANSFER: a DEPOSIT entry whose log is not a creditable Transfer to the treasury on
 *   this chain (unless ADJUSTMENTs referencing its deposit reversed it, in full or down to a debt:
 *   `creditsReversed`), or whose transfer was paid by another wallet than the credited account's.
 * - TRANSFER_NOT_CREDITED: a creditable transfer with `confirmations` blocks on top and no credit to its
 *   sender (a deposit taken back by a deep reorg and not credited again counts as none).
 * - AMOUNT_MISMATCH: a credit (DEPOSIT entry and the ADJUSTMENTs referencing its deposit) that does not sum
 *   to the transferred value while the transfer is on chain, or that sums to less than 0 or more than the
 *   deposit once it is gone, or a deposit record that differs from the transfer.
 * - DUPLICATE_CREDIT: a second credit of one log.
 * - BALANCE_MISMATCH: a stored balance that is not the sum of the account's entries, a balanceAfter that
 *   does not follow from the previous one, or a stored debt that is not what the account's deposits taken
 *   back by deep reorgs still owe.
 *   An ADJUSTMENT that corrects no deposit of the records and carries no operator is a change of balance
 *   that neither the chain nor an operator accounts for: CREDIT_WITHOUT_TRANSFER. Operators' ADJUSTMENTs
 *   (`adjustBalance`: operator and reason set, and hashed) are legitimate and counted in the summary.
 * - HASH_CHAIN_BROKEN: a hash that does not recompute, a prevHash that does not link, a missing seq, or
 *   a stored ledger head that is not the newest entry's hash.
 * - PAID_CALL_MISMATCH: a call paid per request (x402) not charged exactly once at its price to its payer,
 *   or whose settlement on chain is missing or does not cover it as signed (`paid-call-check.ts`); calls
 *   served and never paid are listed in `unpaidCalls`.
 *
 * @example
 * const report = checkAudit({ chainId, tokenAddress, treasuryAddress, confirmations, fromBlock: 0n, head,
 *   transfers, accounts, entries });
 * if (!report.consistent) console.log(report.discrepancies);
 */
export function checkAudit(input: AuditInput): AuditReport {
  const tokenDecimals = input.tokenDecimals ?? USDC_DECIMALS;
  const { transfers, notCreditable } = gatherChainSide(input);
  const { accounts, entriesByAccount, snapshotIds, accountOfWallet } = gatherPlatformSide(input);
  const creditScope = {
    chainId: input.chainId,
    fromBlock: input.fromBlock,
    head: input.head,
    tokenDecimals,
    transfers,
    corrections: depositCorrections(input.entries),
    standingCredits: standingCredits(input.entries, input.chainId, transfers, accounts),
  };

  // The deposits the records credit: an ADJUSTMENT referencing one corrects it after a deep reorg.
  const depositIds = new Set(input.entries.filter((e) => e.reason === 'DEPOSIT').map((e) => e.referenceId));
  const discrepancies: Discrepancy[] = [];
  const reversedCredits: ReversedCredit[] = [];
  const matched = new Set<string>();
  let totalBalance = 0n;
  let totalDebt = 0n;
  let depositCredits = 0;
  let totalCredited = 0n;
  let creditsBeforeFromBlock = 0;
  let creditsAfterHead = 0;
  let operatorAdjustments = 0;
  let totalOperatorAdjusted = 0n;
  const solvency = {
    heldCredits: 0n as bigint | null,
    creditedDeposits: 0n,
    chargedUsage: 0n,
    operatorAdjustments: 0n,
  };
  for (const account of accounts.values()) {
    const entries = entriesByAccount.get(account.accountId) ?? [];
    const inSnapshot = snapshotIds.has(account.accountId);
    if (inSnapshot) {
      totalBalance += account.balance;
      totalDebt += account.debt;
      solvency.heldCredits =
        solvency.heldCredits === null || account.held === undefined
          ? null
          : solvency.heldCredits + account.held;
    }
    for (const entry of entries) {
      const byOperator = entry.reason === 'ADJUSTMENT' && Boolean(entry.operator);
      if (byOperator) {
        operatorAdjustments++;
        totalOperatorAdjusted += entry.amount;
      }
      // The solvency figures are the snapshot's: what its balances sum.
      if (!inSnapshot || entry.seq > account.ledgerSeq) continue;
      if (entry.reason === 'USAGE') solvency.chargedUsage -= entry.amount;
      else if (byOperator) solvency.operatorAdjustments += entry.amount;
      else solvency.creditedDeposits += entry.amount;
    }
    discrepancies.push(...checkAccountLedger(account, entries, inSnapshot));
    discrepancies.push(...checkAdjustmentsAccountedFor(account, entries, depositIds));
    const credits = checkAccountCredits(account, entries, inSnapshot, creditScope);
    discrepancies.push(...credits.discrepancies);
    reversedCredits.push(...credits.reversedCredits);
    for (const key of credits.matchedTransferKeys) matched.add(key);
    depositCredits += credits.depositCredits;
    totalCredited += credits.totalCredited;
    creditsBeforeFromBlock += credits.creditsBeforeFromBlock;
    creditsAfterHead += credits.creditsAfterHead;
  }

  const transfersDue = checkTransfersCredited(transfers, matched, accountOfWallet, {
    head: input.head,
    confirmations: input.confirmations,
    tokenDecimals,
  });
  discrepancies.push(...transfersDue.discrepancies);

  const paid = checkPaidCalls(input.paidCalls ?? [], {
    fromBlock: input.fromBlock,
    head: input.head,
    confirmations: input.confirmations,
    transfers,
    entries: input.entries,
    walletOfAccount: (accountId) => accounts.get(accountId)?.walletAddress ?? null,
  });
  discrepancies.push(...paid.discrepancies);

  const counts = Object.fromEntries(DISCREPANCY_KINDS.map((kind) => [kind, 0])) as Record<
    DiscrepancyKind,
    number
  >;
  for (const d of discrepancies) counts[d.kind]++;
  return {
    chainId: input.chainId,
    tokenAddress: input.tokenAddress,
    treasuryAddress: input.treasuryAddress,
    confirmations: input.confirmations,
    tokenDecimals,
    fromBlock: input.fromBlock,
    head: input.head,
    consistent: discrepancies.length === 0,
    solvency: {
      treasuryBalance: input.treasuryBalance ?? null,
      asOfBlock: input.head,
      outstandingCredits: totalBalance,
      ...solvency,
      accountDebt: totalDebt,
    },
    summary: {
      transfersOnChain: transfers.size + notCreditable,
      transfersNotCreditable: notCreditable,
      transfersDue: transfersDue.due,
      transfersNotYetDue: transfersDue.notYetDue,
      transfersCredited: matched.size,
      accounts: input.accounts.length,
      ledgerEntries: input.entries.length,
      depositCredits,
      creditsBeforeFromBlock,
      creditsAfterHead,
      creditsReversed: reversedCredits.length,
      totalDue: transfersDue.totalDue,
      totalCredited,
      totalBalance,
      totalDebt,
      operatorAdjustments,
      totalOperatorAdjusted,
      paidCallsChecked: paid.checked,
      paidCallsAwaiting: paid.awaiting,
      paidCallsUnpaid: paid.unpaid.length,
    },
    counts,
    discrepancies,
    reversedCredits,
    unpaidCalls: paid.unpaid,
  };
}
