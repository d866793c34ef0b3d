import { describe, expect, it } from 'vitest';
import { creditsToUsd, displayCredits, displayUsd, groupThousands, shortHex, txUrl } from './format.ts';

describe('display formatting', () => {
  it('groups thousands without touching the fraction', () => {
    expect(groupThousands('1234567.12345')).toBe('1,234,567.12345');
    expect(groupThousands('-1000')).toBe('-1,000');
    expect(groupThousands('999')).toBe('999');
    expect(displayCredits('0.042')).toBe('0.042');
  });

  it('shows dollars exactly, with at least two decimals', () => {
    expect(displayUsd(1_500_000n)).toBe('$1.50');
    expect(displayUsd(42n)).toBe('$0.000042');
    expect(displayUsd(0n)).toBe('$0.00');
    expect(displayUsd(-2_500n)).toBe('-$0.0025');
    expect(displayUsd(123_456_789_000_000n)).toBe('$123,456,789.00');
  });

  it('converts credits to dollars exactly (1 credit = $0.001)', () => {
    expect(creditsToUsd('5000')).toBe('$5.00');
    expect(creditsToUsd('0.042')).toBe('$0.000042');
    expect(creditsToUsd('9007199254740993.001')).toBe('$9,007,199,254,740.993001');
  });

  it('links transactions only where the chain has an explorer', () => {
    expect(txUrl(8453, '0xabc')).toBe('https://basescan.org/tx/0xabc');
    expect(txUrl(31337, '0xabc')).toBeNull();
    expect(shortHex('0x1234567890abcdef1234')).toBe('0x1234…1234');
  });
});
