/**
 * Exact checks of single column values, for the stores of hot reads that build their views straight from
 * the rows (the ledger page: up to 100 entries and their deposits per request). A zod object schema per row
 * validated the same things at several times the cost: it copied each row, then the transform copied it
 * again into the view, and that parse was the largest item of the read path's own code in its profile.
 *
 * Each function checks one value against its column's type as the pool's type parsers return it (and the
 * ORM's, on PGlite) and returns it in the view's type, or throws {@link ColumnTypeError}: a statement and
 * its store that disagree are a bug, never the caller's input.
 */

/** A value whose type is not its column's: the statement does not select what its store reads. */
export class ColumnTypeError extends Error {
  constructor(column: string, expected: string, value: unknown) {
    super(
      `column ${column}: expected ${expected}, got ${value === null ? 'null' : value instanceof Date ? 'a Date' : typeof value}`,
    );
    this.name = 'ColumnTypeError';
  }
}

export function text(value: unknown, column: string): string {
  if (typeof value !== 'string') throw new ColumnTypeError(column, 'text', value);
  return value;
}

export function textOrNull(value: unknown, column: string): string | null {
  return value === null ? null : text(value, column);
}

/** An `integer` column (int4): a JavaScript number, always an integer. */
export function int4(value: unknown, column: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw new ColumnTypeError(column, 'integer', value);
  return value;
}

/** A `bigint` column selected `::text` (exact: the pool would give large values as strings anyway). */
export function int8Text(value: unknown, column: string): bigint {
  if (typeof value !== 'string') throw new ColumnTypeError(column, 'bigint as text', value);
  // BigInt() throws on anything but an integer's digits.
  return BigInt(value);
}

/**
 * A `timestamptz` column: PostgreSQL's text (the ORM's pool keeps timestamps as text) or a Date (PGlite
 * through the ORM), as a Date (millisecond precision, as every timestamp the API writes).
 */
export function timestamp(value: unknown, column: string): Date {
  if (typeof value !== 'string' && !(value instanceof Date))
    throw new ColumnTypeError(column, 'timestamptz', value);
  if (typeof value === 'string') {
    const time = utcTimestampText(value);
    if (time !== null) return new Date(time);
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new ColumnTypeError(column, 'timestamptz', value);
  return date;
}

const ZERO = 48;
const digit = (text: string, at: number): number => {
  const value = text.charCodeAt(at) - ZERO;
  return value >= 0 && value <= 9 ? value : Number.NaN;
};
const twoDigits = (text: string, at: number): number => digit(text, at) * 10 + digit(text, at + 1);
/** The character codes of PostgreSQL's text of a UTC timestamptz, `YYYY-MM-DD HH:MM:SS[.f{1,6}]+00`. */
const SEPARATORS: readonly [number, number][] = [
  [4, 45], // -
  [7, 45],
  [10, 32], // space
  [13, 58], // :
  [16, 58],
];

/**
 * Milliseconds since the epoch of PostgreSQL's text of a timestamptz in UTC (a session whose TimeZone is
 * UTC: `2026-12-03 22:01:05.123456+00`, microseconds cut to milliseconds as `Date` cuts them), or null
 * for any other text, which `Date` then reads. Digits read one by one: `new Date(text)` costs about twice
 * as much, for two timestamps per entry of a ledger page.
 */
function utcTimestampText(text: string): number | null {
  const length = text.length;
  // `+00` at the end; 22 characters without a fraction, 24 to 29 with 1 to 6 digits of one.
  if (length < 22 || length === 23 || length > 29 || !text.endsWith('+00')) return null;
  for (const [at, code] of SEPARATORS) if (text.charCodeAt(at) !== code) return null;
  let ms = 0;
  if (length > 22) {
    if (text.charCodeAt(19) !== 46) return null; // .
    for (let at = 20; at < length - 3; at++) {
      const value = digit(text, at);
      if (at < 23) ms += value * 10 ** (22 - at);
      else if (Number.isNaN(value)) return null;
    }
  }
  const year = twoDigits(text, 0) * 100 + twoDigits(text, 2);
  const month = twoDigits(text, 5);
  const day = twoDigits(text, 8);
  const hour = twoDigits(text, 11);
  const minute = twoDigits(text, 14);
  const second = twoDigits(text, 17);
  // PostgreSQL writes only valid dates; anything out of range is left to `Date` (and refused by it).
  if (!(year >= 1000 && month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23)) return null;
  if (!(minute <= 59 && second <= 59 && ms >= 0)) return null;
  const time = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // A day past its month's end (2026-02-31) would roll over in Date.UTC: left to `Date`.
  return day <= 28 || new Date(time).getUTCDate() === day ? time : null;
}

export function timestampOrNull(value: unknown, column: string): Date | null {
  return value === null ? null : timestamp(value, column);
}

/** A text column constrained to `values` (a CHECK or an enum the store names). */
export function oneOf<const T extends string>(values: readonly T[], value: unknown, column: string): T {
  if (!values.includes(value as T)) throw new ColumnTypeError(column, values.join(' | '), value);
  return value as T;
}
