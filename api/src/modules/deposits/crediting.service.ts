import { randomUUID } from 'node:crypto';
import {
  type ChainedLedgerEntry,
  chainLedgerEntry,
  isCreditableTransfer,
  type LedgerHead,
  tokenUnitsToMicroUsd,
  USDC_DECIMALS,
} from '@chainmeter/schema';
import {
  cursorBigint,
  cursorInteger,
  cursorUuid,
  decodeCursor,
  encodeCursor,
  type Page,
  type PageArgs,
  pageSize,
} from '../../db/cursor.ts';
import type { Em } from '../../db/orm.ts';
import { inTransaction } from '../../db/transaction.ts';
import { appendLedgerEntry, type LedgerReason } from '../ledger/ledger.service.ts';
import { Deposit, type IDeposit } from './deposits.entity.ts';
import { END_OF_BLOCK_LOG_INDEX, type IndexedTransfer, type TransferCursor } from './indexer.client.ts';

/** What a crediting step changed, published by the caller once the transaction has committed. */
export type CreditingEvent =
  | { type: 'depositUpdated'; accountId: string; depositId: string }
  | { type: 'balanceUpdated'; accountId: string; ledgerEntryId: string };

export class CreditingError extends Error {
  override name = 'CreditingError';
}

/*
 * Crediting is written as a handful of set-based statements per batch (unnest over arrays) rather than
 * ORM entities: a backlog of thousands of transfers must credit in seconds, and one statement per table
 * keeps the whole batch a single short transaction. Values are bound through MikroORM's escaping.
 * These statements bypass the identity map: use a fresh EntityManager (or transaction) per batch.
 */

interface TransferRow {
  transfer: IndexedTransfer;
  key: string;
  amount: bigint;
}

const logKey = (txHash: string, logIndex: number) => `${txHash.toLowerCase()}:${logIndex}`;

/** Drops duplicates and transfers that credit nothing (`isCreditableTransfer`), keeps order. */
function prepare(
  chainId: number,
  transfers: readonly IndexedTransfer[],
  tokenDecimals: number,
): TransferRow[] {
  const rows = new Map<string, TransferRow>();
  for (const transfer of transfers) {
    if (transfer.chainId !== chainId) {
      throw new CreditingError(`transfer ${transfer.txHash} is on chain ${transfer.chainId}, not ${chainId}`);
    }
    if (!isCreditableTransfer(transfer)) continue;
    const key = logKey(transfer.txHash, transfer.logIndex);
    rows.set(key, { transfer, key, amount: tokenUnitsToMicroUsd(transfer.value, tokenDecimals) });
  }
  return [...rows.values()];
}

interface LockedAccount {
  id: string;
  ledger: LedgerHead;
  /** micro-USD a deep reorg could not take back (see `reverseReorgedCredits`). */
  debt: bigint;
}

/**
 * Creates the accounts of these wallets if missing, then locks every one of them (in id order, so two
 * batches cannot deadlock) and returns their ledger state keyed by wallet address.
 */
async function lockAccounts(tx: Em, wallets: readonly string[]): Promise<Map<string, LockedAccount>> {
  const unique = [...new Set(wallets)];
  await tx.execute(
    `insert into accounts (wallet_address)
     select w from unnest(array[?]::text[]) as t(w)
     on conflict (wallet_address) do nothing`,
    [unique],
  );
  const rows: {
    id: string;
    wallet_address: string;
    balance: string;
    debt: string;
    ledger_seq: number;
    ledger_head: string | null;
  }[] = await tx.execute(
    `select id, wallet_address, balance::text as balance, debt::text as debt, ledger_seq, ledger_head
       from accounts where wallet_address = any(array[?]::text[]) order by id for update`,
    [unique],
  );
  return new Map(
    rows.map((row) => [
      row.wallet_address,
      {
        id: row.id,
        ledger: { seq: row.ledger_seq, hash: row.ledger_head, balance: BigInt(row.balance) },
        debt: BigInt(row.debt),
      },
    ]),
  );
}

