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
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new ColumnTypeError(column, 'timestamptz', value);
  return date;
}

export function timestampOrNull(value: unknown, column: string): Date | null {
  return value === null ? null : timestamp(value, column);
}

/** A text column constrained to `values` (a CHECK or an enum the store names). */
export function oneOf<const T extends string>(values: readonly T[], value: unknown, column: string): T {
  if (!values.includes(value as T)) throw new ColumnTypeError(column, values.join(' | '), value);
  return value as T;
}
