/** The soak's end checks on made-up records: each passes on consistent books and fails on the fault it names. */
import { describe, expect, it } from 'vitest';
import type { ChainTransfer } from './chain.ts';
import { checkBooks, checkCalls, checkDeposits } from './checks.ts';
import type { CallRecord, DepositRecord } from './load.ts';
import type { Books, DepositRow } from './soak.store.ts';

const A = '0x00000000000000000000000000000000000000aa';
const hash = (n: number) => `0x${n.toString(16).padStart(64, '0')}` as const;

function byName(checks: { name: string; ok: boolean }[]) {
  return Object.fromEntries(checks.map((check) => [check.name, check.ok]));
}

describe('checkBooks', () => {
  const books: Books = {
    balance: '1400',
    held: '0',
    debt: '100',
    open_records: 0,
    open_detail: '',
    credited: '2000',
    charged: '700',
    usage_entries: 3,
    usage_entries_sum: '-700',
    deposit_entries_twice: 0,
  };

  it('passes when balances less debts are the credited deposits less the charged usage', () => {
    // 2,000 credited - 700 charged = 1,300 = 1,400 in balances - 100 owed after a reorg.
    expect(checkBooks(books).every((check) => check.ok)).toBe(true);
  });

  it('fails on a micro-USD too many, on anything held, and on a USAGE entry missing', () => {
    expect(byName(checkBooks({ ...books, balance: '1401' }))['books exact']).toBe(false);
    expect(byName(checkBooks({ ...books, held: '5' }))['nothing held']).toBe(false);
    expect(byName(checkBooks({ ...books, open_records: 1 }))['nothing held']).toBe(false);
    expect(
      byName(checkBooks({ ...books, usage_entries_sum: '-600' }))['one USAGE entry per charged call'],
    ).toBe(false);
  });
});

describe('checkDeposits', () => {
  const transfer = (n: number, value: bigint): ChainTransfer => ({
    txHash: hash(n),
    logIndex: 0,
    blockNumber: BigInt(n),
    from: A,
    value,
  });
  const row = (n: number, amount: bigint, status: DepositRow['status'] = 'CREDITED'): DepositRow => ({
    tx_hash: hash(n),
    log_index: 0,
    block_number: String(n),
    from_address: A,
    amount: String(amount),
    status,
    credited_at: status === 'CREDITED' ? new Date() : null,
  });
  const sent = (n: number, amount: bigint): DepositRecord => ({
    wallet: A,
    amount,
    sentAt: 0,
    hash: hash(n),
  });
  const chain = [transfer(1, 10n), transfer(2, 20n)];
  const removed = new Set([hash(3)]);
  const load = [sent(1, 10n), sent(2, 20n), sent(3, 30n)];

  it('passes when every transfer on chain is credited once and the reorged one is not', () => {
    const checks = checkDeposits(chain, [row(1, 10n), row(2, 20n), row(3, 30n, 'REORGED')], load, 0, removed);
    expect(checks.every((check) => check.ok)).toBe(true);
  });

  it('fails on a transfer not credited, credited for another amount, or a credit without its transfer', () => {
    expect(byName(checkDeposits(chain, [row(1, 10n)], load, 0, removed))['no deposit lost']).toBe(false);
    expect(
      byName(checkDeposits(chain, [row(1, 10n), row(2, 21n)], load, 0, removed))['no deposit lost'],
    ).toBe(false);
    const phantom = checkDeposits(chain, [row(1, 10n), row(2, 20n), row(3, 30n)], load, 0, removed);
    expect(byName(phantom)['no deposit credited twice or without its transfer']).toBe(false);
    const twice = checkDeposits(chain, [row(1, 10n), row(2, 20n)], load, 1, removed);
    expect(byName(twice)['no deposit credited twice or without its transfer']).toBe(false);
  });

  it('fails when the chain holds a transfer the load did not send', () => {
    const checks = checkDeposits(
      [...chain, transfer(4, 40n)],
      [row(1, 10n), row(2, 20n), row(4, 40n)],
      load,
      0,
      removed,
    );
    expect(byName(checks)['the chain holds what the load sent']).toBe(false);
  });
});

describe('checkCalls', () => {
  const call = (requestId: string | undefined, served: boolean): CallRecord => ({
    start: 0,
    end: 1,
    stream: false,
    status: served ? 200 : 502,
    served,
    requestId,
    failure: served ? undefined : 'http_502',
  });
  const billed = (requestId: string) => ({ request_id: requestId, status: 'BILLED', user_price: '42' });

  it('passes when each whole answer is charged, and a charge without one has a failed call to explain it', () => {
    const checks = checkCalls(
      [call('a', true), call('b', true), call(undefined, false)],
      [
        billed('a'),
        billed('b'),
        // Settled, then its replica was killed before the answer left.
        billed('c'),
        { request_id: 'd', status: 'RELEASED', user_price: '0' },
      ],
    );
    expect(checks.every((check) => check.ok)).toBe(true);
  });

  it('fails on a whole answer not charged, and on more charges without an answer than failures', () => {
    expect(
      byName(checkCalls([call('a', true)], [{ request_id: 'a', status: 'RELEASED', user_price: '0' }]))[
        'every served call charged once'
      ],
    ).toBe(false);
    expect(
      byName(checkCalls([call('a', true)], [billed('a'), billed('x')]))['no call charged without a reason'],
    ).toBe(false);
  });
});
