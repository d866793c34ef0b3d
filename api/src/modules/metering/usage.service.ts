/**
 * Reading usage: an account's settled calls (BILLED and NEEDS_REVIEW rows; holds in flight and released
 * calls are not usage), paged newest first, summed into buckets, or exported oldest first page by page.
 * Every query is scoped by the account id the caller passes: the resolvers pass the viewer's own.
 */
import {
  cursorTime,
  cursorUuid,
  decodeCursor,
  encodeCursor,
  type Page,
  type PageArgs,
  pageSize,
} from '../../db/cursor.ts';
import type { Em } from '../../db/orm.ts';
import { sqlOf } from '../../db/sql.ts';
import { badInput } from '../../errors.ts';
import type { UsageView } from './metering.service.ts';
import {
  readUsageBuckets,
  readUsagePage,
  type UsageBucket,
  type UsageFilter,
  type UsageGroupBy,
  type UsagePosition,
} from './usage.store.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The filter as the store takes it, once checked: an API key filter must be an id. */
function checkedFilter(filter: UsageFilter): UsageFilter {
  if (filter.apiKeyId && !UUID.test(filter.apiKeyId)) {
    throw badInput('apiKeyId is not an API key id', 'apiKeyId');
  }
  return filter;
}

const USAGE_CURSOR = 'usage';

/** Keyset position: creation time in milliseconds (the precision rows are written with) and id. */
export function usageCursor(usage: Pick<UsageView, 'createdAt' | 'id'>): string {
  return encodeCursor(USAGE_CURSOR, [usage.createdAt.getTime(), usage.id]);
}

function decodeUsageCursor(cursor: string): UsagePosition {
  const [millis, id] = decodeCursor(USAGE_CURSOR, cursor, 2);
  return { createdAt: cursorTime(USAGE_CURSOR, millis), id: cursorUuid(USAGE_CURSOR, id) };
}

/** An account's usage, newest first. */
export async function listUsage(
  em: Em,
  accountId: string,
  args: PageArgs & { filter?: UsageFilter | null } = {},
): Promise<Page<UsageView>> {
  const first = pageSize(args.first);
  const filter = checkedFilter(args.filter ?? {});
  const after = args.after ? decodeUsageCursor(args.after) : null;
  const rows = await readUsagePage(sqlOf(em).query, accountId, filter, 'newestFirst', after, first + 1);
  const entries = rows.slice(0, first);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? usageCursor(last) : null };
}

/**
 * An account's usage, oldest first, one page at a time: the export streams these without ever holding
 * more than one page.
 */
export async function* iterateUsage(
  em: Em,
  accountId: string,
  filter: UsageFilter,
  pageRows = 500,
): AsyncGenerator<UsageView[]> {
  const checked = checkedFilter(filter);
  let after: UsagePosition | null = null;
  for (;;) {
    const page = await readUsagePage(sqlOf(em).query, accountId, checked, 'oldestFirst', after, pageRows);
    if (page.length === 0) return;
    yield page;
    if (page.length < pageRows) return;
    const last = page[page.length - 1] as UsageView;
    after = { createdAt: last.createdAt, id: last.id };
  }
}

/** Totals of an account's usage in [from, to), by model, UTC day or API key, sorted by key. */
export async function summarizeUsage(
  em: Em,
  accountId: string,
  range: { from: Date; to: Date },
  groupBy: UsageGroupBy,
): Promise<UsageBucket[]> {
  if (!(range.from.getTime() < range.to.getTime())) throw badInput('`from` must be before `to`', 'from');
  return readUsageBuckets(sqlOf(em).query, accountId, range, groupBy);
}
