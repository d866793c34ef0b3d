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
