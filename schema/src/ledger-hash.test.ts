import { describe, expect, it } from 'vitest';
import {
  type ChainedLedgerEntry,
  canonicalLedgerEntry,
  chainLedgerEntry,
  GENESIS_LEDGER_HASH,
  type LedgerHead,
  ledgerEntryHash,
  type StoredLedgerEntry,
  verifyLedgerChain,
} from './ledger-hash.ts';

const accountId = '5f0c1a62-8a7e-4c55-9d0e-2b1f7a3c9e11';

function chain(amounts: bigint[]): StoredLedgerEntry[] {
  const entries: StoredLedgerEntry[] = [];
  let prevHash: string | null = null;
  let balance = 0n;
  for (const [i, amount] of amounts.entries()) {
    balance += amount;
    const fields = {
      accountId,
      seq: i + 1,
      amount,
      balanceAfter: balance,
      reason: amount > 0n ? 'DEPOSIT' : 'USAGE',
      referenceId: `ref-${i}`,
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)),
    };
    const hash = ledgerEntryHash(prevHash, fields);
    entries.push({ ...fields, prevHash, hash });
    prevHash = hash;
  }
  return entries;
}

describe('ledgerEntryHash', () => {
  it('is 64 lowercase hex digits without 0x and deterministic', () => {
    const [entry] = chain([1_500_000n]);
    expect(entry?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(ledgerEntryHash(null, entry!)).toBe(entry?.hash);
    expect(ledgerEntryHash(GENESIS_LEDGER_HASH, entry!)).toBe(entry?.hash);
  });

  it('matches a known vector (the encoding is a fixed, documented format)', () => {
    const fields = {
      accountId,
      seq: 1,
      amount: 42n,
      balanceAfter: 42n,
      reason: 'DEPOSIT',
      referenceId: 'd-1',
      createdAt: new Date('2026-01-01T00:00:00.123Z'),
    };
    expect(canonicalLedgerEntry(null, fields)).toBe(
      `["chainmeter-ledger-v1","${'0'.repeat(64)}","${accountId}","1","42","42","DEPOSIT","d-1","2026-01-01T00:00:00.123Z"]`,
    );
  });

  it("appends an operator's wallet and reason, and only to entries an operator wrote", () => {
    const fields = {
      accountId,
      seq: 2,
      amount: -5n,
      balanceAfter: 37n,
      reason: 'ADJUSTMENT',
      referenceId: 'operator:1',
      createdAt: new Date('2026-01-01T00:00:00.123Z'),
    };
    const prev = 'a'.repeat(64);
    const plain = `["chainmeter-ledger-v1","${prev}","${accountId}","2","-5","37","ADJUSTMENT","operator:1","2026-01-01T00:00:00.123Z"`;
    expect(canonicalLedgerEntry(prev, fields)).toBe(`${plain}]`);
    expect(canonicalLedgerEntry(prev, { ...fields, operator: null, reasonText: null })).toBe(`${plain}]`);
    const byOperator = {
      ...fields,
      operator: '0x90F79bf6EB2c4f870365E785982E1f101E93b906',
      reasonText: 'refund',
    };
    expect(canonicalLedgerEntry(prev, byOperator)).toBe(
      `${plain},"operator","0x90F79bf6EB2c4f870365E785982E1f101E93b906","refund"]`,
    );
    const hash = ledgerEntryHash(prev, byOperator);
    expect(ledgerEntryHash(prev, fields)).not.toBe(hash);
    expect(ledgerEntryHash(prev, { ...byOperator, reasonText: 'refund ' })).not.toBe(hash);
    expect(ledgerEntryHash(prev, { ...byOperator, operator: byOperator.operator.toLowerCase() })).not.toBe(
      hash,
    );
  });

  it('changes with every field and with the previous hash', () => {
    const [entry] = chain([10n]);
    const base = ledgerEntryHash(null, entry!);
    const variants = [
      { ...entry!, accountId: 'other' },
      { ...entry!, seq: 2 },
      { ...entry!, amount: 11n },
      { ...entry!, balanceAfter: 11n },
      { ...entry!, reason: 'ADJUSTMENT' },
      { ...entry!, referenceId: 'ref-1' },
      { ...entry!, createdAt: new Date(entry!.createdAt.getTime() + 1) },
    ];
    for (const variant of variants) expect(ledgerEntryHash(null, variant)).not.toBe(base);
    expect(ledgerEntryHash('f'.repeat(64), entry!)).not.toBe(base);
  });

  it('cannot be confused by separators inside a field', () => {
    const [entry] = chain([10n]);
    const a = { ...entry!, referenceId: 'a","b' };
    const b = { ...entry!, referenceId: 'a', reason: `b","${entry!.reason}` };
    expect(ledgerEntryHash(null, a)).not.toBe(ledgerEntryHash(null, b));
  });
});

describe('verifyLedgerChain', () => {
  it('accepts a valid chain in any order and an empty one', () => {
    const entries = chain([5_000_000n, -1_234n, -42n, 7n]);
    expect(verifyLedgerChain(entries)).toBeNull();
    expect(verifyLedgerChain([...entries].reverse())).toBeNull();
    expect(verifyLedgerChain([])).toBeNull();
  });

  it('reports the first broken seq', () => {
    const entries = chain([5_000_000n, -1_234n, -42n, 7n]);
    const tampered = entries.map((e) => (e.seq === 3 ? { ...e, amount: -41n } : e));
    expect(verifyLedgerChain(tampered)).toBe(3);
    const rehashed = entries.map((e) => (e.seq === 2 ? { ...e, hash: ledgerEntryHash(null, e) } : e));
    expect(verifyLedgerChain(rehashed)).toBe(2);
    expect(verifyLedgerChain(entries.filter((e) => e.seq !== 2))).toBe(3);
    const negative = chain([1n, -2n]);
    expect(verifyLedgerChain(negative)).toBe(2);
  });
});

describe('chainLedgerEntry', () => {
  it('chains seq, balance and hash from a head, exactly as the verifier expects', () => {
    const expected = chain([5_000_000n, -1_234n, -42n]);
    let head: LedgerHead = { seq: 0, hash: null, balance: 0n };
    const entries: ChainedLedgerEntry[] = [];
    for (const { amount, reason, referenceId, createdAt } of expected) {
      const next = chainLedgerEntry(head, { accountId, amount, reason, referenceId, createdAt });
      entries.push(next.entry);
      head = next.head;
    }
    expect(entries).toEqual(expected);
    expect(head).toEqual({ seq: 3, hash: expected[2]?.hash, balance: 4_998_724n });
    expect(verifyLedgerChain(entries)).toBeNull();
  });
});