/**
 * What the account has been credited for deposit `<alias>` and not taken back: its DEPOSIT entry plus the
 * ADJUSTMENTs that reference it (reversal, debt settlements, re-credit). It equals the deposit's amount
 * while the deposit is CREDITED; otherwise it is what the account still owes for it.
 */
const creditedNetSql = (alias: string) =>
  `(select coalesce(sum(l.amount), 0) from ledger_entries l
     where l.account_id = ${alias}.account_id and l.reference_id = ${alias}.id::text
       and (l.reason = 'ADJUSTMENT' or l.deposit_id = ${alias}.id))`;

/** A deposit the account still owes for (debt), oldest first. */
interface OwedDeposit {
  depositId: string;
  owed: bigint;
}

/** Per account id: the deposits that are not CREDITED and still carry part of the account's debt. */
async function owedDeposits(tx: Em, accountIds: readonly string[]): Promise<Map<string, OwedDeposit[]>> {
  const owed = new Map<string, OwedDeposit[]>();
  if (accountIds.length === 0) return owed;
  const rows: { id: string; account_id: string; owed: string }[] = await tx.execute(
    `select d.id, d.account_id, n.owed::text as owed from deposits d,
       lateral (select ${creditedNetSql('d')} as owed) n
     where d.account_id = any(array[?]::uuid[]) and d.status <> 'CREDITED' and n.owed > 0
     order by d.block_number, d.log_index, d.id`,
    [accountIds],
  );
  for (const row of rows) {
    const list = owed.get(row.account_id) ?? [];
    list.push({ depositId: row.id, owed: BigInt(row.owed) });
    owed.set(row.account_id, list);
  }
  return owed;
}

/**
 * How `available` micro-USD pays an account's debt: the owed deposits in order (oldest first), each paid at
 * most what it owes, never more than the whole `debt`. Lowers each paid deposit's `owed` in place, so a
 * list shared by several credits of one batch stays current. The caller writes one ADJUSTMENT per payment,
 * referencing its deposit.
 */
function payDebt(
  owed: OwedDeposit[],
  available: bigint,
  debt: bigint,
): { depositId: string; paid: bigint }[] {
  const payments: { depositId: string; paid: bigint }[] = [];
  let left = available;
  if (debt < left) left = debt;
  for (const debtor of owed) {
    if (left === 0n) break;
    let paid = debtor.owed;
    if (left < paid) paid = left;
    if (paid === 0n) continue;
    debtor.owed -= paid;
    left -= paid;
    payments.push({ depositId: debtor.depositId, paid });
  }
  return payments;
}

function accountOf(accounts: Map<string, LockedAccount>, wallet: string): LockedAccount {
  const account = accounts.get(wallet);
  if (!account) throw new CreditingError(`no account row for ${wallet} after upsert`);
  return account;
}

/**
 * The deposit columns of `rows` as the parallel arrays an `unnest(...) as t(tx_hash, log_index, block_number,
 * block_hash, from_address, account_id, amount_token, amount)` reads.
 */
function depositColumns(rows: readonly TransferRow[], accounts: Map<string, LockedAccount>) {
  return [
    rows.map((r) => r.transfer.txHash.toLowerCase()),
    rows.map((r) => r.transfer.logIndex),
    rows.map((r) => r.transfer.blockNumber.toString()),
    rows.map((r) => r.transfer.blockHash.toLowerCase()),
    rows.map((r) => r.transfer.from),
    rows.map((r) => accountOf(accounts, r.transfer.from).id),
    rows.map((r) => r.transfer.value.toString()),
    rows.map((r) => r.amount.toString()),
  ];
}

