import {
  isCreditableTransfer,
  type LedgerHead,
  tokenUnitsToMicroUsd,
  USDC_DECIMALS,
} from '@chainmeter/schema';
import type { Em } from '../../db/orm.ts';
import { type Query, sqlOf } from '../../db/sql.ts';
import { inTransaction } from '../../db/transaction.ts';
import { createAccounts } from '../accounts/accounts.store.ts';
import { chainLedgerBatch, type LedgerEntryInput, writeLedgerBatch } from '../ledger/ledger.store.ts';
import { claimPaidCalls, markPaidCallsBilled } from '../metering/paid-call.store.ts';
import { enqueueDepositWebhookEvents } from '../webhooks/webhook-events.store.ts';
import {
  advanceCursor,
  type DepositWrite,
  type LockedAccount,
  lockAccountsOfWallets,
  markMissingPendingReorged,
  readCursor,
  readOwedDeposits,
  setDebts,
  upsertCreditedDeposits,
  upsertPendingDeposits,
} from './crediting.store.ts';
import { payDebt } from './debt.ts';
import type { IndexedTransfer, TransferCursor } from './indexer.client.ts';

/** What a crediting step changed, published by the caller once the transaction has committed. */
export type CreditingEvent =
  | { type: 'depositUpdated'; accountId: string; depositId: string }
  | { type: 'balanceUpdated'; accountId: string; ledgerEntryId: string };

export class CreditingError extends Error {
  override name = 'CreditingError';
}

export interface CreditOptions {
  /** Decimals of the token; USDC (6) maps one base unit to one micro-USD. */
  tokenDecimals?: number;
}

/** A transfer that credits something, keyed by its log, with its amount in micro-USD. */
export interface CreditableTransfer {
  transfer: IndexedTransfer;
  key: string;
  amount: bigint;
}

export const logKey = (txHash: string, logIndex: number) => `${txHash.toLowerCase()}:${logIndex}`;

/** The transfers of `chainId` that credit something (`isCreditableTransfer`), each log once, in order. */
export function creditableTransfers(
  chainId: number,
  transfers: readonly IndexedTransfer[],
  options: CreditOptions,
): CreditableTransfer[] {
  const decimals = options.tokenDecimals ?? USDC_DECIMALS;
  const rows = new Map<string, CreditableTransfer>();
  for (const transfer of transfers) {
    if (transfer.chainId !== chainId) {
      throw new CreditingError(`transfer ${transfer.txHash} is on chain ${transfer.chainId}, not ${chainId}`);
    }
    if (!isCreditableTransfer(transfer)) continue;
    const key = logKey(transfer.txHash, transfer.logIndex);
    rows.set(key, { transfer, key, amount: tokenUnitsToMicroUsd(transfer.value, decimals) });
  }
  return [...rows.values()];
}

/**
 * Creates the accounts of the senders if missing, locks them (in id order) and returns each transfer as a
 * deposit to write, with the locked accounts keyed by wallet.
 */
async function lockSenders(
  query: Query,
  rows: readonly CreditableTransfer[],
): Promise<{ deposits: DepositWrite[]; accounts: Map<string, LockedAccount> }> {
  const wallets = [...new Set(rows.map((row) => row.transfer.from))];
  await createAccounts(query, wallets);
  const accounts = await lockAccountsOfWallets(query, wallets);
  const deposits = rows.map((row) => ({
    transfer: row.transfer,
    amount: row.amount,
    accountId: accountOf(accounts, row.transfer.from).id,
  }));
  return { deposits, accounts };
}

function accountOf(accounts: Map<string, LockedAccount>, wallet: string): LockedAccount {
  const account = accounts.get(wallet);
  if (!account) throw new CreditingError(`no account row for ${wallet} after upsert`);
  return account;
}

/**
 * Credits confirmed transfers exactly once, all in the caller's transaction (or one new transaction):
 * accounts are created for unknown senders, each deposit is inserted (or moved from PENDING/REORGED) to
 * CREDITED only if it is not CREDITED already, its DEPOSIT ledger entry appended, balances updated, and
 * the chain's cursor advanced to the last transfer. The guarded upsert on (chainId, txHash, logIndex)
 * takes a row lock, so a replay, a restart or a concurrent replica credits nothing twice; the partial
 * unique index on ledger_entries(deposit_id) backs it.
 *
 * After a reorg deeper than CONFIRMATIONS (see `reverseReorgedCredits`): a transfer mined again gives back
 * what its reversal took and cancels what the account still owed for it (an ADJUSTMENT referencing the
 * deposit, never more than the transfer), and an account's debt is paid from its next credits before they
 * add to the balance (ADJUSTMENTs, negative, referencing the deposits owed for).
 *
 * `transfers` must be ascending by (blockNumber, logIndex), each with at least the required
 * confirmations at `head` (the caller decides what confirmed means).
 */
