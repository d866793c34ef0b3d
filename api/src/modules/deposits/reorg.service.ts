/**
 * Reorgs deeper than CONFIRMATIONS: credits taken back (the rest owed as a debt), debts paid from what
 * the account may spend, and the crediting cursor rewound below transfers it passed without crediting.
 */
import type { Em } from '../../db/orm.ts';
import { type Query, sqlOf } from '../../db/sql.ts';
import { inTransaction } from '../../db/transaction.ts';
import { chainLedgerBatch, type LedgerEntryInput, writeLedgerBatch } from '../ledger/ledger.store.ts';
import { enqueueDepositWebhookEvents } from '../webhooks/webhook-events.store.ts';
import { type CreditingEvent, type CreditOptions, creditableTransfers, logKey } from './crediting.service.ts';
import { readCursor, readOwedDeposits, rewindCursor, setDebts } from './crediting.store.ts';
import { payDebt } from './debt.ts';
import { END_OF_BLOCK_LOG_INDEX, type IndexedTransfer, type TransferCursor } from './indexer.client.ts';
import {
  type AccountFunds,
  lockAccountFunds,
  lockIndebtedAccounts,
  markCreditReorged,
  moveCreditedDeposits,
  readCreditedAmong,
  readCreditedDeposits,
  readReorgCheck,
  recordReorgCheck,
} from './reorg.store.ts';

/** A credited deposit whose transfer a reorg deeper than CONFIRMATIONS removed from the chain. */
export interface ReversedCredit {
  depositId: string;
  accountId: string;
  txHash: string;
  logIndex: number;
  blockNumber: bigint;
  amount: bigint;
  /** What the compensating ADJUSTMENT took back. */
  reversed: bigint;
  /**
   * What could not be taken back because the account had already spent (or holds) it: added to the
   * account's debt, which its next credits (or this transfer, if mined again) pay.
   */
  shortfall: bigint;
}

/** Writes `inputs` (all of `account`) chained from its locked head; returns the last entry's id. */
async function appendToLocked(
  query: Query,
  account: AccountFunds,
  inputs: LedgerEntryInput[],
): Promise<string> {
  const batch = chainLedgerBatch(() => account.ledger, inputs, new Date());
  await writeLedgerBatch(query, batch);
  const last = batch.entries.at(-1);
  if (!last) throw new Error('no ledger entry to append');
  return last.id;
}

/**
 * Undoes credits whose transfers are gone from the chain: a reorg deeper than CONFIRMATIONS (but inside
 * Ponder's 30-block window, which it still rolls back) removed them after they were credited. The ledger
 * is never edited: the deposit moves CREDITED -> REORGED by a guarded update and a compensating ADJUSTMENT
 * takes the amount back, as far as the account's available balance (balance minus what in-flight calls
 * hold) allows; the rest is added to the account's `debt`, which its next credits pay first (the caller
 * alerts too). If the transfer is mined again later, `creditConfirmedTransfers` gives back what was taken
 * and cancels what is still owed for it. A credited transfer that the reorg mined again in another block
 * keeps its credit; its deposit record moves to that block.
 *
 * `indexed` must be every transfer the indexer has at or above `fromBlock` (a complete window); only
 * CREDITED deposits in [fromBlock, toBlock], where the indexer's view is settled, are compared.
 */
export async function reverseReorgedCredits(
  em: Em,
  chainId: number,
  indexed: readonly IndexedTransfer[],
  range: { fromBlock: bigint; toBlock: bigint },
  options: CreditOptions = {},
): Promise<{ events: CreditingEvent[]; reversed: ReversedCredit[] }> {
  if (range.toBlock < range.fromBlock) return { events: [], reversed: [] };
  const present = new Map(creditableTransfers(chainId, indexed, options).map((r) => [r.key, r.transfer]));
  return inTransaction(em, async (tx) => {
    const query = sqlOf(tx).query;
    const credited = await readCreditedDeposits(query, chainId, range);
    const events: CreditingEvent[] = [];
    const reversed: ReversedCredit[] = [];
    const moved: { id: string; accountId: string; transfer: IndexedTransfer }[] = [];
    for (const deposit of credited) {
      const transfer = present.get(logKey(deposit.tx_hash, deposit.log_index));
      if (transfer) {
        // Still on chain, but mined again in another block by the reorg: the credit stands, the record
        // follows the chain.
        if (transfer.blockHash.toLowerCase() !== deposit.block_hash.toLowerCase()) {
          moved.push({ id: deposit.id, accountId: deposit.account_id, transfer });
        }
        continue;
      }
      if (!(await markCreditReorged(query, deposit.id))) continue;
      const account = await lockAccountFunds(query, deposit.account_id);
      const amount = deposit.amount;
      const available = account ? account.ledger.balance - account.held : 0n;
      const taken = available <= 0n ? 0n : available < amount ? available : amount;
      if (account && taken < amount) {
        // What was spent (or is held by calls in flight) cannot be taken back now: the account owes it.
        await setDebts(query, [{ accountId: account.id, debt: account.debt + (amount - taken) }]);
      }
      if (account && taken > 0n) {
        const ledgerEntryId = await appendToLocked(query, account, [
          { accountId: account.id, amount: -taken, reason: 'ADJUSTMENT', referenceId: deposit.id },
        ]);
        events.push({ type: 'balanceUpdated', accountId: deposit.account_id, ledgerEntryId });
      }
      events.push({ type: 'depositUpdated', accountId: deposit.account_id, depositId: deposit.id });
      reversed.push({
        depositId: deposit.id,
        accountId: deposit.account_id,
        txHash: deposit.tx_hash,
        logIndex: deposit.log_index,
        blockNumber: deposit.block_number,
        amount,
        reversed: taken,
        shortfall: amount - taken,
      });
    }
    // A credit taken back is a reorged deposit to its account's receivers too.
    await enqueueDepositWebhookEvents(
      query,
      'DEPOSIT_REORGED',
      reversed.map((credit) => credit.depositId),
    );
    await moveCreditedDeposits(query, moved);
    for (const m of moved) events.push({ type: 'depositUpdated', accountId: m.accountId, depositId: m.id });
    return { events, reversed };
  });
}

