import { type MicroUsd, parseRatio } from '@chainmeter/schema';
import { describe, expect, it } from 'vitest';
import { settlementOfExpiredHold } from './billing.ts';
import type { ExpiredHold } from './metering.store.ts';
import { costFromUsage, type ModelPrice, userPrice } from './pricing.ts';

const markup = parseRatio('1.5');
// $0.15 and $0.60 per million tokens, scaled by 10^12 as loadPriceTable stores them.
const price: ModelPrice = { model: 'm', inputPerMTok: 150_000_000_000n, outputPerMTok: 600_000_000_000n };
const createdAt = new Date('2026-11-24T12:00:00Z');

const expired = (overrides: Partial<ExpiredHold>): ExpiredHold => ({
  id: 'u1',
  model: 'm',
  hold: 1_000_000n as MicroUsd,
  streamed: true,
  generatedBytes: 0,
  promptTokensBound: null,
  createdAt,
  progressAt: null,
  ...overrides,
});

describe('the settlement of a hold whose process died', () => {
  it('releases a call that was not a stream, or a stream with nothing recorded', () => {
    for (const hold of [
      expired({ streamed: false, generatedBytes: 500, promptTokensBound: 10 }),
      expired({ generatedBytes: 0, promptTokensBound: 10 }),
    ]) {
      expect(settlementOfExpiredHold(hold, price, markup)).toMatchObject({
        status: 'RELEASED',
        userPrice: 0n,
        flags: ['HOLD_EXPIRED'],
      });
    }
  });

  it('bills a stream for the bytes its last beat recorded, counted like a cut stream', () => {
    const settlement = settlementOfExpiredHold(
      expired({
        generatedBytes: 1_234,
        promptTokensBound: 56,
        progressAt: new Date(createdAt.getTime() + 2_500),
      }),
      price,
      markup,
    );
    const cost = costFromUsage(price, { promptTokens: 56, completionTokens: 1_234 });
    expect(cost).toBe(749n); // ceil(56 x 0.15 + 1,234 x 0.60) micro-USD
    expect(settlement).toEqual({
      status: 'BILLED',
      promptTokens: 56,
      completionTokens: 1_234,
      providerCost: cost,
      userPrice: userPrice(cost, markup),
      latencyMs: 2_500,
      flags: ['STREAM_INTERRUPTED', 'USAGE_ESTIMATED'],
      error: null,
    });
  });

  it('never charges past the hold, and leaves an unpriced model for review', () => {
    const capped = settlementOfExpiredHold(
      expired({ hold: 5n as MicroUsd, generatedBytes: 1_000_000, promptTokensBound: 10 }),
      price,
      markup,
    );
    expect(capped).toMatchObject({ status: 'NEEDS_REVIEW', userPrice: 5n, providerCost: 600_002n });
    expect(capped.flags).toContain('COST_EXCEEDS_HOLD');
    const unpriced = settlementOfExpiredHold(
      expired({ generatedBytes: 10, promptTokensBound: 10 }),
      undefined,
      markup,
    );
    expect(unpriced).toMatchObject({ status: 'NEEDS_REVIEW', userPrice: 0n, providerCost: null });
    expect(unpriced.flags).toContain('UNPRICED');
  });
});
