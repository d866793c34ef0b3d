import { describe, expect, it } from 'vitest';
import { retryDelayMs } from './webhook-delivery.worker.ts';

describe('retryDelayMs', () => {
  it('doubles from the base after each failed attempt, up to the maximum', () => {
    const settings = { retryBaseDelayMs: 10_000, retryMaxDelayMs: 3_600_000 };
    // After attempt n: 10 s x 2^(n-1), worked out by hand.
    expect([1, 2, 3, 4, 5, 9].map((attempts) => retryDelayMs(attempts, settings))).toEqual([
      10_000, 20_000, 40_000, 80_000, 160_000, 2_560_000,
    ]);
    expect(retryDelayMs(10, settings)).toBe(3_600_000);
    expect(retryDelayMs(1_000, settings)).toBe(3_600_000);
  });
});
