/**
 * Reading an ISO-8601 date-time the way every input of the API reads it (the `DateTime` scalar, the REST
 * export's `from` and `to`): a calendar date that exists, a time, an explicit offset (`Z` or `+hh:mm`),
 * years 0001 to 9999. `Date` alone would roll 2026-02-31 over to March 3rd, read a time without an offset
 * in the server's zone, and accept years no database column holds.
 */
const ISO_DATE_TIME = /^(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;
const ISO_DATE = /^(\d{4}-\d{2}-\d{2})$/;

/**
 * The instant `text` names, or null when it is not one.
 *
 * @example parseDateTime('2026-11-24T05:45:12Z') // 2026-11-24T05:45:12.000Z
 * @example parseDateTime('2026-11-24', { dateOnly: true }) // midnight UTC that day
 */
export function parseDateTime(text: string, options: { dateOnly?: boolean } = {}): Date | null {
  const parts = ISO_DATE_TIME.exec(text) ?? (options.dateOnly ? ISO_DATE.exec(text) : null);
  if (!parts) return null;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return null;
  // The calendar date written is the date parsed, in the text's own offset (no rolling over).
  const offset = parts[2] ?? 'Z';
  const minutes =
    offset.toUpperCase() === 'Z'
      ? 0
      : (offset.startsWith('-') ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  if (new Date(date.getTime() + minutes * 60_000).toISOString().slice(0, 10) !== parts[1]) return null;
  return date.getUTCFullYear() >= 1 ? date : null;
}