export interface CreditOptions {
  /** Decimals of the token; USDC (6) maps one base unit to one micro-USD. */
  tokenDecimals?: number;
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
  const rows = prepare(chainId, transfers, options.tokenDecimals ?? USDC_DECIMALS);
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
    const events: CreditingEvent[] = [];
    if (rows.length > 0) {
      const accounts = await lockAccounts(
        tx,
        rows.map((row) => row.transfer.from),
      );
      const now = new Date();
      const credited: {
        id: string;
        tx_hash: string;
        log_index: number;
        recredit: boolean;
        credited_net: string;
      }[] = await tx.execute(
        `insert into deposits (chain_id, tx_hash, log_index, block_number, block_hash, from_address, account_id,
           amount_token, amount, status, confirmations, credited_at, created_at, updated_at)
         select ?, t.tx_hash, t.log_index, t.block_number, t.block_hash, t.from_address, t.account_id,
           t.amount_token, t.amount, 'CREDITED', greatest(?::bigint - t.block_number, 0)::int,
           ?::timestamptz, ?::timestamptz, ?::timestamptz
         from unnest(array[?]::text[], array[?]::int[], array[?]::bigint[], array[?]::text[], array[?]::text[],
           array[?]::uuid[], array[?]::bigint[], array[?]::bigint[])
           as t(tx_hash, log_index, block_number, block_hash, from_address, account_id, amount_token, amount)
         on conflict (chain_id, tx_hash, log_index) do update set
           status = 'CREDITED', block_number = excluded.block_number, block_hash = excluded.block_hash,
           confirmations = excluded.confirmations, credited_at = excluded.credited_at,
           updated_at = excluded.updated_at
         where deposits.status <> 'CREDITED'
         returning id, tx_hash, log_index,
           exists (select 1 from ledger_entries l where l.deposit_id = deposits.id) as recredit,
           case when exists (select 1 from ledger_entries l where l.deposit_id = deposits.id)
             then ${creditedNetSql('deposits')} else 0 end::text as credited_net`,
        [
          chainId,
          head.toString(),
          now.toISOString(),
          now.toISOString(),
          now.toISOString(),
          ...depositColumns(rows, accounts),
        ],
      );
      if (credited.length > 0) {
        const creditedRows = new Map(credited.map((d) => [logKey(d.tx_hash, d.log_index), d]));
        // Read after the upsert, so a deposit credited again in this batch is no longer among the owed.
        const indebted = [...accounts.values()].filter((a) => a.debt > 0n).map((a) => a.id);
        const owed = await owedDeposits(tx, indebted);
        const entries: (ChainedLedgerEntry & { id: string; depositId: string })[] = [];
        const creditedAccounts = new Set<string>();
        const append = (account: LockedAccount, amount: bigint, reason: LedgerReason, depositId: string) => {
          const chained = chainLedgerEntry(account.ledger, {
            accountId: account.id,
            amount,
            reason,
            referenceId: depositId,
            createdAt: now,
          });
          entries.push({ ...chained.entry, id: randomUUID(), depositId });
          account.ledger = chained.head;
        };
        // In chain order, so each account's ledger follows the order its payments were mined in.
        for (const row of rows) {
          const creditedRow = creditedRows.get(row.key);
          if (!creditedRow) continue;
          const depositId = creditedRow.id;
          const account = accountOf(accounts, row.transfer.from);
          let credit = row.amount;
          if (!creditedRow.recredit) {
            append(account, row.amount, 'DEPOSIT', depositId);
          } else {
            // Credited before, taken back by a deep reorg, and now mined again: its DEPOSIT entry exists.
            // What the reversal took (and debt settlements paid) comes back as an ADJUSTMENT referencing
            // the deposit; what it still owed is cancelled. Together: never more than the transfer.
            const stillOwed = BigInt(creditedRow.credited_net);
            if (stillOwed < 0n || stillOwed > row.amount || stillOwed > account.debt) {
              throw new CreditingError(
                `deposit ${depositId} nets ${stillOwed} of ${row.amount} micro-USD against a debt of ${account.debt}: the ledger is inconsistent`,
              );
            }
            account.debt -= stillOwed;
            credit = row.amount - stillOwed;
            if (credit > 0n) append(account, credit, 'ADJUSTMENT', depositId);
          }
          // A debt is paid from the credits that come in before they add to the balance.
          for (const payment of payDebt(owed.get(account.id) ?? [], credit, account.debt)) {
            append(account, -payment.paid, 'ADJUSTMENT', payment.depositId);
            account.debt -= payment.paid;
          }
          creditedAccounts.add(account.id);
          events.push({ type: 'depositUpdated', accountId: account.id, depositId });
        }
        if (entries.length > 0) {
          await tx.execute(
            `insert into ledger_entries (id, account_id, seq, amount, balance_after, reason, reference_id, deposit_id,
               created_at, prev_hash, hash)
             select t.id, t.account_id, t.seq, t.amount, t.balance_after, t.reason, t.deposit_id::text,
               case when t.reason = 'DEPOSIT' then t.deposit_id end, ?::timestamptz, nullif(t.prev_hash, ''), t.hash
             from unnest(array[?]::uuid[], array[?]::uuid[], array[?]::int[], array[?]::bigint[], array[?]::bigint[],
               array[?]::text[], array[?]::uuid[], array[?]::text[], array[?]::text[])
               as t(id, account_id, seq, amount, balance_after, reason, deposit_id, prev_hash, hash)`,
            [
              now.toISOString(),
              entries.map((e) => e.id),
              entries.map((e) => e.accountId),
              entries.map((e) => e.seq),
              entries.map((e) => e.amount.toString()),
              entries.map((e) => e.balanceAfter.toString()),
              entries.map((e) => e.reason),
              entries.map((e) => e.depositId),
              // MikroORM inlines arrays as literal lists, where a null would vanish: '' stands for none.
              entries.map((e) => e.prevHash ?? ''),
              entries.map((e) => e.hash),
            ],
          );
        }
        const changed = [...accounts.values()].filter((a) => creditedAccounts.has(a.id));
        await tx.execute(
          `update accounts a set balance = v.balance, debt = v.debt, ledger_seq = v.seq, ledger_head = nullif(v.head, '')
           from unnest(array[?]::uuid[], array[?]::bigint[], array[?]::bigint[], array[?]::int[], array[?]::text[])
             as v(id, balance, debt, seq, head)
           where a.id = v.id`,
          [
            changed.map((a) => a.id),
            changed.map((a) => a.ledger.balance.toString()),
            changed.map((a) => a.debt.toString()),
            changed.map((a) => a.ledger.seq),
            changed.map((a) => a.ledger.hash ?? ''),
          ],
        );
        // The newest entry of each account is enough for a balance notification.
        const newest = new Map<string, string>();
        for (const entry of entries) newest.set(entry.accountId, entry.id);
        for (const [accountId, ledgerEntryId] of newest) {
          events.push({ type: 'balanceUpdated', accountId, ledgerEntryId });
        }
      }
    }
    await advanceCursor(tx, chainId, { blockNumber: last.blockNumber, logIndex: last.logIndex });
    return events;
  });
}