export async function creditConfirmedTransfers(
  em: Em,
  chainId: number,
  transfers: readonly IndexedTransfer[],
  head: bigint,
  options: CreditOptions = {},
): Promise<CreditingEvent[]> {
  const rows = creditableTransfers(chainId, transfers, options);
  const last = transfers.at(-1);
  if (!last) return [];
  for (const { transfer } of rows) {
    if (transfer.blockNumber > head) {
      throw new CreditingError(
        `transfer ${transfer.txHash} is in block ${transfer.blockNumber}, past head ${head}`,
      );
    }
  }
  return inTransaction(em, async (tx) => {
    const query = sqlOf(tx).query;
    const events = rows.length > 0 ? await creditRows(query, rows, chainId, head) : [];
    await advanceCursor(query, chainId, { blockNumber: last.blockNumber, logIndex: last.logIndex });
    return events;
  });
}

/** The credit pass proper, for `rows` (at least one), in the caller's transaction. */
async function creditRows(
  query: Query,
  rows: readonly CreditableTransfer[],
  chainId: number,
  head: bigint,
): Promise<CreditingEvent[]> {
  const events: CreditingEvent[] = [];
  const { deposits, accounts } = await lockSenders(query, rows);
  const now = new Date();
  const credited = await upsertCreditedDeposits(query, chainId, head, now, deposits);
  if (credited.length === 0) return events;
  const creditedRows = new Map(credited.map((d) => [logKey(d.tx_hash, d.log_index), d]));
  // Calls paid per request (x402) with these settlements: priced ones are charged right after their deposit,
  // running ones get their hold on the account; either way the call's part is not there to pay a debt.
  const paid = await claimPaidCalls(query, [...new Set(credited.map((d) => d.tx_hash.toLowerCase()))]);
  const charged = new Set<string>();
  const debtBefore = new Map([...accounts.values()].map((a) => [a.id, a.debt]));
  // Read after the upsert, so a deposit credited again in this batch is no longer among the owed.
  const indebted = [...accounts.values()].filter((a) => a.debt > 0n).map((a) => a.id);
  const owed = await readOwedDeposits(query, indebted);
  const inputs: LedgerEntryInput[] = [];
  // In chain order, so each account's ledger follows the order its payments were mined in.
  for (const row of rows) {
    const creditedRow = creditedRows.get(row.key);
    if (!creditedRow) continue;
    const depositId = creditedRow.id;
    const account = accountOf(accounts, row.transfer.from);
    let credit = row.amount;
    if (!creditedRow.recredit) {
      inputs.push({
        accountId: account.id,
        amount: row.amount,
        reason: 'DEPOSIT',
        referenceId: depositId,
        depositId,
      });
    } else {
      // Credited before, taken back by a deep reorg, and now mined again: its DEPOSIT entry exists.
      // What the reversal took (and debt settlements paid) comes back as an ADJUSTMENT referencing
      // the deposit; what it still owed is cancelled. Together: never more than the transfer.
      const stillOwed = creditedRow.credited_net;
      if (stillOwed < 0n || stillOwed > row.amount || stillOwed > account.debt) {
        throw new CreditingError(
          `deposit ${depositId} nets ${stillOwed} of ${row.amount} micro-USD against a debt of ${account.debt}: the ledger is inconsistent`,
        );
      }
      account.debt -= stillOwed;
      credit = row.amount - stillOwed;
      if (credit > 0n) {
        inputs.push({ accountId: account.id, amount: credit, reason: 'ADJUSTMENT', referenceId: depositId });
      }
    }
    const txHash = row.transfer.txHash.toLowerCase();
    for (const call of paid.awaiting) {
      if (call.txHash !== txHash || call.accountId !== account.id || charged.has(call.usageId)) continue;
      inputs.push({
        accountId: account.id,
        amount: -call.userPrice,
        reason: 'USAGE',
        referenceId: call.usageId,
      });
      charged.add(call.usageId);
      credit -= call.userPrice;
    }
    for (const call of paid.running) {
      if (call.txHash === txHash && call.accountId === account.id) credit -= call.hold;
    }
    if (credit < 0n) credit = 0n;
    // A debt is paid from the credits that come in before they add to the balance.
    for (const payment of payDebt(owed.get(account.id) ?? [], credit, account.debt)) {
      inputs.push({
        accountId: account.id,
        amount: -payment.paid,
        reason: 'ADJUSTMENT',
        referenceId: payment.depositId,
      });
      account.debt -= payment.paid;
    }
    events.push({ type: 'depositUpdated', accountId: account.id, depositId });
  }
  const ledgerOf = new Map([...accounts.values()].map((a): [string, LedgerHead] => [a.id, a.ledger]));
  const batch = chainLedgerBatch((accountId) => ledgerOf.get(accountId) as LedgerHead, inputs, now);
  await writeLedgerBatch(query, batch);
  await markPaidCallsBilled(
    query,
    paid.awaiting.filter((call) => charged.has(call.usageId)),
    now,
  );
  await setDebts(
    query,
    [...accounts.values()]
      .filter((a) => a.debt !== debtBefore.get(a.id))
      .map((a) => ({ accountId: a.id, debt: a.debt })),
  );
  // The newest entry of each account is enough for a balance notification.
  const newest = new Map<string, string>();
  for (const entry of batch.entries) newest.set(entry.accountId, entry.id);
  for (const [accountId, ledgerEntryId] of newest) {
    events.push({ type: 'balanceUpdated', accountId, ledgerEntryId });
  }
  // In the crediting transaction: the webhook exists exactly when the credit committed.
  await enqueueDepositWebhookEvents(
    query,
    'DEPOSIT_CREDITED',
    credited.map((deposit) => deposit.id),
  );
  return events;
}

