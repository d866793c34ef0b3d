import { GENESIS_LEDGER_HASH, ledgerEntryHash } from '../ledger-hash.ts';
import type { AuditAccount, AuditLedgerEntry, Discrepancy } from './audit-types.ts';
import { discrepancy, discrepancyAt } from './discrepancy-location.ts';

/**
 * One account's hash chain and running balance, entry by entry, then (for an account of the snapshot) its
 * stored balance and ledger head against the entries up to its `ledgerSeq`. After a break the walk
 * resynchronises on the stored values, so one tampered entry is reported once, not once per entry after it.
 *
 * @param entries the account's entries in seq order
 * @param inSnapshot whether the account was read with the snapshot (else it only has entries)
 */
export function checkAccountLedger(
  account: AuditAccount,
  entries: readonly AuditLedgerEntry[],
  inSnapshot: boolean,
): Discrepancy[] {
  const found: Discrepancy[] = [];
  let prevHash: string = GENESIS_LEDGER_HASH;
  let running = 0n;
  let expectedSeq = 1;
  let sum = 0n;
  let headHash: string | null = null;
  for (const entry of entries) {
    const problems = hashChainProblems(entry, expectedSeq, prevHash);
    if (problems.length > 0) {
      found.push(
        discrepancy({
          kind: 'HASH_CHAIN_BROKEN',
          ...discrepancyAt(account, entry),
          message: `ledger entry ${entry.seq}: ${problems.join('; ')}`,
        }),
      );
    }
    running += entry.amount;
    if (entry.balanceAfter !== running) {
      found.push(
        discrepancy({
          kind: 'BALANCE_MISMATCH',
          ...discrepancyAt(account, entry),
          expected: running.toString(),
          actual: entry.balanceAfter.toString(),
          message: `ledger entry ${entry.seq}: balanceAfter ${entry.balanceAfter} is not the previous balance plus ${entry.amount} (${running})`,
        }),
      );
      running = entry.balanceAfter;
    }
    prevHash = entry.hash;
    expectedSeq = entry.seq + 1;
    if (entry.seq <= account.ledgerSeq) {
      sum += entry.amount;
      headHash = entry.hash;
    }
  }
  if (!inSnapshot) return found;
  if (sum !== account.balance) {
    found.push(
      discrepancy({
        kind: 'BALANCE_MISMATCH',
        ...discrepancyAt(account, null),
        expected: sum.toString(),
        actual: account.balance.toString(),
        message: `stored balance ${account.balance} is not the sum of the account's ${account.ledgerSeq} entries (${sum})`,
      }),
    );
  }
  if (
    headHash !== account.ledgerHead ||
    (account.ledgerSeq > 0 && !entries.some((e) => e.seq === account.ledgerSeq))
  ) {
    found.push(
      discrepancy({
        kind: 'HASH_CHAIN_BROKEN',
        ...discrepancyAt(account, null),
        expected: headHash,
        actual: account.ledgerHead,
        message: `stored ledger head (entry ${account.ledgerSeq}) is not the hash of the newest entry`,
      }),
    );
  }
  return found;
}

/**
 * The account's ADJUSTMENTs that neither correct a deposit of the records (after a deep reorg, referencing
 * it) nor were written by an operator (operator and reason set): CREDIT_WITHOUT_TRANSFER, one per entry.
 */
export function checkAdjustmentsAccountedFor(
  account: AuditAccount,
  entries: readonly AuditLedgerEntry[],
  depositIds: ReadonlySet<string>,
): Discrepancy[] {
  return entries
    .filter((e) => e.reason === 'ADJUSTMENT' && !e.operator && !depositIds.has(e.referenceId))
    .map((entry) =>
      discrepancy({
        kind: 'CREDIT_WITHOUT_TRANSFER',
        ...discrepancyAt(account, entry),
        actual: entry.amount.toString(),
        message: `ADJUSTMENT entry ${entry.seq} (${entry.amount} micro-USD) corrects no deposit and names no operator`,
      }),
    );
}

/** What is wrong with one entry's place in the chain: its seq or prevHash link, and its own hash. */
function hashChainProblems(entry: AuditLedgerEntry, expectedSeq: number, prevHash: string): string[] {
  const problems: string[] = [];
  if (entry.seq !== expectedSeq) {
    problems.push(
      entry.seq > expectedSeq
        ? `entries ${expectedSeq}..${entry.seq - 1} are missing`
        : `seq ${entry.seq} appears twice`,
    );
  } else if ((entry.prevHash ?? GENESIS_LEDGER_HASH) !== prevHash) {
    problems.push(`prevHash does not link to entry ${entry.seq - 1}`);
  }
  if (ledgerEntryHash(entry.prevHash ?? null, entry) !== entry.hash) {
    problems.push('its hash does not recompute from its fields');
  }
  return problems;
}
