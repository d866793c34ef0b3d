/**
 * The two sides the audit compares, gathered from its input: the creditable transfers the chain holds
 * and the accounts and ledger entries the platform holds.
 */
import { isCreditableTransfer } from '../crediting-rules.ts';
import type { AuditAccount, AuditInput, AuditLedgerEntry, ChainTransfer } from './audit-types.ts';

/** (txHash, logIndex) identifies a log on one chain; hashes compare case-insensitively. */
export function transferKey(txHash: string, logIndex: number): string {
  return `${txHash.toLowerCase()}:${logIndex}`;
}

export const sameAddress = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export interface ChainSide {
  /** Every creditable transfer of the audited chain in [fromBlock, head], keyed by `transferKey`. */
  transfers: Map<string, ChainTransfer>;
  /** Transfers in range that credit nothing (zero-value transfers, mints, the treasury paying itself). */
  notCreditable: number;
}

export function gatherChainSide(input: AuditInput): ChainSide {
  const transfers = new Map<string, ChainTransfer>();
  let notCreditable = 0;
  for (const transfer of input.transfers) {
    if (transfer.chainId !== input.chainId) continue;
    if (transfer.blockNumber < input.fromBlock || transfer.blockNumber > input.head) continue;
    // Every log read is a transfer to the treasury (the scan filters on `to`).
    if (!isCreditableTransfer({ from: transfer.from, to: input.treasuryAddress, value: transfer.value })) {
      notCreditable++;
      continue;
    }
    transfers.set(transferKey(transfer.txHash, transfer.logIndex), transfer);
  }
  return { transfers, notCreditable };
}

export interface PlatformSide {
  /**
   * The snapshot's accounts in input order, then (as placeholders with no wallet and nothing stored) the
   * accounts that only have entries.
   */
  accounts: Map<string, AuditAccount>;
  /** Each account's entries, in seq order. */
  entriesByAccount: Map<string, AuditLedgerEntry[]>;
  /** Accounts of the snapshot: only their stored balance, debt and head are checked and summed. */
  snapshotIds: Set<string>;
  /** Snapshot accounts by lowercase wallet address. */
  accountOfWallet: Map<string, AuditAccount>;
}

export function gatherPlatformSide(input: AuditInput): PlatformSide {
  const entriesByAccount = new Map<string, AuditLedgerEntry[]>();
  for (const entry of input.entries) {
    const list = entriesByAccount.get(entry.accountId) ?? [];
    list.push(entry);
    entriesByAccount.set(entry.accountId, list);
  }
  for (const list of entriesByAccount.values()) list.sort((a, b) => a.seq - b.seq);
  const accounts = new Map<string, AuditAccount>(input.accounts.map((a) => [a.accountId, a]));
  for (const accountId of entriesByAccount.keys()) {
    if (!accounts.has(accountId)) {
      // Entries of an account created after the accounts were read: checked, never summed.
      accounts.set(accountId, {
        accountId,
        walletAddress: '',
        balance: 0n,
        debt: 0n,
        ledgerSeq: 0,
        ledgerHead: null,
      });
    }
  }
  return {
    accounts,
    entriesByAccount,
    snapshotIds: new Set(input.accounts.map((a) => a.accountId)),
    accountOfWallet: new Map(input.accounts.map((a) => [a.walletAddress.toLowerCase(), a])),
  };
}

/**
 * What each deposit's credit was corrected by: ADJUSTMENTs summed by the deposit id they reference, in
 * whichever account they are (one that corrects another account's deposit shows as a mismatch there).
 */
export function depositCorrections(entries: readonly AuditLedgerEntry[]): Map<string, bigint> {
  const corrections = new Map<string, bigint>();
  for (const entry of entries) {
    if (entry.reason !== 'ADJUSTMENT') continue;
    corrections.set(entry.referenceId, (corrections.get(entry.referenceId) ?? 0n) + entry.amount);
  }
  return corrections;
}
