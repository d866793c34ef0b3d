import { LockMode } from '@mikro-orm/core';
import {
  cursorInteger,
  decodeCursor,
  encodeCursor,
  type Page,
  type PageArgs,
  pageSize,
} from '../../db/cursor.ts';
import type { Em } from '../../db/orm.ts';
import { type SqlRunner, sqlOf } from '../../db/sql.ts';
import { inTransaction } from '../../db/transaction.ts';
import { ExpectedError } from '../../errors.ts';
import { Account } from '../accounts/accounts.entity.ts';
import type { ILedgerEntry } from './ledger.entity.ts';
import {
  chainLedgerBatch,
  type LedgerEntryView,
  type LedgerReason,
  readLedgerEntry,
  readLedgerPage,
  writeLedgerBatch,
} from './ledger.store.ts';

/** A debit larger than the balance. Expected (a user spending more than they have), not a bug. */
export class InsufficientBalanceError extends ExpectedError {
  override name = 'InsufficientBalanceError';
  readonly accountId: string;
  readonly balance: bigint;
  readonly amount: bigint;
  /**
   * @param reserved what in-flight calls hold and what a deep reorg left owed, when the debit had to fit
   * what the account can spend (said in the message and in `extensions`, so an operator sees why)
   */
  constructor(accountId: string, balance: bigint, amount: bigint, reserved?: { held: bigint; debt: bigint }) {
    const spendable = reserved ? balance - reserved.held - reserved.debt : balance;
    super(
      'INSUFFICIENT_CREDITS',
      reserved
        ? `account ${accountId} can spend ${spendable} micro-USD (balance ${balance}, held by calls in flight ${reserved.held}, debt ${reserved.debt}), cannot apply ${amount}`
        : `account ${accountId} has ${balance} micro-USD, cannot apply ${amount}`,
      reserved
        ? {
            balance: balance.toString(),
            held: reserved.held.toString(),
            debt: reserved.debt.toString(),
            spendable: spendable.toString(),
          }
        : {},
    );
    this.accountId = accountId;
    this.balance = balance;
    this.amount = amount;
  }
}

export class LedgerEntryError extends Error {
  override name = 'LedgerEntryError';
}

export interface AppendLedgerEntryParameters {
  accountId: string;
  /** Signed micro-USD: positive credits, negative debits. */
  amount: bigint;
  reason: LedgerReason;
  /** The deposit id for DEPOSIT, the usage id for USAGE. */
  referenceId: string;
  /** Required for DEPOSIT, refused otherwise. */
  depositId?: string;
  /** An operator's entry: their wallet and reason, both recorded on the entry and covered by its hash. */
  operator?: { address: string; reason: string };
  /**
   * A debit may only take what the account can spend (balance - held - debt), not merely what keeps the
   * balance at zero or above: what in-flight calls hold must stay there for their settlement, and a
   * deep-reorg debt is paid before anything else. Else `InsufficientBalanceError`.
   */
  withinSpendable?: boolean;
}

/**
 * Appends one entry to an account's ledger and moves its balance (through `ledger.store.ts`), in the
 * caller's transaction (or a new one). The account row is locked (`select ... for update`) first, so
 * concurrent appends on one account serialize and each sees the previous entry's seq, balance and hash.
 *
 * @example
 * const entry = await appendLedgerEntry(tx, { accountId, amount: -1234n, reason: 'USAGE', referenceId: usage.id });
 */
export async function appendLedgerEntry(
  em: Em,
  params: AppendLedgerEntryParameters,
): Promise<LedgerEntryView> {
  if ((params.reason === 'DEPOSIT') !== (params.depositId !== undefined)) {
    throw new LedgerEntryError('a DEPOSIT entry needs a depositId, and only a DEPOSIT entry may have one');
  }
  return inTransaction(em, async (tx) => {
    // Locked and refreshed through the ORM: a caller's Account entity sees the new head afterwards too.
    const account = await tx.findOneOrFail(
      Account,
      { id: params.accountId },
      { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true },
    );
    const spendable = account.balance - account.held - account.debt;
    if (params.withinSpendable && params.amount < 0n && -params.amount > spendable) {
      throw new InsufficientBalanceError(account.id, account.balance, params.amount, {
        held: account.held,
        debt: account.debt,
      });
    }
    const batch = chainLedgerBatch(
      () => ({ seq: account.ledgerSeq, hash: account.ledgerHead ?? null, balance: account.balance }),
      [
        {
          accountId: params.accountId,
          amount: params.amount,
          reason: params.reason,
          referenceId: params.referenceId,
          depositId: params.depositId,
          operator: params.operator?.address ?? null,
          reasonText: params.operator?.reason ?? null,
        },
      ],
      // Millisecond precision, as the hash encodes it; a timestamptz keeps it exactly.
      new Date(),
    );
    const [entry] = batch.entries;
    if (!entry) throw new LedgerEntryError('no entry chained');
    if (entry.balanceAfter < 0n) {
      throw new InsufficientBalanceError(account.id, account.balance, params.amount);
    }
    await writeLedgerBatch(sqlOf(tx).query, batch);
    await tx.refresh(account);
    return { ...entry, operator: entry.operator ?? null, reasonText: entry.reasonText ?? null };
  });
}

const LEDGER_CURSOR = 'ledger';

export function ledgerCursor(entry: Pick<ILedgerEntry, 'seq'>): string {
  return encodeCursor(LEDGER_CURSOR, [entry.seq]);
}

/** An account's entries, newest first, paged by seq (keyset, so pages stay stable while entries arrive). */
export async function listLedger(
  sql: SqlRunner,
  accountId: string,
  args: PageArgs = {},
): Promise<Page<LedgerEntryView>> {
  const first = pageSize(args.first);
  const before = args.after
    ? cursorInteger(LEDGER_CURSOR, decodeCursor(LEDGER_CURSOR, args.after, 1)[0])
    : null;
  const rows = await readLedgerPage(sql.query, accountId, before, first + 1);
  const entries = rows.slice(0, first);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? ledgerCursor(last) : null };
}

/** One entry by id (for subscription events), or null. */
export async function getLedgerEntry(em: Em, id: string): Promise<LedgerEntryView | null> {
  return readLedgerEntry(sqlOf(em).query, id);
}