/**
 * Pays accounts' debts from what they hold and may spend (balance minus what calls in flight hold). A deep
 * reorg's reversal takes all that is available and leaves the rest as a debt, so an indebted account has
 * nothing to spend until money comes in; but a call in flight may end cheaper than its hold, and what the
 * hold releases is the account's again. It pays the debt first: one ADJUSTMENT per deposit owed for,
 * referencing it, oldest first. Call it holding the crediting lock (crediting is the only writer of debt).
 */
export async function payDebtsFromBalance(em: Em): Promise<CreditingEvent[]> {
  return inTransaction(em, async (tx) => {
    const query = sqlOf(tx).query;
    const accounts = await lockIndebtedAccounts(query);
    if (accounts.length === 0) return [];
    const owed = await readOwedDeposits(
      query,
      accounts.map((a) => a.id),
    );
    const events: CreditingEvent[] = [];
    for (const account of accounts) {
      const spendable = account.ledger.balance - account.held;
      const payments = payDebt(owed.get(account.id) ?? [], spendable, account.debt);
      if (payments.length === 0) continue;
      const ledgerEntryId = await appendToLocked(
        query,
        account,
        payments.map((payment) => ({
          accountId: account.id,
          amount: -payment.paid,
          reason: 'ADJUSTMENT',
          referenceId: payment.depositId,
        })),
      );
      const paidTotal = payments.reduce((sum, payment) => sum + payment.paid, 0n);
      await setDebts(query, [{ accountId: account.id, debt: account.debt - paidTotal }]);
      events.push({ type: 'balanceUpdated', accountId: account.id, ledgerEntryId });
    }
    return events;
  });
}

/**
 * Moves the chain's cursor back below transfers it passed without crediting them. The cursor only moves
 * forward while crediting, but a reorg deeper than CONFIRMATIONS can put transfers (a payment mined again,
 * or a new one) at positions it has already passed; `transfersAfter` would never return them. Every
 * creditable transfer in `indexed` (a complete window from `range.fromBlock`) up to `range.toBlock` (the
 * confirmed part) and at or below the cursor must have a CREDITED deposit; if one has not, the cursor
 * goes back to the end of the block before the earliest such transfer, which is at or above the fork
 * point. Crediting then reads those blocks again: what is credited already is skipped by the guarded
 * upsert, the rest is credited once.
 *
 * Returns where the cursor went (`to: null`: back to the start), or null when nothing was passed over.
 * Call it holding the crediting lock.
 */
export async function rewindCursorBelowUncredited(
  em: Em,
  chainId: number,
  indexed: readonly IndexedTransfer[],
  range: { fromBlock: bigint; toBlock: bigint },
  options: CreditOptions = {},
): Promise<{ to: TransferCursor | null } | null> {
  return inTransaction(em, async (tx) => {
    const query = sqlOf(tx).query;
    const cursor = await readCursor(query, chainId, true);
    if (!cursor) return null;
    const passed = creditableTransfers(chainId, indexed, options).filter(
      ({ transfer: t }) =>
        t.blockNumber >= range.fromBlock &&
        t.blockNumber <= range.toBlock &&
        (t.blockNumber < cursor.blockNumber ||
          (t.blockNumber === cursor.blockNumber && t.logIndex <= cursor.logIndex)),
    );
    if (passed.length === 0) return null;
    const creditedRows = await readCreditedAmong(
      query,
      chainId,
      passed.map((row) => row.transfer),
    );
    const credited = new Set(creditedRows.map((row) => logKey(row.tx_hash, row.log_index)));
    // `passed` keeps the indexer's ascending order: the first one missing is the earliest.
    const missed = passed.find((row) => !credited.has(row.key));
    if (!missed) return null;
    const block = missed.transfer.blockNumber;
    const to = block === 0n ? null : { blockNumber: block - 1n, logIndex: END_OF_BLOCK_LOG_INDEX };
    await rewindCursor(query, chainId, to);
    return { to };
  });
}

/**
 * Where a process starts comparing credits with the chain: the head the chain's last complete reorg check
 * reached (any replica's, recorded by `recordCompleteReorgCheck`); before the first one, CONFIRMATIONS above
 * the crediting cursor (the head the last credit was made at, at least). Not the cursor alone: a process that
 * dies between a crediting transaction and the reorg check after it leaves the cursor past credits a deep
 * reorg removed, which a window below the cursor's head would never compare again.
 */
export async function reorgCheckStart(
  em: Em,
  chainId: number,
  confirmations: number,
): Promise<bigint | null> {
  const query = sqlOf(em).query;
  const checked = await readReorgCheck(query, chainId);
  if (checked !== null) return checked;
  const cursor = await readCursor(query, chainId, false);
  return cursor ? cursor.blockNumber + BigInt(confirmations) : null;
}

/** Records, in the check's transaction, that every credit up to `head` was compared with the chain. */
export async function recordCompleteReorgCheck(em: Em, chainId: number, head: bigint): Promise<void> {
  await recordReorgCheck(sqlOf(em).query, chainId, head);
}