/** Moves the chain's cursor forward (never back: a slower replica cannot rewind it). */
async function advanceCursor(tx: Em, chainId: number, cursor: TransferCursor): Promise<void> {
  await tx.execute(
    `insert into crediting_cursors (chain_id, block_number, log_index, updated_at) values (?, ?, ?, now())
     on conflict (chain_id) do update set block_number = excluded.block_number, log_index = excluded.log_index,
       updated_at = excluded.updated_at
     where (crediting_cursors.block_number, crediting_cursors.log_index) < (excluded.block_number, excluded.log_index)`,
    [chainId, cursor.blockNumber.toString(), cursor.logIndex],
  );
}

/** The last credited position on a chain, or null before the first credit. */
export async function getCreditingCursor(
  em: Em,
  chainId: number,
  options: { forUpdate?: boolean } = {},
): Promise<TransferCursor | null> {
  const rows: { block_number: string; log_index: number }[] = await em.execute(
    `select block_number::text as block_number, log_index from crediting_cursors where chain_id = ?${
      options.forUpdate ? ' for update' : ''
    }`,
    [chainId],
  );
  const row = rows[0];
  return row ? { blockNumber: BigInt(row.block_number), logIndex: row.log_index } : null;
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
  const present = prepare(chainId, windowTransfers, options.tokenDecimals ?? USDC_DECIMALS);
  // Confirmed ones are the credit pass's business, but they are still on chain: not reorged.
  const rows = present.filter((row) => head - row.transfer.blockNumber < BigInt(confirmationsRequired));
  return inTransaction(em, async (tx) => {
    const events: CreditingEvent[] = [];
    const now = new Date().toISOString();
    if (rows.length > 0) {
      const accounts = await lockAccounts(
        tx,
        rows.map((row) => row.transfer.from),
      );
      const changed: { id: string; account_id: string }[] = await tx.execute(
        `insert into deposits (chain_id, tx_hash, log_index, block_number, block_hash, from_address, account_id,
           amount_token, amount, status, confirmations, created_at, updated_at)
         select ?, t.tx_hash, t.log_index, t.block_number, t.block_hash, t.from_address, t.account_id,
           t.amount_token, t.amount, 'PENDING', greatest(?::bigint - t.block_number, 0)::int,
           ?::timestamptz, ?::timestamptz
         from unnest(array[?]::text[], array[?]::int[], array[?]::bigint[], array[?]::text[], array[?]::text[],
           array[?]::uuid[], array[?]::bigint[], array[?]::bigint[])
           as t(tx_hash, log_index, block_number, block_hash, from_address, account_id, amount_token, amount)
         on conflict (chain_id, tx_hash, log_index) do update set
           status = 'PENDING', block_number = excluded.block_number, block_hash = excluded.block_hash,
           confirmations = excluded.confirmations, updated_at = excluded.updated_at
         where deposits.status <> 'CREDITED' and (deposits.status <> 'PENDING'
           or deposits.block_number <> excluded.block_number or deposits.block_hash <> excluded.block_hash
           or deposits.confirmations <> excluded.confirmations)
         returning id, account_id`,
        [chainId, head.toString(), now, now, ...depositColumns(rows, accounts)],
      );
      for (const row of changed)
        events.push({ type: 'depositUpdated', accountId: row.account_id, depositId: row.id });
    }
    if (options.windowComplete !== false) {
      const keys = present.map((r) => r.key);
      const reorged: { id: string; account_id: string }[] = await tx.execute(
        `update deposits set status = 'REORGED', updated_at = ?::timestamptz
         where chain_id = ? and status = 'PENDING' and block_number <= ?
           and not (tx_hash || ':' || log_index::text = any(array[?]::text[]))
         returning id, account_id`,
        [now, chainId, head.toString(), keys.length > 0 ? keys : ['']],
      );
      for (const row of reorged)
        events.push({ type: 'depositUpdated', accountId: row.account_id, depositId: row.id });
    }
    return events;
  });
}

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
  const present = new Map(
    prepare(chainId, indexed, options.tokenDecimals ?? USDC_DECIMALS).map((r) => [r.key, r.transfer]),
  );
  return inTransaction(em, async (tx) => {
    const credited: {
      id: string;
      account_id: string;
      tx_hash: string;
      log_index: number;
      block_number: string;
      block_hash: string;
      amount: string;
    }[] = await tx.execute(
      `select id, account_id, tx_hash, log_index, block_number::text, block_hash, amount::text from deposits
       where chain_id = ? and status = 'CREDITED' and block_number between ? and ?
       order by block_number, log_index`,
      [chainId, range.fromBlock.toString(), range.toBlock.toString()],
    );
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
      const reorged: unknown[] = await tx.execute(
        `update deposits set status = 'REORGED', confirmations = 0, credited_at = null, updated_at = now()
         where id = ? and status = 'CREDITED' returning id`,
        [deposit.id],
      );
      if (reorged.length === 0) continue;
      const [account] = await tx.execute<{ balance: string; held: string }[]>(
        'select balance::text, held::text from accounts where id = ? for update',
        [deposit.account_id],
      );
      const amount = BigInt(deposit.amount);
      const available = account ? BigInt(account.balance) - BigInt(account.held) : 0n;
      const taken = available <= 0n ? 0n : available < amount ? available : amount;
      if (taken < amount) {
        // What was spent (or is held by calls in flight) cannot be taken back now: the account owes it.
        await tx.execute('update accounts set debt = debt + ? where id = ?', [
          (amount - taken).toString(),
          deposit.account_id,
        ]);
      }
      if (taken > 0n) {
        const entry = await appendLedgerEntry(tx, {
          accountId: deposit.account_id,
          amount: -taken,
          reason: 'ADJUSTMENT',
          referenceId: deposit.id,
        });
        events.push({ type: 'balanceUpdated', accountId: deposit.account_id, ledgerEntryId: entry.id });
      }
      events.push({ type: 'depositUpdated', accountId: deposit.account_id, depositId: deposit.id });
      reversed.push({
        depositId: deposit.id,
        accountId: deposit.account_id,
        txHash: deposit.tx_hash,
        logIndex: deposit.log_index,
        blockNumber: BigInt(deposit.block_number),
        amount,
        reversed: taken,
        shortfall: amount - taken,
      });
    }
    if (moved.length > 0) {
      await tx.execute(
        `update deposits d set block_number = t.block_number, block_hash = t.block_hash, updated_at = now()
         from unnest(array[?]::uuid[], array[?]::bigint[], array[?]::text[]) as t(id, block_number, block_hash)
         where d.id = t.id and d.status = 'CREDITED'`,
        [
          moved.map((m) => m.id),
          moved.map((m) => m.transfer.blockNumber.toString()),
          moved.map((m) => m.transfer.blockHash.toLowerCase()),
        ],
      );
      for (const m of moved) events.push({ type: 'depositUpdated', accountId: m.accountId, depositId: m.id });
    }
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
    const accounts: { id: string; spendable: string; debt: string }[] = await tx.execute(
      `select id, (balance - held)::text as spendable, debt::text as debt from accounts
       where debt > 0 and balance > held order by id for update`,
    );
    if (accounts.length === 0) return [];
    const owed = await owedDeposits(
      tx,
      accounts.map((a) => a.id),
    );
    const events: CreditingEvent[] = [];
    for (const account of accounts) {
      let paidTotal = 0n;
      let last: string | null = null;
      const payments = payDebt(owed.get(account.id) ?? [], BigInt(account.spendable), BigInt(account.debt));
      for (const payment of payments) {
        const entry = await appendLedgerEntry(tx, {
          accountId: account.id,
          amount: -payment.paid,
          reason: 'ADJUSTMENT',
          referenceId: payment.depositId,
        });
        last = entry.id;
        paidTotal += payment.paid;
      }
      if (paidTotal === 0n) continue;
      await tx.execute('update accounts set debt = debt - ? where id = ?', [
        paidTotal.toString(),
        account.id,
      ]);
      if (last) events.push({ type: 'balanceUpdated', accountId: account.id, ledgerEntryId: last });
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
    const cursor = await getCreditingCursor(tx, chainId, { forUpdate: true });
    if (!cursor) return null;
    const passed = prepare(chainId, indexed, options.tokenDecimals ?? USDC_DECIMALS).filter(
      ({ transfer: t }) =>
        t.blockNumber >= range.fromBlock &&
        t.blockNumber <= range.toBlock &&
        (t.blockNumber < cursor.blockNumber ||
          (t.blockNumber === cursor.blockNumber && t.logIndex <= cursor.logIndex)),
    );
    if (passed.length === 0) return null;
    const creditedRows: { tx_hash: string; log_index: number }[] = await tx.execute(
      `select d.tx_hash, d.log_index from deposits d
       join unnest(array[?]::text[], array[?]::int[]) as t(tx_hash, log_index)
         on d.chain_id = ? and d.tx_hash = t.tx_hash and d.log_index = t.log_index
       where d.status = 'CREDITED'`,
      [passed.map((r) => r.transfer.txHash.toLowerCase()), passed.map((r) => r.transfer.logIndex), chainId],
    );
    const credited = new Set(creditedRows.map((row) => logKey(row.tx_hash, row.log_index)));
    // `passed` keeps the indexer's ascending order: the first one missing is the earliest.
    const missed = passed.find((row) => !credited.has(row.key));
    if (!missed) return null;
    const block = missed.transfer.blockNumber;
    if (block === 0n) {
      await tx.execute('delete from crediting_cursors where chain_id = ?', [chainId]);
      return { to: null };
    }
    const rewound = { blockNumber: block - 1n, logIndex: END_OF_BLOCK_LOG_INDEX };
    await tx.execute(
      'update crediting_cursors set block_number = ?, log_index = ?, updated_at = now() where chain_id = ?',
      [rewound.blockNumber.toString(), rewound.logIndex, chainId],
    );
    return { to: rewound };
  });
}

