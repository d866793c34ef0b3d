import { builder } from '../../schema/builder.ts';
import { toConnection } from '../../schema/pagination.ts';
import { LedgerEntryRef } from '../ledger/ledger.schema.ts';
import { USAGE_RESOLUTIONS } from '../metering/metering.entity.ts';
import { UsageConnection, UsageRef } from '../metering/metering.schema.ts';
import { REVENUE_GROUP_BY, type RevenueBucket } from '../metering/usage-resolution.store.ts';
import { adjustBalance, listNeedsReview, resolveUsage, revenue, reviewCursor } from './operations.service.ts';

const UsageResolutionRef = builder.enumType('UsageResolution', {
  values: USAGE_RESOLUTIONS,
  description: 'BILL: charge the stated price instead of the hold. WAIVE: charge nothing.',
});

builder.objectFields(UsageRef, (t) => ({
  resolution: t.field({
    type: UsageResolutionRef,
    nullable: true,
    description: 'How an operator resolved this call, if it was NEEDS_REVIEW; null otherwise.',
    resolve: (usage) => usage.resolution?.action ?? null,
  }),
  resolvedBy: t.field({
    type: 'Address',
    nullable: true,
    description: 'The operator who resolved it.',
    resolve: (usage) => usage.resolution?.operator ?? null,
  }),
  resolutionReason: t.string({
    nullable: true,
    description: "The operator's reason.",
    resolve: (usage) => usage.resolution?.reason ?? null,
  }),
  resolvedAt: t.field({
    type: 'DateTime',
    nullable: true,
    resolve: (usage) => usage.resolution?.resolvedAt ?? null,
  }),
  chargedBeforeResolution: t.field({
    type: 'Credits',
    nullable: true,
    description:
      'What the call was charged (its hold) before the resolution; userPrice is what it is charged now.',
    resolve: (usage) => usage.resolution?.chargedBefore ?? null,
  }),
  walletAddress: t.field({
    type: 'Address',
    nullable: true,
    description:
      "The account's wallet, where calls of every account are listed (Operations.needsReview); null elsewhere.",
    resolve: (usage) => usage.walletAddress ?? null,
  }),
}));

const RevenueGroupByRef = builder.enumType('RevenueGroupBy', { values: REVENUE_GROUP_BY });

const RevenueBucketRef = builder.objectRef<RevenueBucket>('RevenueBucket').implement({
  description:
    "Every account's settled calls (BILLED and NEEDS_REVIEW) made in one UTC day or with one model: exact sums.",
  fields: (t) => ({
    key: t.exposeString('key', { description: 'The UTC day (YYYY-MM-DD) or the model.' }),
    userPrice: t.field({
      type: 'Credits',
      description: 'What the calls were charged (NEEDS_REVIEW calls: their hold, until resolved).',
      resolve: (b) => b.userPrice,
    }),
    providerCost: t.field({
      type: 'Credits',
      description: 'Known provider costs (a call without one counts 0).',
      resolve: (b) => b.providerCost,
    }),
    margin: t.field({ type: 'Credits', description: 'userPrice - providerCost.', resolve: (b) => b.margin }),
    calls: t.exposeInt('calls'),
    needsReview: t.exposeInt('needsReview', { description: 'Calls of this group still in NEEDS_REVIEW.' }),
  }),
});

// biome-ignore lint/complexity/noBannedTypes: the `operations` namespace object carries no data.
const OperationsRef = builder.objectRef<{}>('Operations').implement({
  description: "The DAO's operations: the calls to review and the revenue. Operators only.",
  fields: (t) => ({
    needsReview: t.field({
      type: UsageConnection,
      description: 'NEEDS_REVIEW calls of every account, oldest first (a queue).',
      args: { first: t.arg.int(), after: t.arg.string() },
      resolve: async (_root, args, ctx) =>
        toConnection(await listNeedsReview(ctx.em, ctx.viewer, args), reviewCursor),
    }),
    revenue: t.field({
      type: [RevenueBucketRef],
      description: "Revenue of every account's calls made in [from, to), by UTC day or model, sorted by key.",
      args: {
        from: t.arg({ type: 'DateTime', required: true }),
        to: t.arg({ type: 'DateTime', required: true }),
        groupBy: t.arg({ type: RevenueGroupByRef, required: true }),
      },
      resolve: (_root, args, ctx) =>
        revenue(ctx.em, ctx.viewer, { from: args.from, to: args.to }, args.groupBy),
    }),
  }),
});

builder.queryField('operations', (t) =>
  t.field({
    type: OperationsRef,
    nullable: true,
    description:
      'Null unless the caller is an operator: a session of a wallet in OPERATOR_ADDRESSES (API keys never are).',
    resolve: (_root, _args, ctx) => (ctx.viewer?.operator ? {} : null),
  }),
);

const ResolveUsageInput = builder.inputType('ResolveUsageInput', {
  fields: (t) => ({
    action: t.field({ type: UsageResolutionRef, required: true }),
    price: t.field({
      type: 'Credits',
      description: 'BILL: the price to charge (>= 0). WAIVE: leave it out.',
    }),
    reason: t.string({ required: true, description: 'Recorded with the resolution: 1 to 500 characters.' }),
  }),
});

builder.mutationField('resolveUsage', (t) =>
  t.field({
    type: UsageRef,
    description:
      'Operators: closes a NEEDS_REVIEW call at a stated price (BILL) or at 0 (WAIVE); the difference from what it was charged is one USAGE entry carrying the operator and the reason. CONFLICT when it was already resolved; INSUFFICIENT_CREDITS when a price above what was charged does not fit what the account can spend (nothing is charged then).',
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: ResolveUsageInput, required: true }) },
    resolve: async (_root, { id, input }, ctx) => {
      const { usage, entry } = await resolveUsage(ctx.em, ctx.viewer, String(id), {
        action: input.action,
        price: input.price,
        reason: input.reason,
      });
      if (entry) ctx.services.pubsub.publish('balanceUpdated', entry.accountId, { ledgerEntryId: entry.id });
      return usage;
    },
  }),
);

const AdjustBalanceInput = builder.inputType('AdjustBalanceInput', {
  fields: (t) => ({
    wallet: t.field({ type: 'Address', required: true }),
    amount: t.field({
      type: 'Credits',
      required: true,
      description: 'Signed, not 0: credits in, debits out.',
    }),
    reason: t.string({ required: true, description: 'Recorded on the entry: 1 to 500 characters.' }),
  }),
});

builder.mutationField('adjustBalance', (t) =>
  t.field({
    type: LedgerEntryRef,
    description:
      "Operators: an ADJUSTMENT of the wallet's account carrying the operator and the reason. A debit takes at most what the account can spend (balance - held - debt), else INSUFFICIENT_CREDITS saying why.",
    args: { input: t.arg({ type: AdjustBalanceInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const entry = await adjustBalance(ctx.em, ctx.viewer, input);
      ctx.services.pubsub.publish('balanceUpdated', entry.accountId, { ledgerEntryId: entry.id });
      return entry;
    },
  }),
);
