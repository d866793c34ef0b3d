import { isCreditableTransfer } from '../crediting-rules.ts';
import { GENESIS_LEDGER_HASH, ledgerEntryHash } from '../ledger-hash.ts';
import { tokenUnitsToMicroUsd, USDC_DECIMALS } from '../money.ts';
import {
  type AuditAccount,
  type AuditInput,
  type AuditLedgerEntry,
  type AuditReport,
  type ChainTransfer,
  DISCREPANCY_KINDS,
  type Discrepancy,
  type DiscrepancyKind,
  type ReversedCredit,
} from './audit-types.ts';

/** (txHash, logIndex) identifies a log on one chain; hashes compare case-insensitively. */
export function transferKey(txHash: string, logIndex: number): string {
  return `${txHash.toLowerCase()}:${logIndex}`;
}

const sameAddress = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

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
 * - HASH_CHAIN_BROKEN: a hash that does not recompute, a prevHash that does not link, a missing seq, or
 *   a stored ledger head that is not the newest entry's hash.
 *
 * @example
 * const report = checkAudit({ chainId, tokenAddress, treasuryAddress, confirmations, fromBlock: 0n, head,
 *   transfers, accounts, entries });
 * if (!report.consistent) console.log(report.discrepancies);
 */
export function checkAudit(input: AuditInput): AuditReport {
  const decimals = input.tokenDecimals ?? USDC_DECIMALS;
  const discrepancies: Discrepancy[] = [];
  const report = (d: Omit<Discrepancy, 'expected' | 'actual'> & Partial<Discrepancy>) =>
    discrepancies.push({ expected: null, actual: null, ...d });

  // Chain side: every creditable transfer in range, keyed by its log.
  const transfers = new Map<string, ChainTransfer>();
  let notCreditable = 0;
  for (const transfer of input.transfers) {
    if (transfer.chainId !== input.chainId) continue;
    if (transfer.blockNumber < input.fromBlock || transfer.blockNumber > input.head) continue;
    if (!isCreditableTransfer(transfer)) {
      notCreditable++;
      continue;
    }
    transfers.set(transferKey(transfer.txHash, transfer.logIndex), transfer);
  }

  // Platform side: entries grouped by account, in seq order.
  const entriesByAccount = new Map<string, AuditLedgerEntry[]>();
  for (const entry of input.entries) {
    const list = entriesByAccount.get(entry.accountId) ?? [];
    list.push(entry);
    entriesByAccount.set(entry.accountId, list);
  }
  const accounts = new Map<string, AuditAccount>(input.accounts.map((a) => [a.accountId, a]));
  const snapshotIds = new Set(input.accounts.map((a) => a.accountId));
  const accountOfWallet = new Map(input.accounts.map((a) => [a.walletAddress.toLowerCase(), a]));
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

  // What each deposit's credit was corrected by: ADJUSTMENTs keyed by the deposit id they reference, in
  // whichever account they are (one that corrects another account's deposit shows as a mismatch there).
  const corrections = new Map<string, bigint>();
  for (const entry of input.entries) {
    if (entry.reason !== 'ADJUSTMENT') continue;
    corrections.set(entry.referenceId, (corrections.get(entry.referenceId) ?? 0n) + entry.amount);
  }

  let totalBalance = 0n;
  let totalDebt = 0n;
  let depositCredits = 0;
  let creditsBeforeFromBlock = 0;
  let creditsAfterHead = 0;
  let creditsReversed = 0;
  const reversedCredits: ReversedCredit[] = [];
  let totalCredited = 0n;
  const matched = new Set<string>();
  // When one log is credited more than once, the credit that stands is the one to the transfer's sender
  // (then the oldest); every other one is the duplicate, whatever order the accounts come in.
  const creditedBy = new Map<string, AuditLedgerEntry>();
  const rank = (entry: AuditLedgerEntry, transfer: ChainTransfer | undefined) => {
    const wallet = accounts.get(entry.accountId)?.walletAddress ?? '';
    return [transfer && sameAddress(wallet, transfer.from) ? 0 : 1, entry.createdAt.getTime()] as const;
  };
  for (const entry of input.entries) {
    if (entry.reason !== 'DEPOSIT' || !entry.deposit || entry.deposit.chainId !== input.chainId) continue;
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

  for (const account of accounts.values()) {
    const entries = (entriesByAccount.get(account.accountId) ?? []).sort((a, b) => a.seq - b.seq);
    const at = (entry: AuditLedgerEntry | null) => ({
      accountId: account.accountId,
      walletAddress: account.walletAddress || null,
      txHash: entry?.deposit?.txHash ?? null,
      logIndex: entry?.deposit?.logIndex ?? null,
      blockNumber: entry?.deposit?.blockNumber ?? null,
      seq: entry?.seq ?? null,
    });
    const snapshot = snapshotIds.has(account.accountId);
    if (snapshot) {
      totalBalance += account.balance;
      totalDebt += account.debt;
    }

    // Hash chain and running balance. After a break the walk resynchronises on the stored values, so
    // one tampered entry is reported once, not once per entry after it.
    let prevHash: string = GENESIS_LEDGER_HASH;
    let running = 0n;
    let expectedSeq = 1;
    let sum = 0n;
    let headHash: string | null = null;
    for (const entry of entries) {
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
      if (problems.length > 0) {
        report({
          kind: 'HASH_CHAIN_BROKEN',
          ...at(entry),
          message: `ledger entry ${entry.seq}: ${problems.join('; ')}`,
        });
      }
      running += entry.amount;
      if (entry.balanceAfter !== running) {
        report({
          kind: 'BALANCE_MISMATCH',
          ...at(entry),
          expected: running.toString(),
          actual: entry.balanceAfter.toString(),
          message: `ledger entry ${entry.seq}: balanceAfter ${entry.balanceAfter} is not the previous balance plus ${entry.amount} (${running})`,
        });
        running = entry.balanceAfter;
      }
      prevHash = entry.hash;
      expectedSeq = entry.seq + 1;
      if (entry.seq <= account.ledgerSeq) {
        sum += entry.amount;
        headHash = entry.hash;
      }
    }
    if (snapshot) {
      if (sum !== account.balance) {
        report({
          kind: 'BALANCE_MISMATCH',
          ...at(null),
          expected: sum.toString(),
          actual: account.balance.toString(),
          message: `stored balance ${account.balance} is not the sum of the account's ${account.ledgerSeq} entries (${sum})`,
        });
      }
      if (
        headHash !== account.ledgerHead ||
        (account.ledgerSeq > 0 && !entries.some((e) => e.seq === account.ledgerSeq))
      ) {
        report({
          kind: 'HASH_CHAIN_BROKEN',
          ...at(null),
          expected: headHash,
          actual: account.ledgerHead,
          message: `stored ledger head (entry ${account.ledgerSeq}) is not the hash of the newest entry`,
        });
      }
    }

    // Credits against the chain, each net of the ADJUSTMENTs referencing its deposit.
    let owedByDeposits = 0n;
    for (const entry of entries) {
      if (entry.reason !== 'DEPOSIT') continue;
      const corrected = corrections.get(entry.referenceId) ?? 0n;
      const net = entry.amount + corrected;
      depositCredits++;
      totalCredited += entry.amount;
      const deposit = entry.deposit;
      if (!deposit) {
        report({
          kind: 'CREDIT_WITHOUT_TRANSFER',
          ...at(entry),
          actual: entry.amount.toString(),
          message: `DEPOSIT entry ${entry.seq} names no on-chain transfer`,
        });
        continue;
      }
      if (deposit.chainId !== input.chainId) {
        report({
          kind: 'CREDIT_WITHOUT_TRANSFER',
          ...at(entry),
          expected: String(input.chainId),
          actual: String(deposit.chainId),
          message: `DEPOSIT entry ${entry.seq} credits a transfer on chain ${deposit.chainId}, not the audited chain ${input.chainId}`,
        });
        continue;
      }
      const key = transferKey(deposit.txHash, deposit.logIndex);
      const first = creditedBy.get(key);
      if (first && first !== entry) {
        report({
          kind: 'DUPLICATE_CREDIT',
          ...at(entry),
          actual: entry.amount.toString(),
          message: `transfer ${deposit.txHash}#${deposit.logIndex} credited again (the credit that stands is entry ${first.seq} of account ${first.accountId})`,
        });
        continue;
      }
      // A deposit that is not CREDITED keeps what was not taken back as the account's debt.
      const taken = deposit.status !== 'CREDITED';
      if (taken) owedByDeposits += net;
      if (deposit.blockNumber < input.fromBlock) {
        creditsBeforeFromBlock++;
        continue;
      }
      if (deposit.blockNumber > input.head) {
        // Credited after the audit read the head (records are read after it): the next audit covers it.
        creditsAfterHead++;
        continue;
      }
      const transfer = transfers.get(key);
      if (!transfer) {
        if (net === 0n || (taken && net > 0n && net <= entry.amount)) {
          // Reversed after a deep reorg, in full or down to a debt (checked against the stored debt below):
          // reported in the summary, not a discrepancy.
          creditsReversed++;
          reversedCredits.push({
            accountId: account.accountId,
            walletAddress: account.walletAddress || null,
            txHash: deposit.txHash,
            logIndex: deposit.logIndex,
            blockNumber: deposit.blockNumber,
            seq: entry.seq,
            amount: entry.amount,
            owed: net,
          });
          continue;
        }
        if (net < 0n || net > entry.amount) {
          report({
            kind: 'AMOUNT_MISMATCH',
            ...at(entry),
            expected: '0',
            actual: net.toString(),
            message: `the transfer ${deposit.txHash}#${deposit.logIndex} is gone from the chain, and its credit of ${entry.amount} nets to ${net} micro-USD with the ADJUSTMENTs referencing it`,
          });
          continue;
        }
        report({
          kind: 'CREDIT_WITHOUT_TRANSFER',
          ...at(entry),
          expected: '0',
          actual: (entry.amount + corrected).toString(),
          message: `no creditable Transfer to the treasury at ${deposit.txHash}#${deposit.logIndex} on chain ${input.chainId} (up to block ${input.head})${corrected === 0n ? '' : `; only ${-corrected} of the ${entry.amount} credited was reversed`}`,
        });
        continue;
      }
      if (account.walletAddress && !sameAddress(transfer.from, account.walletAddress)) {
        report({
          kind: 'CREDIT_WITHOUT_TRANSFER',
          ...at(entry),
          expected: transfer.from,
          actual: account.walletAddress,
          message: `transfer ${transfer.txHash}#${transfer.logIndex} was paid by ${transfer.from} but credited to ${account.walletAddress}`,
        });
        continue;
      }
      const due = tokenUnitsToMicroUsd(transfer.value, decimals);
      if (taken && entry.amount === due && net >= 0n && net <= due) {
        // Taken back by a deep reorg and mined again, not credited again yet: owed until then. Left
        // unmatched, so once it is due it is reported as TRANSFER_NOT_CREDITED below.
        continue;
      }
      if (entry.amount !== due) {
        report({
          kind: 'AMOUNT_MISMATCH',
          ...at(entry),
          expected: due.toString(),
          actual: entry.amount.toString(),
          message: `credited ${entry.amount} micro-USD for a transfer of ${transfer.value} token units (${due} micro-USD)`,
        });
      } else if (net !== due) {
        report({
          kind: 'AMOUNT_MISMATCH',
          ...at(entry),
          expected: due.toString(),
          actual: net.toString(),
          message: `the transfer ${transfer.txHash}#${transfer.logIndex} is on chain, but its DEPOSIT entry and the ADJUSTMENTs referencing it sum to ${net} micro-USD, not ${due}`,
        });
      } else if (deposit.amountToken !== transfer.value || deposit.amount !== due) {
        report({
          kind: 'AMOUNT_MISMATCH',
          ...at(entry),
          expected: `${transfer.value} token units / ${due} micro-USD`,
          actual: `${deposit.amountToken} token units / ${deposit.amount} micro-USD`,
          message: `the deposit record of ${transfer.txHash}#${transfer.logIndex} differs from the transfer on chain`,
        });
      }
      matched.add(key);
    }
    // Entries newer than the account snapshot may have changed the debt since it was read: the next audit.
    if (snapshot && !entries.some((e) => e.seq > account.ledgerSeq) && owedByDeposits !== account.debt) {
      report({
        kind: 'BALANCE_MISMATCH',
        ...at(null),
        expected: owedByDeposits.toString(),
        actual: account.debt.toString(),
        message: `stored debt ${account.debt} is not what the account's deposits taken back by deep reorgs still owe (${owedByDeposits})`,
      });
    }
  }

  let due = 0;
  let notYetDue = 0;
  let totalDue = 0n;
  for (const [key, transfer] of transfers) {
    if (input.head - transfer.blockNumber < BigInt(input.confirmations)) {
      if (!matched.has(key)) notYetDue++;
      continue;
    }
    due++;
    const amount = tokenUnitsToMicroUsd(transfer.value, decimals);
    totalDue += amount;
    if (matched.has(key)) continue;
    const receiver = accountOfWallet.get(transfer.from.toLowerCase());
    report({
      kind: 'TRANSFER_NOT_CREDITED',
      accountId: receiver?.accountId ?? null,
      walletAddress: transfer.from,
      txHash: transfer.txHash,
      logIndex: transfer.logIndex,
      blockNumber: transfer.blockNumber,
      seq: null,
      expected: amount.toString(),
      actual: null,
      message: `transfer of ${transfer.value} token units from ${transfer.from} in block ${transfer.blockNumber} has ${input.head - transfer.blockNumber} confirmations and no credit`,
    });
  }

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
    tokenDecimals: decimals,
    fromBlock: input.fromBlock,
    head: input.head,
    consistent: discrepancies.length === 0,
    summary: {
      transfersOnChain: transfers.size + notCreditable,
      transfersNotCreditable: notCreditable,
      transfersDue: due,
      transfersNotYetDue: notYetDue,
      transfersCredited: matched.size,
      accounts: input.accounts.length,
      ledgerEntries: input.entries.length,
      depositCredits,
      creditsBeforeFromBlock,
      creditsAfterHead,
      creditsReversed,
      totalDue,
      totalCredited,
      totalBalance,
      totalDebt,
    },
    counts,
    discrepancies,
    reversedCredits,
  };
}