const DEPOSIT_CURSOR = 'deposit';

export function depositCursor(deposit: Pick<IDeposit, 'blockNumber' | 'logIndex' | 'id'>): string {
  return encodeCursor(DEPOSIT_CURSOR, [deposit.blockNumber, deposit.logIndex, deposit.id]);
}

/**
 * An account's deposits, newest on chain first: keyset on (blockNumber, logIndex, id), so a page does
 * not shift when a new deposit arrives.
 */
export async function listDeposits(em: Em, accountId: string, args: PageArgs = {}): Promise<Page<IDeposit>> {
  const first = pageSize(args.first);
  let where: object = { account: accountId };
  if (args.after) {
    const [block, logIndex, rawId] = decodeCursor(DEPOSIT_CURSOR, args.after, 3);
    const b = cursorBigint(DEPOSIT_CURSOR, block);
    const l = cursorInteger(DEPOSIT_CURSOR, logIndex);
    const id = cursorUuid(DEPOSIT_CURSOR, rawId);
    where = {
      account: accountId,
      $or: [
        { blockNumber: { $lt: b } },
        { blockNumber: b, logIndex: { $lt: l } },
        { blockNumber: b, logIndex: l, id: { $lt: id } },
      ],
    };
  }
  const rows = await em.find(Deposit, where, {
    orderBy: [{ blockNumber: 'desc' }, { logIndex: 'desc' }, { id: 'desc' }],
    limit: first + 1,
  });
  const entries = rows.slice(0, first);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? depositCursor(last) : null };
}

