import { tokenUnitsToMicroUsd } from '../money.ts';
import type { AuditAccount, ChainTransfer, Discrepancy } from './audit-types.ts';

/** The chain side of the report: which transfers were due, and those due with no credit. */
export interface TransfersDueCheck {
  due: number;
  notYetDue: number;
  /** micro-USD of the transfers due. */
  totalDue: bigint;
  /** A TRANSFER_NOT_CREDITED for each transfer due that no credit matches, in `transfers` order. */
  discrepancies: Discrepancy[];
}

/**
 * Every creditable transfer with `confirmations` blocks on top must be matched by a credit to its sender;
 * younger ones are counted as not yet due.
 *
 * @param matched the `transferKey`s of the transfers credits match
 * @param accountOfWallet snapshot accounts by lowercase wallet, to name the account a missing credit was due to
 */
export function checkTransfersCredited(
  transfers: ReadonlyMap<string, ChainTransfer>,
  matched: ReadonlySet<string>,
  accountOfWallet: ReadonlyMap<string, AuditAccount>,
  scope: { head: bigint; confirmations: number; tokenDecimals: number },
): TransfersDueCheck {
  const check: TransfersDueCheck = { due: 0, notYetDue: 0, totalDue: 0n, discrepancies: [] };
  for (const [key, transfer] of transfers) {
    if (scope.head - transfer.blockNumber < BigInt(scope.confirmations)) {
      if (!matched.has(key)) check.notYetDue++;
      continue;
    }
    check.due++;
    const amount = tokenUnitsToMicroUsd(transfer.value, scope.tokenDecimals);
    check.totalDue += amount;
    if (matched.has(key)) continue;
    const receiver = accountOfWallet.get(transfer.from.toLowerCase());
    check.discrepancies.push({
      kind: 'TRANSFER_NOT_CREDITED',
      accountId: receiver?.accountId ?? null,
      walletAddress: transfer.from,
      txHash: transfer.txHash,
      logIndex: transfer.logIndex,
      blockNumber: transfer.blockNumber,
      seq: null,
      expected: amount.toString(),
      actual: null,
      message: `transfer of ${transfer.value} token units from ${transfer.from} in block ${transfer.blockNumber} has ${scope.head - transfer.blockNumber} confirmations and no credit`,
    });
  }
  return check;
}
