import { type MicroUsd, parseRatio } from '@chainmeter/schema';
import { describe, expect, it } from 'vitest';
import { type CallResult, decideSettlement, settlementOfExpiredHold } from './billing.ts';
import type { ExpiredHold } from './hold.store.ts';
import type { ModelPrice } from './pricing.ts';

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
    // 56 x 0.15 + 1,234 x 0.60 = 8.4 + 740.4 = 748.8 micro-USD, rounded up: 749; x 1.5 = 1,123.5: 1,124.
    expect(settlement).toEqual({
      status: 'BILLED',
      promptTokens: 56,
      completionTokens: 1_234,
      providerCost: 749n,
      userPrice: 1_124n,
      latencyMs: 2_500,
      flags: ['STREAM_INTERRUPTED', 'USAGE_ESTIMATED'],
      error: null,
    });
  });

  it('never charges past the hold, and charges an unpriced model its hold, for review', () => {
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
    // Never given away: the hold (1,000,000 micro-USD here) is the most the call could have cost.
    expect(unpriced).toMatchObject({ status: 'NEEDS_REVIEW', userPrice: 1_000_000n, providerCost: null });
    expect(unpriced.flags).toContain('UNPRICED');
  });
});

describe('free or billed: free only when nothing was generated and the answer did not finish', () => {
  const hold = 1_000_000n as MicroUsd;
  const answered = (result: Partial<Extract<CallResult, { kind: 'answered' }>>): CallResult => ({
    kind: 'answered',
    usage: null,
    generatedBytes: 0,
    finishReason: null,
    promptTokensBound: 100,
    costHeader: null,
    latencyMs: 5,
    ...result,
  });
  const decide = (result: CallResult) => decideSettlement({ price, markup, hold, result });

  it('bills a reasoning-only answer (empty content) from its cost header', () => {
    const settlement = decide(
      answered({
        usage: { promptTokens: 10, completionTokens: 400 },
        generatedBytes: 1_600, // reasoning_content only
        finishReason: 'length',
        costHeader: '0.00024',
      }),
    );
    // $0.00024 = 240 micro-USD; x 1.5 = 360.
    expect(settlement).toMatchObject({ status: 'BILLED', providerCost: 240n, userPrice: 360n });
  });

  it('bills a prompt-only answer that finished normally', () => {
    const settlement = decide(
      answered({
        usage: { promptTokens: 60_000, completionTokens: 0 },
        finishReason: 'stop',
        costHeader: '0.009',
      }),
    );
    // $0.009 = 9,000 micro-USD; x 1.5 = 13,500.
    expect(settlement).toMatchObject({ status: 'BILLED', providerCost: 9_000n, userPrice: 13_500n });
  });

  it('bills reported usage even without a finish reason', () => {
    const settlement = decide(answered({ usage: { promptTokens: 100, completionTokens: 0 } }));
    // 100 x $0.15/M = 15 micro-USD; x 1.5 = 22.5, rounded up: 23.
    expect(settlement).toMatchObject({ status: 'BILLED', providerCost: 15n, userPrice: 23n });
  });

  it('bills a finished answer without usage on the bound of its prompt', () => {
    const settlement = decide(answered({ finishReason: 'stop' }));
    // 100 prompt tokens (the bound) x $0.15/M = 15 micro-USD; x 1.5 = 23.
    expect(settlement).toMatchObject({ status: 'BILLED', userPrice: 23n, flags: ['USAGE_ESTIMATED'] });
  });

  it('releases a call that generated nothing and did not finish, or finished with an error', () => {
    for (const finishReason of [null, 'error', '']) {
      expect(decide(answered({ finishReason })), String(finishReason)).toMatchObject({
        status: 'RELEASED',
        userPrice: 0n,
        flags: ['NOTHING_GENERATED'],
      });
    }
    expect(decide({ kind: 'failed', latencyMs: 3, error: 'upstream failed (HTTP 500)' })).toMatchObject({
      status: 'RELEASED',
      userPrice: 0n,
      error: 'upstream failed (HTTP 500)',
    });
  });

  it('does not believe a cost header of 0 for a call its price says cost something', () => {
    const settlement = decide(
      answered({
        usage: { promptTokens: 10, completionTokens: 20 },
        generatedBytes: 80,
        finishReason: 'stop',
        costHeader: '0.0',
      }),
    );
    // 10 x 0.15 + 20 x 0.60 = 13.5, rounded up: 14 micro-USD; x 1.5 = 21.
    expect(settlement).toMatchObject({
      status: 'BILLED',
      providerCost: 14n,
      userPrice: 21n,
      flags: ['ZERO_COST_HEADER'],
    });
  });
});
