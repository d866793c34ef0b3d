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
import { badInput } from '../../errors.ts';
import type { BillingStatus } from './metering.entity.ts';
import type { UsageView } from './metering.service.ts';

export interface UsageFilter {
  /** Inclusive. */
  from?: Date | null;
  /** Exclusive. */
  to?: Date | null;
  model?: string | null;
  apiKeyId?: string | null;
}

interface UsageRow {
  id: string;
  request_id: string;
  model: string;
  api_key_id: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  provider_cost: string | null;
  user_price: string;
  status: BillingStatus;
  latency_ms: number | null;
  flags: string[] | string;
  created_at: Date | string;
}

const COLUMNS = `id, request_id, model, api_key_id, prompt_tokens, completion_tokens, provider_cost::text as provider_cost,
  user_price::text as user_price, status, latency_ms, flags, created_at`;

function toView(row: UsageRow): UsageView {
  return {
    id: row.id,
    requestId: row.request_id,
    model: row.model,
    apiKeyId: row.api_key_id,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
    providerCost: row.provider_cost === null ? null : BigInt(row.provider_cost),
    userPrice: BigInt(row.user_price),
    billingStatus: row.status,
    latencyMs: row.latency_ms,
    flags: parseTextArray(row.flags),
    createdAt: new Date(row.created_at),
  };
}

/** A `text[]` arrives as an array from pg, as its literal ('{a,b}') from some drivers. */
function parseTextArray(value: string[] | string): string[] {
  if (Array.isArray(value)) return value;
  const inner = value.replace(/^\{|\}$/g, '');
  return inner ? inner.split(',') : [];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function whereOf(accountId: string, filter: UsageFilter): { sql: string; params: unknown[] } {
  const clauses = [`account_id = ?::uuid`, `status in ('BILLED', 'NEEDS_REVIEW')`];
  const params: unknown[] = [accountId];
  if (filter.from) {
    clauses.push('created_at >= ?::timestamptz');
    params.push(filter.from.toISOString());
  }
  if (filter.to) {
    clauses.push('created_at < ?::timestamptz');
    params.push(filter.to.toISOString());
  }
  if (filter.model) {
    clauses.push('model = ?');
    params.push(filter.model);
  }
  if (filter.apiKeyId) {
    if (!UUID.test(filter.apiKeyId)) throw badInput('apiKeyId is not an API key id', 'apiKeyId');
    clauses.push('api_key_id = ?::uuid');
    params.push(filter.apiKeyId);
  }
  return { sql: clauses.join(' and '), params };
}

const USAGE_CURSOR = 'usage';

/** Keyset position: creation time in milliseconds (the precision rows are written with) and id. */
export function usageCursor(usage: Pick<UsageView, 'createdAt' | 'id'>): string {
  return encodeCursor(USAGE_CURSOR, [usage.createdAt.getTime(), usage.id]);
}

function decodeUsageCursor(cursor: string): { createdAt: Date; id: string } {
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
  const where = whereOf(accountId, args.filter ?? {});
  if (args.after) {
    const after = decodeUsageCursor(args.after);
    where.sql += ' and (created_at, id) < (?::timestamptz, ?::uuid)';
    where.params.push(after.createdAt.toISOString(), after.id);
  }
  const rows: UsageRow[] = await em.execute(
    `select ${COLUMNS} from usage_records where ${where.sql} order by created_at desc, id desc limit ?`,
    [...where.params, first + 1],
  );
  const entries = rows.slice(0, first).map(toView);
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
  let after: { createdAt: Date; id: string } | null = null;
  for (;;) {
    const where = whereOf(accountId, filter);
    if (after) {
      where.sql += ' and (created_at, id) > (?::timestamptz, ?::uuid)';
      where.params.push(after.createdAt.toISOString(), after.id);
    }
    const rows: UsageRow[] = await em.execute(
      `select ${COLUMNS} from usage_records where ${where.sql} order by created_at, id limit ?`,
      [...where.params, pageRows],
    );
    if (rows.length === 0) return;
    const page = rows.map(toView);
    yield page;
    if (rows.length < pageRows) return;
    const last = page[page.length - 1] as UsageView;
    after = { createdAt: last.createdAt, id: last.id };
  }
}

export const USAGE_GROUP_BY = ['MODEL', 'DAY', 'API_KEY'] as const;
export type UsageGroupBy = (typeof USAGE_GROUP_BY)[number];

export interface UsageBucket {
  /** The model; the UTC day as YYYY-MM-DD; or the API key id ('' for calls made with a session). */
  key: string;
  apiKeyId: string | null;
  requests: number;
  promptTokens: bigint;
  completionTokens: bigint;
  /** Sum of the known provider costs (NEEDS_REVIEW calls without one count 0). */
  providerCost: bigint;
  userPrice: bigint;
  needsReview: number;
}

const GROUP_KEY: Record<UsageGroupBy, string> = {
  MODEL: 'model',
  DAY: `to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')`,
  API_KEY: `coalesce(api_key_id::text, '')`,
};

/** Totals of an account's usage in [from, to), by model, UTC day or API key, sorted by key. */
export async function summarizeUsage(
  em: Em,
  accountId: string,
  range: { from: Date; to: Date },
  groupBy: UsageGroupBy,
): Promise<UsageBucket[]> {
  if (!(range.from.getTime() < range.to.getTime())) throw badInput('`from` must be before `to`', 'from');
  const where = whereOf(accountId, range);
  const rows: {
    key: string;
    requests: number;
    prompt_tokens: string;
    completion_tokens: string;
    provider_cost: string;
    user_price: string;
    needs_review: number;
  }[] = await em.execute(
    `select ${GROUP_KEY[groupBy]} as key, count(*)::int as requests,
       sum(prompt_tokens)::text as prompt_tokens, sum(completion_tokens)::text as completion_tokens,
       coalesce(sum(provider_cost), 0)::text as provider_cost, sum(user_price)::text as user_price,
       (count(*) filter (where status = 'NEEDS_REVIEW'))::int as needs_review
     from usage_records where ${where.sql} group by 1 order by 1`,
    where.params,
  );
  return rows.map((row) => ({
    key: row.key,
    apiKeyId: groupBy === 'API_KEY' && row.key !== '' ? row.key : null,
    requests: row.requests,
    promptTokens: BigInt(row.prompt_tokens),
    completionTokens: BigInt(row.completion_tokens),
    providerCost: BigInt(row.provider_cost),
    userPrice: BigInt(row.user_price),
    needsReview: row.needs_review,
  }));
}
