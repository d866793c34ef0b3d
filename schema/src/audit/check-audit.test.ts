import { describe, expect, it } from 'vitest';
import { ledgerEntryHash } from '../ledger-hash.ts';
import { accountProofFromJson, accountProofToJson } from './account-proof.ts';
import { auditReportToJson, ledgerEntryFromJson, ledgerEntryToJson } from './audit-json.ts';
import { formatAuditMarkdown } from './audit-markdown.ts';
import type {
  AuditAccount,
  AuditInput,
  AuditLedgerEntry,
  ChainTransfer,
  DepositReference,
} from './audit-types.ts';
import { checkAudit } from './check-audit.ts';

const ALICE = '0x70997970C51812dc3A010C7d50e604F7d7Fa41BA';
const BOB = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const OPERATOR = '0x90F79bf6EB2c4f870365E785982E1f101E93b906';
const tx = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;

function transfer(n: number, from: string, value: bigint, blockNumber = BigInt(n)): ChainTransfer {
  return { chainId: 31337, txHash: tx(n), logIndex: 0, blockNumber, blockHash: tx(1000 + n), from, value };
}

/** A well-formed ledger: entries chained and balanced, deposits matching `transfers`. */
function ledger(
  accountId: string,
  wallet: string,
  items: ({ deposit: ChainTransfer; status?: string } | { amount: bigint; referenceId?: string })[],
  debt = 0n,
): { account: AuditAccount; entries: AuditLedgerEntry[] } {
  const entries: AuditLedgerEntry[] = [];
  let prevHash: string | null = null;
  let balance = 0n;
  for (const [i, item] of items.entries()) {
    const amount = 'deposit' in item ? item.deposit.value : item.amount;
    balance += amount;
    const reason = 'deposit' in item ? 'DEPOSIT' : amount < 0n && !item.referenceId ? 'USAGE' : 'ADJUSTMENT';
    // An ADJUSTMENT that corrects no deposit is an operator's: it carries who and why.
    const byOperator = reason === 'ADJUSTMENT' && !('referenceId' in item && item.referenceId);
    const fields = {
      accountId,
      seq: i + 1,
      amount,
      balanceAfter: balance,
      reason,
      referenceId: 'referenceId' in item && item.referenceId ? item.referenceId : `ref-${i}`,
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
      operator: byOperator ? OPERATOR : null,
      reasonText: byOperator ? 'goodwill' : null,
    };
    const hash = ledgerEntryHash(prevHash, fields);
    const deposit =
      'deposit' in item
        ? {
            chainId: 31337,
            txHash: item.deposit.txHash,
            logIndex: item.deposit.logIndex,
            blockNumber: item.deposit.blockNumber,
            from: item.deposit.from,
            amountToken: item.deposit.value,
            amount: item.deposit.value,
            status: item.status ?? 'CREDITED',
          }
        : null;
    entries.push({ ...fields, prevHash, hash, deposit });
    prevHash = hash;
  }
  return {
    account: {
      accountId,
      walletAddress: wallet,
      balance,
      debt,
      ledgerSeq: entries.length,
      ledgerHead: prevHash,
    },
    entries,
  };
}

type Scenario = Omit<AuditInput, 'transfers' | 'accounts' | 'entries'> & {
  transfers: ChainTransfer[];
  accounts: AuditAccount[];
  entries: AuditLedgerEntry[];
};

function scenario(): Scenario {
  const t1 = transfer(1, ALICE, 5_000_000n);
  const t2 = transfer(2, ALICE, 1_000n);
  const t3 = transfer(3, BOB, 7_000n);
  const alice = ledger('a', ALICE, [{ deposit: t1 }, { amount: -42n }, { deposit: t2 }]);
  const bob = ledger('b', BOB, [{ deposit: t3 }, { amount: 10n }]);
  return {
    chainId: 31337,
    tokenAddress: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    treasuryAddress: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
    confirmations: 2,
    fromBlock: 0n,
    head: 10n,
    transfers: [
      t1,
      t2,
      t3,
      transfer(4, BOB, 0n),
      transfer(5, '0x0000000000000000000000000000000000000000', 9n),
    ],
    accounts: [alice.account, bob.account],
    entries: [...alice.entries, ...bob.entries],
  };
}

