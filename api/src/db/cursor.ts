/**
 * Opaque pagination cursors: base64url of `<kind>:<parts joined by ':'>`. The kind stops a ledger
 * cursor being replayed against deposits; a cursor that does not decode is the caller's mistake.
 */
export class InvalidCursorError extends Error {
  override name = 'InvalidCursorError';
  readonly code = 'BAD_USER_INPUT';
}

export function encodeCursor(kind: string, parts: readonly (string | number | bigint)[]): string {
  return Buffer.from([kind, ...parts].join(':'), 'utf8').toString('base64url');
}

export function decodeCursor(kind: string, cursor: string, arity: number): string[] {
  const [prefix, ...parts] = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  if (prefix !== kind || parts.length !== arity) throw new InvalidCursorError(`invalid ${kind} cursor`);
  return parts;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

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
