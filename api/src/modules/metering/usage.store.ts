/**
 * The usage read path's SQL: an account's settled calls (BILLED and NEEDS_REVIEW rows), paged either way
 * by (created_at, id), and their totals by model, UTC day or API key. Every statement takes the same
 * filter parameters, $1..$5 (account, from, to, model, API key), a null filter matching every row.
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import { BILLING_STATUSES, USAGE_RESOLUTIONS } from './metering.entity.ts';
import type { UsageView } from './metering.service.ts';

export interface UsageFilter {
  /** Inclusive. */
  from?: Date | null;
  /** Exclusive. */
  to?: Date | null;
  model?: string | null;
  apiKeyId?: string | null;
}

const FILTER = `account_id = $1::uuid and status in ('BILLED', 'NEEDS_REVIEW')
     and ($2::timestamptz is null or created_at >= $2::timestamptz)
     and ($3::timestamptz is null or created_at < $3::timestamptz)
     and ($4::text is null or model = $4::text)
     and ($5::uuid is null or api_key_id = $5::uuid)`;

function filterValues(accountId: string, filter: UsageFilter): unknown[] {
  return [
    accountId,
    filter.from?.toISOString() ?? null,
    filter.to?.toISOString() ?? null,
    filter.model || null,
    filter.apiKeyId || null,
  ];
}

/** The columns of a usage row as users see it (`usageFromRow` reads them); `usage_records` unqualified. */
export const USAGE_VIEW_COLUMNS = `id, request_id, model, api_key_id, prompt_tokens, completion_tokens,
  provider_cost::text as provider_cost, user_price::text as user_price, status, latency_ms, flags, created_at,
  resolution, resolved_by, resolution_reason, resolved_at, charged_before_resolution::text as charged_before_resolution`;
const COLUMNS = USAGE_VIEW_COLUMNS;

/** A `text[]` arrives as an array from pg, as its literal ('{a,b}') from some drivers. */
function parseTextArray(value: string): string[] {
  const inner = value.replace(/^\{|\}$/g, '');
  return inner ? inner.split(',') : [];
}

const usageRow = z
  .object({
    id: z.string(),
    request_id: z.string(),
    model: z.string(),
    api_key_id: z.string().nullable(),
    prompt_tokens: z.number(),
    completion_tokens: z.number(),
    provider_cost: z.string().nullable(),
    user_price: z.string(),
    status: z.enum(BILLING_STATUSES),
    latency_ms: z.number().nullable(),
    flags: z.union([z.array(z.string()), z.string().transform(parseTextArray)]),
    created_at: z.coerce.date(),
    resolution: z.enum(USAGE_RESOLUTIONS).nullable(),
    resolved_by: z.string().nullable(),
    resolution_reason: z.string().nullable(),
    resolved_at: z.coerce.date().nullable(),
    charged_before_resolution: z.string().nullable(),
    wallet_address: z.string().optional(),
  })
  .transform(
    (row): UsageView => ({
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
      flags: row.flags,
      createdAt: row.created_at,
      resolution:
        row.resolution === null
          ? null
          : {
              action: row.resolution,
              operator: row.resolved_by ?? '',
              reason: row.resolution_reason ?? '',
              resolvedAt: row.resolved_at ?? row.created_at,
              chargedBefore: BigInt(row.charged_before_resolution ?? '0'),
            },
      ...(row.wallet_address === undefined ? {} : { walletAddress: row.wallet_address }),
    }),
  );

/** A row of {@link USAGE_VIEW_COLUMNS} (and optionally `wallet_address`), checked. */
export function usageFromRow(row: unknown): UsageView {
  return usageRow.parse(row);
}

/** A keyset position: rows strictly after (or before) it in (created_at, id) order. */
export interface UsagePosition {
  createdAt: Date;
  id: string;
}

const NEWEST_FIRST: Statement = {
  name: 'cm_usage_newest_first',
  text: `select ${COLUMNS} from usage_records where ${FILTER}
     and ($6::timestamptz is null or (created_at, id) < ($6::timestamptz, $7::uuid))
   order by created_at desc, id desc limit $8`,
};

const OLDEST_FIRST: Statement = {
  name: 'cm_usage_oldest_first',
  text: `select ${COLUMNS} from usage_records where ${FILTER}
     and ($6::timestamptz is null or (created_at, id) > ($6::timestamptz, $7::uuid))
   order by created_at, id limit $8`,
};

/** Up to `limit` usage rows of an account past `after` (null: from the start), newest or oldest first. */
export async function readUsagePage(
  query: Query,
  accountId: string,
  filter: UsageFilter,
  order: 'newestFirst' | 'oldestFirst',
  after: UsagePosition | null,
  limit: number,
): Promise<UsageView[]> {
  const rows = await query(order === 'newestFirst' ? NEWEST_FIRST : OLDEST_FIRST, [
    ...filterValues(accountId, filter),
    after?.createdAt.toISOString() ?? null,
    after?.id ?? null,
    limit,
  ]);
  return rows.map((row) => usageRow.parse(row));
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

const SUMMARY: Record<UsageGroupBy, Statement> = Object.fromEntries(
  USAGE_GROUP_BY.map((groupBy) => [
    groupBy,
    {
      name: `cm_usage_summary_${groupBy.toLowerCase()}`,
      text: `select ${GROUP_KEY[groupBy]} as key, count(*)::int as requests,
         sum(prompt_tokens)::text as prompt_tokens, sum(completion_tokens)::text as completion_tokens,
         coalesce(sum(provider_cost), 0)::text as provider_cost, sum(user_price)::text as user_price,
         (count(*) filter (where status = 'NEEDS_REVIEW'))::int as needs_review
       from usage_records where ${FILTER} group by 1 order by 1`,
    },
  ]),
) as Record<UsageGroupBy, Statement>;

const bucketRow = z.object({
  key: z.string(),
  requests: z.number(),
  prompt_tokens: z.string(),
  completion_tokens: z.string(),
  provider_cost: z.string(),
  user_price: z.string(),
  needs_review: z.number(),
});

/** Totals of an account's usage matching `filter`, by `groupBy`, sorted by key. */
export async function readUsageBuckets(
  query: Query,
  accountId: string,
  filter: UsageFilter,
  groupBy: UsageGroupBy,
): Promise<UsageBucket[]> {
  const rows = await query(SUMMARY[groupBy], filterValues(accountId, filter));
  return rows.map((raw) => {
    const row = bucketRow.parse(raw);
    return {
      key: row.key,
      apiKeyId: groupBy === 'API_KEY' && row.key !== '' ? row.key : null,
      requests: row.requests,
      promptTokens: BigInt(row.prompt_tokens),
      completionTokens: BigInt(row.completion_tokens),
      providerCost: BigInt(row.provider_cost),
      userPrice: BigInt(row.user_price),
      needsReview: row.needs_review,
    };
  });
}
