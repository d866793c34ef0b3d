import { describe, expect, it } from 'vitest';
import {
  ColumnTypeError,
  int4,
  int8Text,
  oneOf,
  text,
  textOrNull,
  timestamp,
  timestampOrNull,
} from './columns.ts';

describe('column checks', () => {
  it('return the values of their type, as the views hold them', () => {
    expect(text('a', 'c')).toBe('a');
    expect(textOrNull(null, 'c')).toBeNull();
    expect(int4(42, 'c')).toBe(42);
    expect(int8Text('-9223372036854775807', 'c')).toBe(-9_223_372_036_854_775_807n);
    expect(oneOf(['A', 'B'] as const, 'B', 'c')).toBe('B');
    // The pool's text of a timestamptz, its ISO form, and a Date (PGlite): the same instant, to the millisecond.
    const instant = Date.UTC(2026, 11, 3, 22, 1, 5, 123);
    expect(timestamp('2026-12-03 22:01:05.123456+00', 'c').getTime()).toBe(instant);
    expect(timestamp('2026-12-03T23:01:05.123+01:00', 'c').getTime()).toBe(instant);
    expect(timestamp(new Date(instant), 'c').getTime()).toBe(instant);
    expect(timestampOrNull(null, 'c')).toBeNull();
  });

  it("read PostgreSQL's UTC text of every shape to the millisecond, as Date reads it", () => {
    // Fractions of 0 to 6 digits (PostgreSQL drops trailing zeros), microseconds cut, not rounded.
    const cases: [string, number][] = [
      ['2026-12-03 22:01:05+00', Date.UTC(2026, 11, 3, 22, 1, 5, 0)],
      ['2026-12-03 22:01:05.1+00', Date.UTC(2026, 11, 3, 22, 1, 5, 100)],
      ['2026-12-03 22:01:05.12+00', Date.UTC(2026, 11, 3, 22, 1, 5, 120)],
      ['2026-12-03 22:01:05.999999+00', Date.UTC(2026, 11, 3, 22, 1, 5, 999)],
      ['2024-02-29 23:59:59.0005+00', Date.UTC(2024, 1, 29, 23, 59, 59, 0)],
      ['1000-01-01 00:00:00+00', Date.UTC(1000, 0, 1)],
      ['9999-12-31 23:59:59.999+00', Date.UTC(9999, 11, 31, 23, 59, 59, 999)],
      // Other offsets and years are left to Date.
      ['2026-12-03 23:01:05.5+01', Date.UTC(2026, 11, 3, 22, 1, 5, 500)],
      ['2026-12-03 17:31:05+05:30', Date.UTC(2026, 11, 3, 12, 1, 5, 0)],
      ['0999-12-31 23:59:59+00', Date.UTC(999, 11, 31, 23, 59, 59)],
    ];
    for (const [text, instant] of cases) {
      expect(timestamp(text, 'c').getTime(), text).toBe(instant);
      expect(timestamp(text, 'c').getTime(), text).toBe(new Date(text).getTime());
    }
    // Every millisecond digit and every day of a leap year, against Date's own reading.
    for (let day = 0; day < 366; day++) {
      const instant = Date.UTC(2028, 0, 1) + day * 86_400_000 + day * 3_723_007;
      const iso = new Date(instant).toISOString();
      const text = `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(day % 1000).padStart(3, '0')}+00`;
      expect(timestamp(text, 'c').getTime(), text).toBe(instant);
    }
    // Any other text is read by Date as before: refused when Date refuses it.
    for (const text of [
      '2026-12-03 22:01:05.x+00',
      '2026-13-03 22:01:05+00',
      '2026-12-03 22:01:0x+00',
      '2026-12-03T22:01:05.123+00',
      '2026-02-31 22:01:05+00',
    ]) {
      const instant = Date.parse(text);
      if (Number.isNaN(instant)) expect(() => timestamp(text, 'created_at'), text).toThrow(/timestamptz/);
      else expect(timestamp(text, 'c').getTime(), text).toBe(instant);
    }
  });

  it('refuse anything else with the column named: a statement that does not select what its store reads', () => {
    expect(() => text(1, 'tx_hash')).toThrow(ColumnTypeError);
    expect(() => text(null, 'tx_hash')).toThrow(/column tx_hash: expected text, got null/);
    expect(() => int4('1', 'seq')).toThrow(/column seq: expected integer, got string/);
    expect(() => int4(1.5, 'seq')).toThrow(ColumnTypeError);
    expect(() => int8Text(12, 'amount')).toThrow(/bigint as text/);
    expect(() => int8Text('1.5', 'amount')).toThrow(SyntaxError);
    expect(() => oneOf(['A', 'B'] as const, 'C', 'status')).toThrow(/expected A \| B/);
    expect(() => timestamp('not a time', 'created_at')).toThrow(/timestamptz/);
    expect(() => timestamp(0, 'created_at')).toThrow(/got number/);
  });
});
