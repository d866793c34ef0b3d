import { describe, expect, it } from 'vitest';
import { quotePurchase } from './purchase.ts';

describe('quotePurchase', () => {
  it('turns dollars into USDC base units and credits exactly', () => {
    expect(quotePurchase('10', 6, '1000')).toEqual({
      ok: true,
      purchase: { units: 10_000_000n, credits: '10000', microUsd: 10_000_000n },
    });
    expect(quotePurchase('$0.000001', 6, '1000')).toMatchObject({
      ok: true,
      purchase: { units: 1n, credits: '0.001' },
    });
    expect(quotePurchase('12.345678', 6, '1000')).toMatchObject({
      ok: true,
      purchase: { credits: '12345.678' },
    });
    expect(quotePurchase('1.5', 18, '1000')).toMatchObject({
      ok: true,
      purchase: { units: 1_500_000_000_000_000_000n },
    });
  });

  it('refuses what cannot be paid exactly', () => {
    expect(quotePurchase('', 6, '1000')).toMatchObject({ ok: false, reason: 'Enter an amount.' });
    expect(quotePurchase('0', 6, '1000')).toMatchObject({ ok: false });
    expect(quotePurchase('-1', 6, '1000')).toMatchObject({ ok: false });
    expect(quotePurchase('1e3', 6, '1000')).toMatchObject({ ok: false });
    expect(quotePurchase('0.0000001', 6, '1000')).toMatchObject({ ok: false, reason: /6 decimals/ });
    expect(quotePurchase('0.001', 2, '1000')).toMatchObject({ ok: false, reason: /2 decimals/ });
  });
});