/** The last credited position on a chain, or null before the first credit. */
export async function getCreditingCursor(
  em: Em,
  chainId: number,
  options: { forUpdate?: boolean } = {},
): Promise<TransferCursor | null> {
  return readCursor(sqlOf(em).query, chainId, options.forUpdate ?? false);
}

export interface SyncPendingOptions extends CreditOptions {
  /**
   * False when the window answer may be truncated: pending deposits are then upserted but none is
   * marked REORGED, since a missing one may only be beyond the page.
   */
  windowComplete?: boolean;
}

/**
 * Mirrors the unconfirmed window into PENDING deposits: new ones inserted (creating the sender's
 * account), confirmations and a re-mined transfer's block updated, and every PENDING deposit of the
 * chain at or below `head` that is no longer in the window marked REORGED (one above it is a block the
 * indexer has not processed, or not again yet). CREDITED deposits are never touched.
 *
 * Call it after crediting everything confirmed at the same `head`: a PENDING deposit that is then
 * neither credited nor in the window is gone from the chain.
 */
export async function syncPendingDeposits(
  em: Em,
  chainId: number,
  windowTransfers: readonly IndexedTransfer[],
  head: bigint,
  confirmationsRequired: number,
  options: SyncPendingOptions = {},
): Promise<CreditingEvent[]> {
  const present = creditableTransfers(chainId, windowTransfers, options);
  // Confirmed ones are the credit pass's business, but they are still on chain: not reorged.
  const rows = present.filter((row) => head - row.transfer.blockNumber < BigInt(confirmationsRequired));
  return inTransaction(em, async (tx) => {
    const query = sqlOf(tx).query;
    const changed: { id: string; account_id: string }[] = [];
    const now = new Date();
    if (rows.length > 0) {
      const { deposits } = await lockSenders(query, rows);
      const upserted = await upsertPendingDeposits(query, chainId, head, now, deposits);
      changed.push(...upserted);
      // Once, when the transfer is first seen; confirmations go on through the depositUpdated subscription.
      const seen = upserted.filter((row) => row.inserted).map((row) => row.id);
      await enqueueDepositWebhookEvents(query, 'DEPOSIT_PENDING', seen);
    }
    if (options.windowComplete !== false) {
      const keys = present.map((r) => r.key);
      const reorged = await markMissingPendingReorged(query, chainId, head, keys, now);
      changed.push(...reorged);
      await enqueueDepositWebhookEvents(
        query,
        'DEPOSIT_REORGED',
        reorged.map((row) => row.id),
      );
    }
    return changed.map(
      (row): CreditingEvent => ({ type: 'depositUpdated', accountId: row.account_id, depositId: row.id }),
    );
  });
}
