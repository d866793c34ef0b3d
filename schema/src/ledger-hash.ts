import { sha256, stringToBytes } from 'viem';

/**
 * The ledger's hash chain, shared by the API (which writes it) and the audit CLI (which re-checks it).
 *
 * hash(entry) = sha256(utf8(canonical(prevHash, entry))), as 64 lowercase hex digits WITHOUT a `0x`
 * prefix. `canonical` is the JSON text of an array of strings, in this order:
 *
 *   ["chainmeter-ledger-v1", prevHash, accountId, seq, amount, balanceAfter, reason, referenceId, createdAt]
 *
 * - prevHash: the previous entry's hash of the same account, or 64 zeros for the account's first entry;
 * - seq, amount, balanceAfter: base-10 integers (amount and balanceAfter in micro-USD, amount signed);
 * - createdAt: ISO-8601 UTC at millisecond precision (`Date.prototype.toISOString`), which a
 *   PostgreSQL `timestamptz` round-trip preserves exactly.
 *
 * An entry written by an operator (an ADJUSTMENT through `adjustBalance`, or the USAGE entry of a resolved
 * call) also carries who and why, appended to the same array:
 *
 *   [...the nine above, "operator", operator, reasonText]
 *
 * so the hash covers them (a record of who changed a balance cannot be rewritten without breaking the
 * chain), while every other entry keeps exactly the nine-element encoding it always had.
 *
 * JSON string quoting makes the encoding unambiguous whatever a field contains (a reference id with a
 * comma or a newline cannot shift the boundaries), and the version tag lets the format change later.
 */
export const LEDGER_HASH_VERSION = 'chainmeter-ledger-v1';
export const GENESIS_LEDGER_HASH = '0'.repeat(64);

export type LedgerReason = 'DEPOSIT' | 'USAGE' | 'ADJUSTMENT';

export interface LedgerHashFields {
  accountId: string;
  seq: number;
  amount: bigint;
  balanceAfter: bigint;
  reason: LedgerReason | string;
  referenceId: string;
  createdAt: Date;
  /** The operator's wallet (EIP-55) on entries an operator wrote; null or absent otherwise. */
  operator?: string | null;
  /** The operator's stated reason, with `operator`. */
  reasonText?: string | null;
}

export function canonicalLedgerEntry(prevHash: string | null, entry: LedgerHashFields): string {
  if (!Number.isSafeInteger(entry.seq) || entry.seq < 1)
    throw new RangeError(`invalid ledger seq ${entry.seq}`);
  const byOperator =
    entry.operator === null || entry.operator === undefined
      ? []
      : ['operator', entry.operator, entry.reasonText ?? ''];
  return JSON.stringify([
    LEDGER_HASH_VERSION,
    prevHash ?? GENESIS_LEDGER_HASH,
    entry.accountId,
    String(entry.seq),
    entry.amount.toString(),
    entry.balanceAfter.toString(),
    entry.reason,
    entry.referenceId,
    entry.createdAt.toISOString(),
    ...byOperator,
  ]);
}

/**
 * @example
 * const first = ledgerEntryHash(null, { accountId, seq: 1, amount: 5_000_000n, balanceAfter: 5_000_000n,
 *   reason: 'DEPOSIT', referenceId: depositId, createdAt: new Date() });
 */
export function ledgerEntryHash(prevHash: string | null, entry: LedgerHashFields): string {
  return sha256(stringToBytes(canonicalLedgerEntry(prevHash, entry))).slice(2);
}

/** An account's ledger head: its last entry's seq and hash (0 and null before the first) and balance. */
export interface LedgerHead {
  seq: number;
  hash: string | null;
  balance: bigint;
}

/** An entry chained after a head: its hashed fields, the hash it links to and its own hash. */
export interface ChainedLedgerEntry extends LedgerHashFields {
  prevHash: string | null;
  hash: string;
}

/**
 * The entry that follows `head` (seq + 1, balance + amount, linked to and hashed from the head) and the
 * head it leaves: the one way every writer chains an entry, one at a time or a whole batch in memory.
 * The balance check (never below zero) is the writer's, and the database's.
 *
 * @example
 * const { entry, head: next } = chainLedgerEntry(head, { accountId, amount: -1234n, reason: 'USAGE',
 *   referenceId: usageId, createdAt: new Date() });
 */
export function chainLedgerEntry(
  head: LedgerHead,
  next: Omit<LedgerHashFields, 'seq' | 'balanceAfter'>,
): { entry: ChainedLedgerEntry; head: LedgerHead } {
  const fields: LedgerHashFields = {
    ...next,
    seq: head.seq + 1,
    balanceAfter: head.balance + next.amount,
  };
  const hash = ledgerEntryHash(head.hash, fields);
  return {
    entry: { ...fields, prevHash: head.hash, hash },
    head: { seq: fields.seq, hash, balance: fields.balanceAfter },
  };
}

export interface StoredLedgerEntry extends LedgerHashFields {
  /** null, undefined or 64 zeros for the first entry of an account. */
  prevHash?: string | null;
  hash: string;
}

/**
 * Checks one account's entries (any order; sorted by seq here): seqs are 1..n without gaps, each
 * entry links to the previous hash, its hash recomputes, and balanceAfter = previous balanceAfter +
 * amount, never negative. Returns the seq of the first entry that breaks the chain, or null.
 */
export function verifyLedgerChain(entries: readonly StoredLedgerEntry[]): number | null {
  const sorted = [...entries].sort((a, b) => a.seq - b.seq);
  let prevHash: string | null = null;
  let balance = 0n;
  for (const [index, entry] of sorted.entries()) {
    const linked = (entry.prevHash ?? GENESIS_LEDGER_HASH) === (prevHash ?? GENESIS_LEDGER_HASH);
    balance += entry.amount;
    if (
      entry.seq !== index + 1 ||
      !linked ||
      entry.balanceAfter !== balance ||
      entry.balanceAfter < 0n ||
      ledgerEntryHash(prevHash, entry) !== entry.hash
    ) {
      return entry.seq;
    }
    prevHash = entry.hash;
  }
  return null;
}
