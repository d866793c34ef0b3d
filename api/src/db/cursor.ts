/**
 * Opaque pagination cursors: base64url of `<kind>:<parts joined by ':'>`. The kind stops a ledger
 * cursor being replayed against deposits; a cursor that does not decode is the caller's mistake.
 */
import { ExpectedError } from '../errors.ts';

export class InvalidCursorError extends ExpectedError {
  override name = 'InvalidCursorError';
  constructor(message: string) {
    super('BAD_USER_INPUT', message);
  }
}

export function encodeCursor(kind: string, parts: readonly (string | number | bigint)[]): string {
  return Buffer.from([kind, ...parts].join(':'), 'utf8').toString('base64url');
}

export function decodeCursor(kind: string, cursor: string, arity: number): string[] {
  const [prefix, ...parts] = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  if (prefix !== kind || parts.length !== arity) throw new InvalidCursorError(`invalid ${kind} cursor`);
  return parts;
}

/** The largest value of a PostgreSQL `integer` column (seq, log index). */
const INT4_MAX = 2_147_483_647;
/** The largest value of a PostgreSQL `bigint` column (block numbers, micro-USD). */
export const INT8_MAX = 9_223_372_036_854_775_807n;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Milliseconds since the epoch of 0001-01-01 and 9999-12-31T23:59:59.999Z: what every store and ISO-8601 holds. */
const MIN_TIME_MS = -62_135_596_800_000;
const MAX_TIME_MS = 253_402_300_799_999;

/**
 * The parts of a decoded cursor, each checked against the range of the column it is compared with: a
 * forged cursor is the caller's mistake (BAD_USER_INPUT), never a database error masked as a 500.
 */
export function cursorInteger(kind: string, part: string | undefined, max = INT4_MAX): number {
  if (part === undefined || !/^\d{1,10}$/.test(part) || Number(part) > max) throw invalidCursor(kind);
  return Number(part);
}

export function cursorBigint(kind: string, part: string | undefined, max = INT8_MAX): bigint {
  if (part === undefined || !/^\d{1,19}$/.test(part) || BigInt(part) > max) throw invalidCursor(kind);
  return BigInt(part);
}

export function cursorUuid(kind: string, part: string | undefined): string {
  if (part === undefined || !UUID.test(part)) throw invalidCursor(kind);
  return part;
}

export function cursorTime(kind: string, part: string | undefined): Date {
  const millis = part !== undefined && /^-?\d{1,15}$/.test(part) ? Number(part) : Number.NaN;
  if (!(millis >= MIN_TIME_MS && millis <= MAX_TIME_MS)) throw invalidCursor(kind);
  return new Date(millis);
}

const invalidCursor = (kind: string) => new InvalidCursorError(`invalid ${kind} cursor`);

const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

export function pageSize(first: number | null | undefined): number {
  const size = first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > MAX_PAGE_SIZE) {
    throw new InvalidCursorError(`first must be an integer between 0 and ${MAX_PAGE_SIZE}`);
  }
  return size;
}

export interface Page<T> {
  entries: T[];
  hasNextPage: boolean;
  endCursor: string | null;
}
