import type { AuditAccount, AuditLedgerEntry, Discrepancy } from './audit-types.ts';

export type DiscrepancyLocation = Pick<
  Discrepancy,
  'accountId' | 'walletAddress' | 'txHash' | 'logIndex' | 'blockNumber' | 'seq'
>;

/** Where a discrepancy is: the account, and the entry (with the log it credits) when there is one. */
export function discrepancyAt(account: AuditAccount, entry: AuditLedgerEntry | null): DiscrepancyLocation {
  return {
    accountId: account.accountId,
    walletAddress: account.walletAddress || null,
    txHash: entry?.deposit?.txHash ?? null,
    logIndex: entry?.deposit?.logIndex ?? null,
    blockNumber: entry?.deposit?.blockNumber ?? null,
    seq: entry?.seq ?? null,
  };
}

/** A discrepancy whose expected and actual values are null unless given. */
export function discrepancy(d: Omit<Discrepancy, 'expected' | 'actual'> & Partial<Discrepancy>): Discrepancy {
  return { expected: null, actual: null, ...d };
}
