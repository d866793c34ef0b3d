import { describe, expect, it } from 'vitest';
import { formatDateTime } from './date-time.ts';

describe('formatDateTime', () => {
  it('writes what toISOString writes, character for character', () => {
    const times = [
      0,
      -1,
      1,
      Date.UTC(2026, 11, 3, 22, 1, 5, 123),
      Date.UTC(2000, 1, 29, 23, 59, 59, 999),
      Date.UTC(1900, 1, 28, 12, 0, 0, 7),
      Date.UTC(2100, 2, 1, 0, 0, 0, 50),
      Date.UTC(1000, 0, 1),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      // Outside the four-digit years: toISOString itself.
      Date.UTC(1000, 0, 1) - 1,
      Date.UTC(9999, 11, 31, 23, 59, 59, 999) + 1,
      Date.UTC(-5, 3, 1),
    ];
    const from = Date.UTC(1000, 0, 1);
    const to = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
    let seed = 42;
    for (let i = 0; i < 100_000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      times.push(from + Math.floor((seed / 2 ** 31) * (to - from)));
    }
    // Every day of the years around the epoch and a leap century.
    for (let day = -800; day < 800; day++) times.push(day * 86_400_000 + (day % 86_400) * 1001);
    for (let day = 0; day < 800; day++) times.push(Date.UTC(1999, 11, 1) + day * 86_400_000 + 86_399_999);
    for (const time of times) {
      const date = new Date(time);
      expect(formatDateTime(date), String(time)).toBe(date.toISOString());
    }
  });

  it('throws on an invalid Date as toISOString does', () => {
    expect(() => formatDateTime(new Date(Number.NaN))).toThrow(RangeError);
  });
});
