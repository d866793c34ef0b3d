/**
 * Checked reads of one field of an audit record, whether it comes from JSON (GraphQL, a proof file) or a
 * database row: each returns the field as its type or throws `AuditFormatError` naming the record and field.
 */

export class AuditFormatError extends Error {
  override name = 'AuditFormatError';
}

export type Fields = Record<string, unknown>;

function field(record: Fields, name: string, where: string): unknown {
  if (!(name in record)) throw new AuditFormatError(`${where}: missing "${name}"`);
  return record[name];
}

export function str(record: Fields, name: string, where: string): string {
  const value = field(record, name, where);
  if (typeof value !== 'string') throw new AuditFormatError(`${where}: "${name}" must be a string`);
  return value;
}

export function nullableStr(record: Fields, name: string, where: string): string | null {
  const value = record[name];
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw new AuditFormatError(`${where}: "${name}" must be a string or null`);
  return value;
}

export function int(record: Fields, name: string, where: string): number {
  const value = field(record, name, where);
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number)) {
    throw new AuditFormatError(`${where}: "${name}" must be an integer`);
  }
  return number;
}

export function big(record: Fields, name: string, where: string): bigint {
  const value = str(record, name, where);
  if (!/^-?\d{1,78}$/.test(value))
    throw new AuditFormatError(`${where}: "${name}" must be an integer string`);
  return BigInt(value);
}

/** A timestamp: a `Date` (a database driver's) or an ISO-8601 string (JSON, or a driver that keeps text). */
export function date(record: Fields, name: string, where: string): Date {
  const value = field(record, name, where);
  const parsed = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : null;
  if (!parsed || Number.isNaN(parsed.getTime()))
    throw new AuditFormatError(`${where}: "${name}" is not a date`);
  return parsed;
}

export function object(value: unknown, where: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AuditFormatError(`${where}: must be an object`);
  }
  return value as Fields;
}
