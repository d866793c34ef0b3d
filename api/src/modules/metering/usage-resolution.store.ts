/**
 * The operators' SQL on `usage_records` (the metering module writes this table; operations only calls
 * these): the NEEDS_REVIEW queue across accounts, the lock and the guarded update that resolve one call,
 * and revenue over every account's calls. The ledger side of a resolution (its USAGE entry) is written by
 * the ledger's own writer in the same transaction (`operations.service.ts`).
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import { USAGE_RESOLUTIONS, type UsageResolution } from './metering.entity.ts';
import type { UsageView } from './metering.service.ts';
import { USAGE_VIEW_COLUMNS, type UsagePosition, usageFromRow } from './usage.store.ts';

const WALLET =
  '(select a.wallet_address from accounts a where a.id = usage_records.account_id) as wallet_address';

const NEEDS_REVIEW_PAGE: Statement = {
  name: 'cm_usage_needs_review_page',
  text: `select ${USAGE_VIEW_COLUMNS}, ${WALLET} from usage_records
   where status = 'NEEDS_REVIEW'
     and ($1::timestamptz is null or (created_at, id) > ($1::timestamptz, $2::uuid))
   order by created_at, id limit $3`,
};

/** Up to `limit` NEEDS_REVIEW calls of every account, oldest first (a queue), after `after`. */
export async function readNeedsReviewPage(
  query: Query,
  after: UsagePosition | null,
  limit: number,
): Promise<UsageView[]> {
  const rows = await query(NEEDS_REVIEW_PAGE, [
    after?.createdAt.toISOString() ?? null,
    after?.id ?? null,
    limit,
  ]);
  return rows.map(usageFromRow);
}

/** A usage record as a resolution sees it, under its row lock. */
export interface UsageUnderReview {
  id: string;
  accountId: string;
  status: string;
  /** What the call is charged now (its hold, for a NEEDS_REVIEW call). */
  userPrice: bigint;
  providerCost: bigint | null;
  resolution: UsageResolution | null;
  resolvedBy: string | null;
  resolvedAt: Date | null;
}

const LOCK_FOR_RESOLUTION: Statement = {
  name: 'cm_usage_lock_for_resolution',
  text: `select id, account_id, status, user_price::text as user_price, provider_cost::text as provider_cost,
     resolution, resolved_by, resolved_at
   from usage_records where id = $1::uuid for update`,
};

const underReviewRow = z
  .object({
    id: z.string(),
    account_id: z.string(),
    status: z.string(),
    user_price: z.string(),
    provider_cost: z.string().nullable(),
    resolution: z.enum(USAGE_RESOLUTIONS).nullable(),
    resolved_by: z.string().nullable(),
    resolved_at: z.coerce.date().nullable(),
  })
  .transform(
    (row): UsageUnderReview => ({
      id: row.id,
      accountId: row.account_id,
      status: row.status,
      userPrice: BigInt(row.user_price),
      providerCost: row.provider_cost === null ? null : BigInt(row.provider_cost),
      resolution: row.resolution,
      resolvedBy: row.resolved_by,
      resolvedAt: row.resolved_at,
    }),
  );

/**
 * Locks a usage record for its resolution (in the caller's transaction; record before account, the order
 * settlement locks in) and reads it; null when there is none. A second resolution of the same call waits
 * here for the first to commit, then reads it resolved.
 */
export async function lockUsageForResolution(
  query: Query,
  usageId: string,
): Promise<UsageUnderReview | null> {
  const [row] = await query(LOCK_FOR_RESOLUTION, [usageId]);
  return row === undefined ? null : underReviewRow.parse(row);
}

const WRITE_RESOLUTION: Statement = {
  name: 'cm_usage_write_resolution',
  text: `update usage_records set status = 'BILLED', user_price = $2::bigint, resolution = $3::text,
     resolved_by = $4::text, resolution_reason = $5::text, resolved_at = $6::timestamptz,
     charged_before_resolution = usage_records.user_price
   where id = $1::uuid and status = 'NEEDS_REVIEW' and resolution is null
   returning ${USAGE_VIEW_COLUMNS}`,
};

export interface UsageResolutionInput {
  usageId: string;
  action: UsageResolution;
  /** What the call is charged from now on (0 for WAIVE). */
  price: bigint;
  operator: string;
  reason: string;
  at: Date;
}

/**
 * Closes a NEEDS_REVIEW call at `price`, recording the operator, the reason and what it had been charged;
 * guarded (`status = 'NEEDS_REVIEW' and resolution is null`): null when it was not open any more.
 */
export async function writeUsageResolution(
  query: Query,
  input: UsageResolutionInput,
): Promise<UsageView | null> {
  const [row] = await query(WRITE_RESOLUTION, [
    input.usageId,
    input.price.toString(),
    input.action,
    input.operator,
    input.reason,
    input.at.toISOString(),
  ]);
  return row === undefined ? null : usageFromRow(row);
}

export const REVENUE_GROUP_BY = ['DAY', 'MODEL'] as const;
export type RevenueGroupBy = (typeof REVENUE_GROUP_BY)[number];

/** Every account's settled calls in one group: exact sums in micro-USD. */
export interface RevenueBucket {
  /** The UTC day (YYYY-MM-DD) or the model. */
  key: string;
  userPrice: bigint;
  /** Known provider costs (a NEEDS_REVIEW call without one counts 0). */
  providerCost: bigint;
  margin: bigint;
  calls: number;
  needsReview: number;
}

const REVENUE_KEY: Record<RevenueGroupBy, string> = {
  DAY: `to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')`,
  MODEL: 'model',
};

const REVENUE: Record<RevenueGroupBy, Statement> = Object.fromEntries(
  REVENUE_GROUP_BY.map((groupBy) => [
    groupBy,
    {
      name: `cm_revenue_${groupBy.toLowerCase()}`,
      // sum(bigint) is numeric in PostgreSQL: exact, whatever the number of rows.
      text: `select ${REVENUE_KEY[groupBy]} as key, count(*)::int as calls,
         sum(user_price)::text as user_price, coalesce(sum(provider_cost), 0)::text as provider_cost,
         (sum(user_price) - coalesce(sum(provider_cost), 0))::text as margin,
         (count(*) filter (where status = 'NEEDS_REVIEW'))::int as needs_review
       from usage_records
       where status in ('BILLED', 'NEEDS_REVIEW') and created_at >= $1::timestamptz and created_at < $2::timestamptz
       group by 1 order by 1`,
    },
  ]),
) as Record<RevenueGroupBy, Statement>;

const revenueRow = z.object({
  key: z.string(),
  calls: z.number(),
  user_price: z.string(),
  provider_cost: z.string(),
  margin: z.string(),
  needs_review: z.number(),
});

/** Revenue of every account's calls made in [from, to), by UTC day or model, sorted by key. */
export async function readRevenueBuckets(
  query: Query,
  range: { from: Date; to: Date },
  groupBy: RevenueGroupBy,
): Promise<RevenueBucket[]> {
  const rows = await query(REVENUE[groupBy], [range.from.toISOString(), range.to.toISOString()]);
  return rows.map((raw) => {
    const row = revenueRow.parse(raw);
    return {
      key: row.key,
      calls: row.calls,
      userPrice: BigInt(row.user_price),
      providerCost: BigInt(row.provider_cost),
      margin: BigInt(row.margin),
      needsReview: row.needs_review,
    };
  });
}
