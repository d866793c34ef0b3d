/**
 * Calls paid per request (x402), checked against their settlements. A paid call's settlement is an ordinary
 * Transfer to the treasury (re-derived like any deposit by the rest of the audit); here each billed paid call
 * must point at a settlement on chain from its own payer that covers it, and carry exactly one USAGE entry of
 * its price in that payer's account:
 * - `exact`: the settlement moved the signed maximum (the call's hold); the price is at most that;
 * - `upto`: the settlement moved exactly the price.
 * A call served and not paid (UNPAID: an `upto` settlement that failed after serving and was not settled again
 * yet or whose authorization expired, or a settlement a deep reorg removed whose authorization expired before
 * it could be submitted again) is listed, not a discrepancy; a priced call whose confirmed settlement was
 * never credited (still AWAITING_PAYMENT) is one. A settlement submitted again (after a deep reorg, or for an
 * UNPAID call) is found by the call's current `payment_tx_hash`.
 */
import { sameAddress } from './audit-sides.ts';
import type {
  AuditLedgerEntry,
  AuditPaidCall,
  ChainTransfer,
  Discrepancy,
  UnpaidCall,
} from './audit-types.ts';

export interface PaidCallScope {
  fromBlock: bigint;
  head: bigint;
  confirmations: number;
  /** Every treasury transfer read from the chain, keyed by `transferKey`. */
  transfers: ReadonlyMap<string, ChainTransfer>;
  entries: readonly AuditLedgerEntry[];
  walletOfAccount: (accountId: string) => string | null;
}

export interface PaidCallResult {
  discrepancies: Discrepancy[];
  unpaid: UnpaidCall[];
  checked: number;
  awaiting: number;
}

export function checkPaidCalls(calls: readonly AuditPaidCall[], scope: PaidCallScope): PaidCallResult {
  const byTx = new Map<string, ChainTransfer[]>();
  for (const transfer of scope.transfers.values()) {
    const list = byTx.get(transfer.txHash) ?? [];
    list.push(transfer);
    byTx.set(transfer.txHash, list);
  }
  const usageEntries = new Map<string, AuditLedgerEntry[]>();
  for (const entry of scope.entries) {
    if (entry.reason !== 'USAGE') continue;
    const list = usageEntries.get(entry.referenceId) ?? [];
    list.push(entry);
    usageEntries.set(entry.referenceId, list);
  }
  const result: PaidCallResult = { discrepancies: [], unpaid: [], checked: 0, awaiting: 0 };
  for (const call of calls) {
    const wallet = scope.walletOfAccount(call.accountId);
    const problem = (message: string, expected: string | null = null, actual: string | null = null) =>
      result.discrepancies.push({
        kind: 'PAID_CALL_MISMATCH',
        accountId: call.accountId,
        walletAddress: wallet,
        txHash: call.txHash,
        logIndex: null,
        blockNumber: call.settlementBlock,
        seq: null,
        expected,
        actual,
        message: `paid call ${call.usageId} (${call.scheme}): ${message}`,
      });
    if (call.status === 'UNPAID') {
      result.unpaid.push({
        usageId: call.usageId,
        accountId: call.accountId,
        payer: call.payer,
        scheme: call.scheme,
        userPrice: call.userPrice,
      });
      continue;
    }
    const entries = usageEntries.get(call.usageId) ?? [];
    if (call.status === 'AWAITING_PAYMENT') {
      result.awaiting++;
      const due =
        call.settlementBlock !== null && scope.head - call.settlementBlock >= BigInt(scope.confirmations);
      if (due && call.settlementCredited)
        problem('its settlement is credited but the call was never charged');
      if (entries.length > 0) problem('awaiting its settlement yet already charged');
      continue;
    }
    if (call.status !== 'BILLED' && call.status !== 'NEEDS_REVIEW') {
      if (entries.length > 0) problem(`${call.status} yet charged`);
      continue;
    }
    result.checked++;
    if (wallet === null || !sameAddress(wallet, call.payer)) {
      problem('charged to another account than its payer', call.payer, wallet);
    }
    if (
      entries.length !== 1 ||
      entries[0]?.amount !== -call.userPrice ||
      entries[0]?.accountId !== call.accountId
    ) {
      problem(
        'not charged exactly once at its price',
        `one USAGE entry of ${-call.userPrice}`,
        entries.map((e) => e.amount.toString()).join(', ') || 'none',
      );
    }
    if (call.txHash === null) {
      problem('billed without a settlement');
      continue;
    }
    // A settlement before the scanned range cannot be matched (like a credit before fromBlock).
    if (call.settlementBlock !== null && call.settlementBlock < scope.fromBlock) continue;
    if (call.settlementBlock !== null && call.settlementBlock > scope.head) continue;
    const settlement = (byTx.get(call.txHash) ?? []).filter((t) => sameAddress(t.from, call.payer));
    if (settlement.length !== 1) {
      problem('no single settlement transfer from its payer on chain', '1', String(settlement.length));
      continue;
    }
    const value = settlement[0]?.value ?? 0n;
    const expected = call.scheme === 'upto' ? call.userPrice : call.holdAmount;
    if (value !== expected || value < call.userPrice) {
      problem('settlement does not cover the call as signed', expected.toString(), value.toString());
    }
  }
  return result;
}