/** The deposit fields the read path shows: entities and plain rows alike fit it. */
export type DepositView = Pick<
  IDeposit,
  | 'id'
  | 'chainId'
  | 'txHash'
  | 'logIndex'
  | 'blockNumber'
  | 'fromAddress'
  | 'amountToken'
  | 'amount'
  | 'status'
  | 'confirmations'
  | 'creditedAt'
>;

/** Deposits by id in one statement, as plain rows (the ledger page's `deposit` field loads 100 at once). */
export async function getDepositsByIds(em: Em, ids: readonly string[]): Promise<DepositView[]> {
  if (ids.length === 0) return [];
  const rows: {
    id: string;
    chain_id: number;
    tx_hash: string;
    log_index: number;
    block_number: string;
    from_address: string;
    amount_token: string;
    amount: string;
    status: IDeposit['status'];
    confirmations: number;
    credited_at: Date | string | null;
  }[] = await em.execute(
    `select id, chain_id, tx_hash, log_index, block_number::text as block_number, from_address,
       amount_token::text as amount_token, amount::text as amount, status, confirmations, credited_at
     from deposits where id = any(array[?]::uuid[])`,
    [ids],
  );
  return rows.map((row) => ({
    id: row.id,
    chainId: row.chain_id,
    txHash: row.tx_hash,
    logIndex: row.log_index,
    blockNumber: BigInt(row.block_number),
    fromAddress: row.from_address,
    amountToken: BigInt(row.amount_token),
    amount: BigInt(row.amount),
    status: row.status,
    confirmations: row.confirmations,
    creditedAt: row.credited_at === null ? null : new Date(row.credited_at),
  }));
}
