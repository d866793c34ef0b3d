/**
 * The SQL that settles UNPAID `upto` calls again, on PostgreSQL and PGlite: which calls are claimed and when (the
 * back-off), that of two replicas one moves a call out of UNPAID, once, and that a call given up stays UNPAID.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { MicroUsd } from '@chainmeter/schema';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { TEST_DRIVERS, testOrmForFile } from '../../../test/support/database.ts';
import { sqlOf } from '../../db/sql.ts';
import {
  claimUnpaidRetries,
  endUnpaidRetries,
  finishPaidCall,
  placePaidCall,
  recordPayment,
  recoverUnpaidCall,
} from './paid-call.store.ts';
import type { Settlement } from './settlement.ts';

describe.each(TEST_DRIVERS)('UNPAID retries on %s', async (driver) => {
  const { orm } = await testOrmForFile(driver);
  const sql = () => sqlOf(orm.em.fork());

  const priced = (price: bigint): Settlement => ({
    status: 'BILLED',
    promptTokens: 10,
    completionTokens: 40,
    providerCost: 90n as MicroUsd,
    userPrice: price as MicroUsd,
    latencyMs: 12,
    flags: [],
    error: null,
  });

  const BACKOFF = { minMs: 1_000, maxMs: 3_600_000 };
  const hash = () => `0x${randomBytes(32).toString('hex')}`;

  /** An upto call of a fresh payer served and left UNPAID (price `price`); `txHash`: its failed settlement's. */
  async function unpaidCall(price: bigint, txHash?: string): Promise<{ id: string; unpaidAt: number }> {
    const now = new Date();
    const placed = await placePaidCall(sql(), {
      payer: privateKeyToAccount(`0x${randomBytes(32).toString('hex')}`).address,
      scheme: 'upto',
      requestId: `req_${randomUUID()}`,
      model: 'hostile',
      maxPrice: 1_000n as MicroUsd,
      streamed: false,
      now,
      holdExpiresAt: new Date(now.getTime() + 60_000),
      payload: { signed: randomUUID() },
      authorization: `permit2:${randomUUID()}`,
    });
    if (!('usageId' in placed)) throw new Error('not placed');
    if (txHash) await recordPayment(sql(), placed.usageId, txHash, price);
    expect(await finishPaidCall(sql(), placed.usageId, 'UNPAID', priced(price), 'payment failed')).toBe(true);
    const [row] = await sql().query(
      {
        name: 'test_unpaid_at',
        text: 'select (extract(epoch from settled_at) * 1000)::bigint::text as ms from usage_records where id = $1::uuid',
      },
      [placed.usageId],
    );
    return { id: placed.usageId, unpaidAt: Number((row as { ms: string }).ms) };
  }

  const at = (ms: number) => new Date(ms);
  const claimedIds = async (now: Date) =>
    (await claimUnpaidRetries(sql(), now, 1_000, BACKOFF)).map((call) => call.id);

  async function row(id: string) {
    const [found] = await sql().query(
      {
        name: 'test_unpaid_row',
        text: `select status, payment_tx_hash, payment_amount::text as payment_amount, error, settled_at,
          payment_retried_at from usage_records where id = $1::uuid`,
      },
      [id],
    );
    return found as Record<string, unknown>;
  }

  describe('claimUnpaidRetries', () => {
    it('claims a call once per back-off, the back-off doubling with the time it has been unpaid', async () => {
      const call = await unpaidCall(135n);
      const t = call.unpaidAt;
      // Each claim below is checked at the instant before and at its due time; a second replica claiming at
      // the same moment gets nothing. Due: 1 s after UNPAID (the least back-off), then 1 s later (unpaid 1 s),
      // then 2 s later (unpaid 2 s), then 4 s later.
      for (const due of [t + 1_000, t + 2_000, t + 4_000, t + 8_000]) {
        expect(await claimedIds(at(due - 1))).not.toContain(call.id);
        const [first, second] = await Promise.all([claimedIds(at(due)), claimedIds(at(due))]);
        expect([...(first ?? []), ...(second ?? [])].filter((id) => id === call.id)).toEqual([call.id]);
      }
      const [claimed] = await claimUnpaidRetries(sql(), at(t + 16_000), 1_000, BACKOFF).then((calls) =>
        calls.filter((c) => c.id === call.id),
      );
      expect(claimed).toMatchObject({ id: call.id, txHash: null, price: 135n });
      expect(claimed?.payload).toMatchObject({ signed: expect.any(String) });
    });

    it('claims the oldest calls first, at most `limit`', async () => {
      const older = await unpaidCall(135n);
      const newer = await unpaidCall(135n);
      const ids = await claimedIds(at(Date.now() + 86_400_000));
      expect(ids.indexOf(older.id)).toBeGreaterThanOrEqual(0);
      expect(ids.indexOf(older.id)).toBeLessThan(ids.indexOf(newer.id));
      const later = at(Date.now() + 10 * 86_400_000);
      expect(await claimUnpaidRetries(sql(), later, 1, BACKOFF)).toHaveLength(1);
    });

    it('never claims a free call, nor one given up', async () => {
      const free = await unpaidCall(0n);
      const givenUp = await unpaidCall(135n);
      expect(await endUnpaidRetries(sql(), givenUp.id)).toBe(true);
      const ids = await claimedIds(at(Date.now() + 86_400_000));
      expect(ids).not.toContain(free.id);
      expect(ids).not.toContain(givenUp.id);
      expect(await row(givenUp.id)).toMatchObject({ status: 'UNPAID', payment_retried_at: null });
    });
  });

  describe('recoverUnpaidCall', () => {
    it('moves the call to AWAITING_PAYMENT once, of two replicas at the same moment', async () => {
      const call = await unpaidCall(135n);
      const [a, b] = [hash(), hash()];
      const moved = await Promise.all([
        recoverUnpaidCall(sql(), call.id, null, a, 135n),
        recoverUnpaidCall(sql(), call.id, null, b, 135n),
      ]);
      expect(moved.filter(Boolean)).toEqual([true]);
      expect(await row(call.id)).toMatchObject({
        status: 'AWAITING_PAYMENT',
        payment_tx_hash: moved[0] ? a : b,
        payment_amount: '135',
        error: null,
        settled_at: null,
        payment_retried_at: null,
      });
      expect(await claimedIds(at(Date.now() + 86_400_000))).not.toContain(call.id);
    });

    it("is guarded by the failed settlement's hash", async () => {
      const failed = hash();
      const call = await unpaidCall(135n, failed);
      expect(await recoverUnpaidCall(sql(), call.id, null, hash(), 135n)).toBe(false);
      expect(await recoverUnpaidCall(sql(), call.id, hash(), hash(), 135n)).toBe(false);
      const settled = hash();
      expect(await recoverUnpaidCall(sql(), call.id, failed, settled, 135n)).toBe(true);
      expect(await row(call.id)).toMatchObject({ status: 'AWAITING_PAYMENT', payment_tx_hash: settled });
    });
  });
});