const kinds = (input: AuditInput) =>
  checkAudit(input)
    .discrepancies.map((d) => d.kind)
    .sort();

describe('checkAudit', () => {
  it('does not expect a credit for the treasury paying itself, and flags one that was made', () => {
    const input = scenario();
    const selfTransfer = transfer(6, input.treasuryAddress.toLowerCase(), 3_000n);
    const withSelf = { ...input, transfers: [...input.transfers, selfTransfer] };
    // Nothing credited for it: consistent, counted as not creditable, not due.
    expect(checkAudit(withSelf).discrepancies).toEqual([]);
    expect(checkAudit(withSelf).summary).toMatchObject({ transfersNotCreditable: 3, transfersDue: 3 });
    // Credited to the treasury's account anyway (as before the rule): a credit without a creditable transfer.
    const treasury = ledger('t', input.treasuryAddress, [{ deposit: selfTransfer }]);
    const credited = {
      ...withSelf,
      accounts: [...withSelf.accounts, treasury.account],
      entries: [...withSelf.entries, ...treasury.entries],
    };
    expect(kinds(credited)).toEqual(['CREDIT_WITHOUT_TRANSFER']);
  });

  it('finds an untouched ledger consistent, ignoring zero-value transfers and mints', () => {
    const report = checkAudit(scenario());
    expect(report.discrepancies).toEqual([]);
    expect(report.consistent).toBe(true);
    expect(report.summary).toMatchObject({
      transfersOnChain: 5,
      transfersNotCreditable: 2,
      transfersDue: 3,
      transfersCredited: 3,
      depositCredits: 3,
      totalBalance: 5_000_000n - 42n + 1_000n + 7_000n + 10n,
    });
    expect(formatAuditMarkdown(report)).toContain('# ChainMeter audit: consistent');
    expect(JSON.parse(JSON.stringify(auditReportToJson(report))).summary.totalDueMicroUsd).toBe('5008000');
  });

  it('does not count a transfer inside the confirmation window as due', () => {
    const input = scenario();
    input.transfers = [...input.transfers, transfer(9, BOB, 3n)];
    const report = checkAudit(input);
    expect(report.consistent).toBe(true);
    expect(report.summary.transfersNotYetDue).toBe(1);
    input.head = 11n;
    expect(kinds(input)).toEqual(['TRANSFER_NOT_CREDITED']);
  });

  it('names a transfer that was never credited', () => {
    const input = scenario();
    input.transfers = [...input.transfers, transfer(6, BOB, 3n)];
    const [d] = checkAudit(input).discrepancies;
    expect(d).toMatchObject({ kind: 'TRANSFER_NOT_CREDITED', accountId: 'b', txHash: tx(6), expected: '3' });
  });

  it('names a credit with no transfer, a duplicate, and a credit to the wrong account', () => {
    const input = scenario();
    input.transfers = input.transfers.filter((t) => t.txHash !== tx(3));
    expect(kinds(input)).toEqual(['CREDIT_WITHOUT_TRANSFER']);

    const dup = scenario();
    const t1 = dup.transfers[0] as ChainTransfer;
    const carol = ledger('c', BOB, [{ deposit: { ...t1, txHash: t1.txHash.toUpperCase() } }]);
    dup.accounts = [...dup.accounts, carol.account];
    dup.entries = [...dup.entries, ...carol.entries];
    // Carol's copy sorts after Alice's: the second credit is the duplicate.
    expect(
      checkAudit({ ...dup, accounts: [dup.accounts[0] as AuditAccount, carol.account] }).discrepancies,
    ).toMatchObject([{ kind: 'DUPLICATE_CREDIT', accountId: 'c' }]);

    const wrong = scenario();
    const t3 = wrong.transfers[2] as ChainTransfer;
    const dave = ledger('d', ALICE, [{ deposit: t3 }]);
    expect(kinds({ ...wrong, accounts: [dave.account], entries: dave.entries, transfers: [t3] })).toEqual([
      'CREDIT_WITHOUT_TRANSFER',
      'TRANSFER_NOT_CREDITED',
    ]);
  });

  it('names an edited amount: entry hash, balance chain and amount', () => {
    const input = scenario();
    const entry = input.entries[0] as AuditLedgerEntry;
    input.entries[0] = { ...entry, amount: entry.amount + 1n };
    expect(kinds(input)).toEqual([
      'AMOUNT_MISMATCH',
      'BALANCE_MISMATCH',
      'BALANCE_MISMATCH',
      'HASH_CHAIN_BROKEN',
    ]);
  });

  it('names an edited deposit record alone as an amount mismatch', () => {
    const input = scenario();
    const entry = input.entries[0] as AuditLedgerEntry;
    input.entries[0] = { ...entry, deposit: { ...(entry.deposit as DepositReference), amountToken: 1n } };
    expect(kinds(input)).toEqual(['AMOUNT_MISMATCH']);
  });

  it('names a changed stored balance, a broken hash and a missing entry', () => {
    const balance = scenario();
    balance.accounts[1] = { ...(balance.accounts[1] as AuditAccount), balance: 1n };
    expect(checkAudit(balance).discrepancies).toMatchObject([
      { kind: 'BALANCE_MISMATCH', accountId: 'b', expected: '7010', actual: '1' },
    ]);

    const hash = scenario();
    hash.entries[1] = { ...(hash.entries[1] as AuditLedgerEntry), hash: 'f'.repeat(64) };
    expect(kinds(hash)).toEqual(['HASH_CHAIN_BROKEN', 'HASH_CHAIN_BROKEN']);

    const gap = scenario();
    gap.entries.splice(1, 1);
    expect(kinds(gap)).toEqual(['BALANCE_MISMATCH', 'BALANCE_MISMATCH', 'HASH_CHAIN_BROKEN']);
  });

  it('ignores entries appended after the account snapshot when summing, but still checks them', () => {
    const input = scenario();
    const alice = input.accounts[0] as AuditAccount;
    const first = ledger('a', ALICE, [{ deposit: input.transfers[0] as ChainTransfer }]);
    input.accounts[0] = { ...first.account, accountId: 'a' };
    expect(alice.ledgerSeq).toBe(3);
    expect(checkAudit(input).consistent).toBe(true);
  });

  it('accepts a credit reversed in full after a deep reorg, and names a partial or wrongful reversal', () => {
    const t1 = transfer(1, ALICE, 5_000n);
    const t2 = transfer(2, ALICE, 700n);
    const base = scenario();
    const withAlice = (items: Parameters<typeof ledger>[2], transfers: ChainTransfer[]) => {
      const alice = ledger('a', ALICE, items);
      return { ...base, transfers, accounts: [alice.account], entries: alice.entries };
    };
    // Deposit ref-0 (t1) gone from the chain and reversed by an ADJUSTMENT referencing it.
    const reversed = checkAudit(
      withAlice([{ deposit: t1 }, { deposit: t2 }, { amount: -5_000n, referenceId: 'ref-0' }], [t2]),
    );
    expect(reversed.discrepancies).toEqual([]);
    expect(reversed.summary.creditsReversed).toBe(1);
    const partial = checkAudit(
      withAlice([{ deposit: t1 }, { deposit: t2 }, { amount: -4_000n, referenceId: 'ref-0' }], [t2]),
    );
    expect(partial.discrepancies).toMatchObject([{ kind: 'CREDIT_WITHOUT_TRANSFER', actual: '1000' }]);
    // Reversed, then mined again and re-credited: consistent. Reversed while still on chain: a mismatch.
    const recredited = [
      { deposit: t1 },
      { amount: -5_000n, referenceId: 'ref-0' },
      { amount: 5_000n, referenceId: 'ref-0' },
    ];
    expect(checkAudit(withAlice(recredited, [t1])).discrepancies).toEqual([]);
    expect(
      checkAudit(withAlice([{ deposit: t1 }, { amount: -5_000n, referenceId: 'ref-0' }], [t1])).discrepancies,
    ).toMatchObject([{ kind: 'AMOUNT_MISMATCH', expected: '5000', actual: '0' }]);
  });

  describe('a credit taken back by a deep reorg while part of it was spent', () => {
    // Alice paid 500 micro-USD (t1) and spent 350. A deep reorg removed t1: the reversal took the 150 she
    // still had (500 - 350) and left a debt of 350. Her DEPOSIT is entry ref-0.
    const t1 = transfer(1, ALICE, 500n);
    const base = scenario();
    const audit = (
      items: Parameters<typeof ledger>[2],
      debt: bigint,
      transfers: ChainTransfer[],
      extra: { accounts?: AuditAccount[]; entries?: AuditLedgerEntry[] } = {},
    ) => {
      const alice = ledger('a', ALICE, items, debt);
      return checkAudit({
        ...base,
        transfers,
        accounts: [alice.account, ...(extra.accounts ?? [])],
        entries: [...alice.entries, ...(extra.entries ?? [])],
      });
    };
    const reversed = (status: string) => [
      { deposit: t1, status },
      { amount: -350n },
      { amount: -150n, referenceId: 'ref-0' },
    ];

    it('accepts every legitimate step: reversed with a debt, mined again, credited again, debt paid', () => {
      // Gone: the DEPOSIT (+500) and the reversal (-150) leave 350 owed, which is her stored debt.
      const gone = audit(reversed('REORGED'), 350n, []);
      expect(gone.discrepancies).toEqual([]);
      expect(gone.reversedCredits).toMatchObject([{ txHash: tx(1), amount: 500n, owed: 350n }]);
      expect(gone.summary).toMatchObject({ creditsReversed: 1, totalDebt: 350n, totalBalance: 0n });
      // Mined again in block 9, with 1 confirmation at head 10 of the 2 required: still owed, not yet due.
      const remined = { ...t1, blockNumber: 9n };
      expect(audit(reversed('PENDING'), 350n, [remined]).discrepancies).toEqual([]);
      // Credited again: +150 gives back what was taken, the 350 owed is cancelled. Balance 500 - 350 - 150
      // + 150 = 150 = what she paid minus what she spent; the credit sums to 500 - 150 + 150 = 500.
      const recredited = audit(
        [
          { deposit: t1 },
          { amount: -350n },
          { amount: -150n, referenceId: 'ref-0' },
          { amount: 150n, referenceId: 'ref-0' },
        ],
        0n,
        [t1],
      );
      expect(recredited.discrepancies).toEqual([]);
      expect(recredited.summary).toMatchObject({ transfersCredited: 1, totalBalance: 150n, totalDebt: 0n });
      // Or, still gone, a new payment t2 of 1,000 pays the debt first (-350 referencing ref-0): balance
      // 0 + 1,000 - 350 = 650; t1 now nets 500 - 150 - 350 = 0.
      const t2 = transfer(2, ALICE, 1_000n);
      const paid = [...reversed('REORGED'), { deposit: t2 }, { amount: -350n, referenceId: 'ref-0' }];
      const settled = audit(paid, 0n, [t2]);
      expect(settled.discrepancies).toEqual([]);
      expect(settled.reversedCredits).toMatchObject([{ owed: 0n }]);
      expect(settled.summary.totalBalance).toBe(650n);
      // t1 mined again after that: it gives back all 500 (taken 150 + paid 350): 650 + 500 = 1,150 =
      // 1,500 paid - 350 spent.
      const back = audit([{ deposit: t1 }, ...paid.slice(1), { amount: 500n, referenceId: 'ref-0' }], 0n, [
        t1,
        t2,
      ]);
      expect(back.discrepancies).toEqual([]);
      expect(back.summary.totalBalance).toBe(1_150n);
    });

    it('names a re-credit of the full amount after a partial reversal (credits 350 that were never paid)', () => {
      const report = audit(
        [
          { deposit: t1 },
          { amount: -350n },
          { amount: -150n, referenceId: 'ref-0' },
          { amount: 500n, referenceId: 'ref-0' },
        ],
        0n,
        [t1],
      );
      // 500 - 150 + 500 = 850 credited for a transfer of 500.
      expect(report.discrepancies).toMatchObject([
        { kind: 'AMOUNT_MISMATCH', expected: '500', actual: '850' },
      ]);
    });

    it('names an ADJUSTMENT in another account that references the deposit', () => {
      const t3 = transfer(3, BOB, 7_000n);
      // Bob's own deposit is ref-0 of his ledger too: give his stray credit another deposit's id.
      const bob = ledger('b', BOB, [{ deposit: t3 }, { amount: 500n, referenceId: 'alice-deposit' }]);
      const alice = ledger('a', ALICE, [{ deposit: t1 }]);
      const aliceDeposit = { ...(alice.entries[0] as AuditLedgerEntry), referenceId: 'alice-deposit' };
      aliceDeposit.hash = ledgerEntryHash(null, aliceDeposit);
      const report = checkAudit({
        ...base,
        transfers: [t1, t3],
        accounts: [{ ...alice.account, ledgerHead: aliceDeposit.hash }, bob.account],
        entries: [aliceDeposit, ...bob.entries],
      });
      expect(report.discrepancies).toMatchObject([
        { kind: 'AMOUNT_MISMATCH', accountId: 'a', expected: '500', actual: '1000' },
      ]);
    });

    it('names a forgiven debt, an over-credit of a gone deposit, and one never credited again', () => {
      // The stored debt set to 0 while 350 is still owed.
      expect(audit(reversed('REORGED'), 0n, []).discrepancies).toMatchObject([
        { kind: 'BALANCE_MISMATCH', accountId: 'a', expected: '350', actual: '0' },
      ]);
      // Gone, and an extra +200 referencing it: 500 - 150 + 200 = 550, more than was ever paid.
      const over = audit([...reversed('REORGED'), { amount: 200n, referenceId: 'ref-0' }], 550n, []);
      expect(over.discrepancies).toMatchObject([{ kind: 'AMOUNT_MISMATCH', expected: '0', actual: '550' }]);
      // Gone and marked CREDITED with only part reversed: credits without a transfer.
      expect(audit(reversed('CREDITED'), 0n, []).discrepancies).toMatchObject([
        { kind: 'CREDIT_WITHOUT_TRANSFER', actual: '350' },
      ]);
      // Mined again and due (block 1, head 10) but left REORGED: the transfer is not credited.
      expect(audit(reversed('REORGED'), 350n, [t1]).discrepancies).toMatchObject([
        { kind: 'TRANSFER_NOT_CREDITED', txHash: tx(1), expected: '500' },
      ]);
    });
  });

  it("accepts operators' ADJUSTMENTs, counts them, and names an ADJUSTMENT that neither corrects a deposit nor names an operator", () => {
    // Bob's +10 in the scenario is an operator's (see `ledger`).
    const report = checkAudit(scenario());
    expect(report.consistent).toBe(true);
    expect(report.summary).toMatchObject({ operatorAdjustments: 1, totalOperatorAdjusted: 10n });

    const unattributed = scenario();
    unattributed.entries = unattributed.entries.map((e) =>
      e.operator ? { ...e, operator: null, reasonText: null } : e,
    );
    // Re-hashed without the operator, so only the missing attribution is wrong.
    const bob = ledger('b', BOB, [
      { deposit: transfer(3, BOB, 7_000n) },
      { amount: 10n, referenceId: 'refund-1' },
    ]);
    unattributed.entries = [...unattributed.entries.filter((e) => e.accountId !== 'b'), ...bob.entries];
    unattributed.accounts = [unattributed.accounts[0] as AuditAccount, bob.account];
    const flagged = checkAudit(unattributed);
    expect(flagged.discrepancies).toMatchObject([
      { kind: 'CREDIT_WITHOUT_TRANSFER', accountId: 'b', seq: 2, actual: '10' },
    ]);
    expect(flagged.discrepancies[0]?.message).toMatch(/corrects no deposit and names no operator/);

    // The operator and the reason are hashed: changing either after the fact breaks the chain.
    const forged = scenario();
    forged.entries = forged.entries.map((e) => (e.operator ? { ...e, reasonText: 'something else' } : e));
    expect(kinds(forged)).toEqual(['HASH_CHAIN_BROKEN']);
    const reassigned = scenario();
    reassigned.entries = reassigned.entries.map((e) => (e.operator ? { ...e, operator: ALICE } : e));
    expect(kinds(reassigned)).toEqual(['HASH_CHAIN_BROKEN']);
  });

  it('reports the solvency figures of the snapshot: the treasury read, what the balances owe, and their parts', () => {
    const input = { ...scenario(), treasuryBalance: 9_000_000n };
    input.accounts = input.accounts.map((a, i) => ({ ...a, held: BigInt(i + 1) }));
    const report = checkAudit(input);
    expect(report.solvency).toEqual({
      treasuryBalance: 9_000_000n,
      asOfBlock: 10n,
      outstandingCredits: 5_000_000n - 42n + 1_000n + 7_000n + 10n,
      heldCredits: 3n,
      creditedDeposits: 5_000_000n + 1_000n + 7_000n,
      chargedUsage: 42n,
      operatorAdjustments: 10n,
      accountDebt: 0n,
    });
    const s = report.solvency;
    expect(s.outstandingCredits).toBe(s.creditedDeposits - s.chargedUsage + s.operatorAdjustments);
    expect(formatAuditMarkdown(report)).toContain('| treasury balance on chain | 9000 |');
    expect(auditReportToJson(report).solvency).toMatchObject({
      treasuryBalanceMicroUsd: '9000000',
      outstandingCreditsMicroUsd: String(s.outstandingCredits),
      heldCreditsMicroUsd: '3',
    });
    // Records without holds (a proof file) say so instead of a wrong 0; no treasury read: null.
    const bare = checkAudit(scenario()).solvency;
    expect(bare).toMatchObject({ treasuryBalance: null, heldCredits: null });
    expect(formatAuditMarkdown(checkAudit(scenario()))).toContain('| treasury balance on chain | not read |');
  });

  it('round-trips entries and proofs through JSON', () => {
    const input = scenario();
    for (const entry of input.entries) {
      expect(ledgerEntryFromJson(JSON.parse(JSON.stringify(ledgerEntryToJson(entry))))).toEqual(entry);
    }
    const proof = {
      chainId: 31337,
      tokenAddress: input.tokenAddress,
      treasuryAddress: input.treasuryAddress,
      confirmations: 2,
      generatedAt: new Date(),
      account: input.accounts[0] as AuditAccount,
      entries: input.entries.filter((e) => e.accountId === 'a'),
    };
    expect(accountProofFromJson(JSON.parse(JSON.stringify(accountProofToJson(proof))))).toEqual(proof);
    expect(() => accountProofFromJson({ version: 'x' })).toThrow(/version/);
  });
});
