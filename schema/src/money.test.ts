import { describe, expect, it } from 'vitest';
import {
  formatCredits,
  formatDecimal,
  microUsd,
  multiplyCeil,
  parseCredits,
  parseRatio,
  parseUsd,
  tokenUnitsToMicroUsd,
} from './money.ts';

describe('credits', () => {
  it('formats micro-USD as exact credit strings', () => {
    expect(formatCredits(microUsd(1_500_000n))).toBe('1500');
    expect(formatCredits(microUsd(42n))).toBe('0.042');
    expect(formatCredits(microUsd(-2_500n))).toBe('-2.5');
    expect(formatCredits(microUsd(0n))).toBe('0');
    expect(formatCredits(microUsd(-1n))).toBe('-0.001');
    expect(formatCredits(microUsd(10n))).toBe('0.01');
    expect(formatCredits(microUsd(1_000n))).toBe('1');
    expect(formatCredits(microUsd(-1_010n))).toBe('-1.01');
    expect(formatCredits(microUsd(9_223_372_036_854_775_807n))).toBe('9223372036854775.807');
  });

  it('formats any scale, trailing zeros dropped', () => {
    expect(formatDecimal(1_230n, 0)).toBe('1230');
    expect(formatDecimal(-5n, 0)).toBe('-5');
    expect(formatDecimal(5n, 6)).toBe('0.000005');
    expect(formatDecimal(-120_000n, 6)).toBe('-0.12');
    expect(formatDecimal(10n ** 30n + 1n, 18)).toBe('1000000000000.000000000000000001');
  });

  it('parses credit strings and refuses what is not exact', () => {
    expect(parseCredits('1500')).toBe(1_500_000n);
    expect(parseCredits('0.042')).toBe(42n);
    expect(parseCredits('-2.5')).toBe(-2_500n);
    expect(() => parseCredits('0.0001')).toThrow(/fractional/);
    expect(() => parseCredits('1e3')).toThrow(/decimal/);
    expect(() => parseCredits('')).toThrow();
  });

  it('round-trips', () => {
    for (const value of [0n, 1n, 999n, 1000n, 123_456_789n, -7n]) {
      expect(parseCredits(formatCredits(microUsd(value)))).toBe(value);
    }
  });
});

describe('usd and tokens', () => {
  it('one USDC base unit is one micro-USD', () => {
    expect(tokenUnitsToMicroUsd(1_000_000n)).toBe(parseUsd('1'));
    expect(tokenUnitsToMicroUsd(10n ** 18n, 18)).toBe(1_000_000n);
    expect(() => tokenUnitsToMicroUsd(1n, 18)).toThrow();
  });

  it('applies a markup rounding up to the micro-USD', () => {
    expect(multiplyCeil(microUsd(21n), parseRatio('2.0'))).toBe(42n);
    expect(multiplyCeil(microUsd(1n), parseRatio('1.5'))).toBe(2n);
    expect(multiplyCeil(microUsd(3n), parseRatio('1.1'))).toBe(4n);
    expect(multiplyCeil(microUsd(0n), parseRatio('3'))).toBe(0n);
  });
});
