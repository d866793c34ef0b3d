import { describe, expect, it } from 'vitest';
import type { AuditLedgerEntry, AuditPaidCall, ChainTransfer } from './audit-types.ts';
import { checkPaidCalls, type PaidCallScope } from './paid-call-check.ts';

const PAYER = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const OTHER = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const TX = `0x${'ab'.repeat(32)}`;

const call = (overrides: Partial<AuditPaidCall> = {}): AuditPaidCall => ({
  usageId: 'u1',
  accountId: 'a1',
  payer: PAYER,
  scheme: 'exact',
  status: 'BILLED',
  holdAmount: 900n,
  userPrice: 250n,
  txHash: TX,
  settlementBlock: 10n,
  settlementCredited: true,
  ...overrides,
});

const transfer = (value: bigint, from = PAYER): ChainTransfer => ({
  chainId: 31337,
  txHash: TX,
  logIndex: 0,
  blockNumber: 10n,
  blockHash: `0x${'cd'.repeat(32)}`,
  from,
  value,
});

const usage = (amount: bigint, accountId = 'a1', referenceId = 'u1'): AuditLedgerEntry => ({
  accountId,
  seq: 2,
  amount,
  balanceAfter: 0n,
  reason: 'USAGE',
  referenceId,
  createdAt: new Date(0),
  prevHash: 'x',
  hash: 'y',
  deposit: null,
});

function scope(transfers: ChainTransfer[], entries: AuditLedgerEntry[]): PaidCallScope {
  return {
    fromBlock: 0n,
    head: 20n,
    confirmations: 2,
    transfers: new Map(transfers.map((t) => [`${t.txHash}:${t.logIndex}`, t])),
    entries,
    walletOfAccount: (id) => (id === 'a1' ? PAYER : id === 'a2' ? OTHER : null),
  };
}

describe('paid calls checked against their settlements', () => {
  it('accepts an exact call settled for its hold and an upto call settled for its price, each charged once', () => {
    expect(checkPaidCalls([call()], scope([transfer(900n)], [usage(-250n)])).discrepancies).toEqual([]);
    const upto = call({ scheme: 'upto' });
    expect(checkPaidCalls([upto], scope([transfer(250n)], [usage(-250n)])).discrepancies).toEqual([]);
  });

  it('finds a settlement that does not cover the call as signed', () => {
    expect(checkPaidCalls([call()], scope([transfer(899n)], [usage(-250n)])).discrepancies).toHaveLength(1);
    const upto = call({ scheme: 'upto' });
    expect(checkPaidCalls([upto], scope([transfer(900n)], [usage(-250n)])).discrepancies).toHaveLength(1);
  });

  it('finds a settlement missing on chain, or paid by another wallet', () => {
    expect(checkPaidCalls([call()], scope([], [usage(-250n)])).discrepancies).toHaveLength(1);
    expect(
      checkPaidCalls([call()], scope([transfer(900n, OTHER)], [usage(-250n)])).discrepancies,
    ).toHaveLength(1);
  });

  it('finds a call charged twice, at another price, to another account, or not at all', () => {
    const chain = [transfer(900n)];
    for (const entries of [[usage(-250n), usage(-250n)], [usage(-251n)], [usage(-250n, 'a2')], []]) {
      const result = checkPaidCalls([call()], scope(chain, entries));
      expect(result.discrepancies.map((d) => d.kind)).toEqual(['PAID_CALL_MISMATCH']);
    }
    const elsewhere = call({ accountId: 'a2' });
    expect(checkPaidCalls([elsewhere], scope(chain, [usage(-250n, 'a2')])).discrepancies).toHaveLength(1);
  });

  it('lists an unpaid call, and finds a priced call whose credited settlement never charged it', () => {
    const unpaid = checkPaidCalls([call({ status: 'UNPAID', txHash: null })], scope([], []));
    expect(unpaid.discrepancies).toEqual([]);
    expect(unpaid.unpaid).toEqual([
      { usageId: 'u1', accountId: 'a1', payer: PAYER, scheme: 'exact', userPrice: 250n },
    ]);
    const waiting = call({ status: 'AWAITING_PAYMENT', settlementCredited: false, settlementBlock: null });
    expect(checkPaidCalls([waiting], scope([transfer(900n)], [])).discrepancies).toEqual([]);
    const stuck = call({ status: 'AWAITING_PAYMENT' });
    expect(checkPaidCalls([stuck], scope([transfer(900n)], [])).discrepancies).toHaveLength(1);
  });
});
