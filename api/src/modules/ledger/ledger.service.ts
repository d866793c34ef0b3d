import { chainLedgerEntry } from '@chainmeter/schema';
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
import { inTransaction } from '../../db/transaction.ts';
import { Account } from '../accounts/accounts.entity.ts';
import { Deposit } from '../deposits/deposits.entity.ts';
import { type ILedgerEntry, LedgerEntry } from './ledger.entity.ts';

export type LedgerReason = ILedgerEntry['reason'];

/** A debit larger than the balance. Expected (a user spending more than they have), not a bug. */
export class InsufficientBalanceError extends Error {
  override name = 'InsufficientBalanceError';
  readonly code = 'INSUFFICIENT_CREDITS';
  readonly accountId: string;
  readonly balance: bigint;
  readonly amount: bigint;
  constructor(accountId: string, balance: bigint, amount: bigint) {
    super(`account ${accountId} has ${balance} micro-USD, cannot apply ${amount}`);
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
}

/**
 * Appends one entry to an account's ledger and moves its balance, in the caller's transaction (or a
 * new one). The account row is locked (`select ... for update`) first, so concurrent appends on one
 * account serialize and each sees the previous entry's seq, balance and hash.
 *
 * @example
 * const entry = await appendLedgerEntry(tx, { accountId, amount: -1234n, reason: 'USAGE', referenceId: usage.id });
 */
export async function appendLedgerEntry(em: Em, params: AppendLedgerEntryParameters): Promise<ILedgerEntry> {
  if ((params.reason === 'DEPOSIT') !== (params.depositId !== undefined)) {
    throw new LedgerEntryError('a DEPOSIT entry needs a depositId, and only a DEPOSIT entry may have one');
  }
  return inTransaction(em, async (tx) => {
    const account = await tx.findOneOrFail(
      Account,
      { id: params.accountId },
      { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true },
    );
    const { entry: chained } = chainLedgerEntry(
      { seq: account.ledgerSeq, hash: account.ledgerHead ?? null, balance: account.balance },
      {
        accountId: account.id,
        amount: params.amount,
        reason: params.reason,
        referenceId: params.referenceId,
        // Millisecond precision, as the hash encodes it; a timestamptz keeps it exactly.
        createdAt: new Date(),
      },
    );
    if (chained.balanceAfter < 0n) {
      throw new InsufficientBalanceError(account.id, account.balance, params.amount);
    }
    const entry = tx.create(LedgerEntry, {
      account,
      seq: chained.seq,
      amount: chained.amount,
      balanceAfter: chained.balanceAfter,
      reason: params.reason,
      referenceId: chained.referenceId,
      deposit: params.depositId ? tx.getReference(Deposit, params.depositId) : null,
      createdAt: chained.createdAt,
      prevHash: chained.prevHash,
      hash: chained.hash,
    });
    account.balance = chained.balanceAfter;
    account.ledgerSeq = chained.seq;
    account.ledgerHead = chained.hash;
    await tx.flush();
    return entry;
  });
}

const LEDGER_CURSOR = 'ledger';

export function ledgerCursor(entry: Pick<ILedgerEntry, 'seq'>): string {
  return encodeCursor(LEDGER_CURSOR, [entry.seq]);
}

/**
 * A ledger entry as the read path serves it: plain columns read with one SQL statement, no entity
 * hydration (a page of 100 entries is a hot read; hydrating them cost more than the query itself).
 */
export interface LedgerEntryView {
  id: string;
  accountId: string;
  seq: number;
  amount: bigint;
  balanceAfter: bigint;
  reason: LedgerReason;
  referenceId: string;
  depositId: string | null;
  createdAt: Date;
  prevHash: string | null;
  hash: string;
}

const VIEW_COLUMNS = `id, account_id, seq, amount::text as amount, balance_after::text as balance_after, reason,
  reference_id, deposit_id, created_at, prev_hash, hash`;

interface LedgerRow {
  id: string;
  account_id: string;
  seq: number;
  amount: string;
  balance_after: string;
  reason: LedgerReason;
  reference_id: string;
  deposit_id: string | null;
  created_at: Date | string;
  prev_hash: string | null;
  hash: string;
}

function toView(row: LedgerRow): LedgerEntryView {
  return {
    id: row.id,
    accountId: row.account_id,
    seq: row.seq,
    amount: BigInt(row.amount),
    balanceAfter: BigInt(row.balance_after),
    reason: row.reason,
    referenceId: row.reference_id,
    depositId: row.deposit_id,
    createdAt: new Date(row.created_at),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** An account's entries, newest first, paged by seq (keyset, so pages stay stable while entries arrive). */
export async function listLedger(
  em: Em,
  accountId: string,
  args: PageArgs = {},
): Promise<Page<LedgerEntryView>> {
  const first = pageSize(args.first);
  const before = args.after
    ? cursorInteger(LEDGER_CURSOR, decodeCursor(LEDGER_CURSOR, args.after, 1)[0])
    : null;
  const rows: LedgerRow[] = await em.execute(
    `select ${VIEW_COLUMNS} from ledger_entries
     where account_id = ?${before === null ? '' : ' and seq < ?'} order by seq desc limit ?`,
    before === null ? [accountId, first + 1] : [accountId, before, first + 1],
  );
  const entries = rows.slice(0, first).map(toView);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? ledgerCursor(last) : null };
}

/** One entry by id (for subscription events), or null. */
export async function getLedgerEntry(em: Em, id: string): Promise<LedgerEntryView | null> {
  const rows: LedgerRow[] = await em.execute(`select ${VIEW_COLUMNS} from ledger_entries where id = ?`, [id]);
  return rows[0] ? toView(rows[0]) : null;
}

/** Every entry of an account, oldest first (for audits and tests). */
export async function listAllLedgerEntries(em: Em, accountId: string): Promise<ILedgerEntry[]> {
  return em.find(LedgerEntry, { account: accountId }, { orderBy: { seq: 'asc' } });
}
