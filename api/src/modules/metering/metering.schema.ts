import { type GraphQLContext, viewerOf } from '../../context.ts';
import { ExpectedError, forbidden } from '../../errors.ts';
import { builder } from '../../schema/builder.ts';
import { toConnection } from '../../schema/pagination.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import { ApiKey, type IApiKey } from '../apikeys/apikeys.entity.ts';
import { ApiKeyRef } from '../apikeys/apikeys.schema.ts';
import { parseChatRequest } from './chat-request.ts';
import { BILLING_STATUSES } from './metering.entity.ts';
import { CompletionFailedError } from './metering.errors.ts';
import type { UsageView } from './metering.service.ts';
import { listUsage, summarizeUsage, usageCursor } from './usage.service.ts';
import { USAGE_GROUP_BY, type UsageBucket } from './usage.store.ts';

const BillingStatusRef = builder.enumType('BillingStatus', {
  values: BILLING_STATUSES,
  description:
    'BILLED: charged provider cost x markup (or, once an operator resolved it, the price they stated: see `resolution`). NEEDS_REVIEW: the provider cost was unknown or above the hold; charged the hold (the most the call could cost) until an operator settles it.',
});

export const UsageRef = builder.objectRef<UsageView>('Usage').implement({
  description: 'One metered LLM call, as billed.',
  fields: (t) => ({
    id: t.exposeID('id'),
    requestId: t.exposeString('requestId', { description: 'Also the `x-request-id` of the REST answer.' }),
    model: t.exposeString('model'),
    promptTokens: t.exposeInt('promptTokens'),
    completionTokens: t.exposeInt('completionTokens'),
    providerCost: t.field({
      type: 'Credits',
      nullable: true,
      description: 'What the provider charged the platform; null when unknown (NEEDS_REVIEW).',
      resolve: (usage) => usage.providerCost,
    }),
    userPrice: t.field({
      type: 'Credits',
      description: 'What this account paid: provider cost x PRICE_MARKUP, rounded up to the micro-USD.',
      resolve: (usage) => usage.userPrice,
    }),
    billingStatus: t.field({ type: BillingStatusRef, resolve: (usage) => usage.billingStatus }),
    apiKey: t.loadable({
      type: ApiKeyRef,
      nullable: true,
      description: 'The API key the call was made with; null for a session.',
      load: (ids: string[], ctx) => ctx.em.find(ApiKey, { id: { $in: ids } }),
      sort: (key: IApiKey) => key.id,
      resolve: (usage) => usage.apiKeyId,
    }),
    latencyMs: t.exposeInt('latencyMs', { nullable: true, description: "The upstream's answer time." }),
    flags: t.exposeStringList('flags', {
      description:
        'Billing notes, e.g. USAGE_ESTIMATED (no usage believed: billed from bounds of the prompt and of the output), USAGE_INVALID (the upstream reported usage that cannot be true: negative, fractional, not a number, or beyond the output limit; billed as USAGE_ESTIMATED), USAGE_INCONSISTENT (reported usage that contradicts itself or the answer, e.g. total_tokens above prompt + completion, or 0 completion tokens for text that came back; billed for the larger figure), CLIENT_DISCONNECTED, UPSTREAM_CUT (the upstream broke off mid-answer; billed for what it generated), STREAM_INTERRUPTED (its API process stopped; billed as of its last progress record), UNPRICED.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

interface CompletionShape {
  id: string;
  model: string;
  content: string;
  finishReason: string | null;
  usage: UsageView;
}

const CompletionRef = builder.objectRef<CompletionShape>('Completion').implement({
  description: 'A metered chat completion and what it cost.',
  fields: (t) => ({
    id: t.exposeID('id', {
      description: "The upstream's completion id; the call's request id when the upstream sent none.",
    }),
    model: t.exposeString('model', {
      description: 'The model the upstream says answered; the requested one when it did not say.',
    }),
    content: t.exposeString('content'),
    finishReason: t.exposeString('finishReason', { nullable: true }),
    usage: t.field({ type: UsageRef, resolve: (completion) => completion.usage }),
  }),
});

const ChatMessageInput = builder.inputType('ChatMessageInput', {
  fields: (t) => ({
    role: t.string({ required: true }),
    content: t.string({ required: true }),
  }),
});

const CompletionInput = builder.inputType('CompletionInput', {
  fields: (t) => ({
    model: t.string({ required: true }),
    messages: t.field({ type: [ChatMessageInput], required: true }),
    maxTokens: t.int({ description: 'Output token limit; also bounds the hold. Default 4096.' }),
    temperature: t.float(),
  }),
});

builder.mutationField('createCompletion', (t) =>
  t.field({
    type: CompletionRef,
    authScopes: { authenticated: true },
    description:
      'Calls the model and bills the signed-in account: a hold first (INSUFFICIENT_CREDITS without calling the model when it does not fit; BAD_USER_INPUT for a model without a price), then provider cost x markup.',
    args: { input: t.arg({ type: CompletionInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const request = parseChatRequest({
        model: input.model,
        messages: input.messages,
        max_tokens: input.maxTokens ?? undefined,
        temperature: input.temperature ?? undefined,
      });
      try {
        const result = await ctx.services.metering.complete(viewerOf(ctx), request);
        if (!result.usage) {
          throw new ExpectedError(
            'UPSTREAM_ERROR',
            'The model generated nothing and did not finish; nothing was charged',
            { reason: 'EMPTY_COMPLETION', requestId: result.requestId },
          );
        }
        // The upstream's answer is not trusted to be complete: the call is billed, so it is answered.
        const { completion } = result;
        const choice = completion.choices[0];
        const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : null);
        return {
          id: text(completion.id) ?? result.requestId,
          model: text(completion.model) ?? request.model,
          content: text(choice?.message?.content) ?? '',
          finishReason: text(choice?.finish_reason),
          usage: result.usage,
        };
      } catch (error) {
        if (error instanceof CompletionFailedError) {
          // Not the caller's fault and not a bug here: say what happened, and that nothing was charged.
          throw new ExpectedError(error.code, `The model provider failed: ${error.message}`, {
            reason: error.extensions.reason,
            requestId: error.requestId,
          });
        }
        throw error;
      }
    },
  }),
);

/** An account's usage is its owner's (or an auditor's) to read. */
function assertCanRead(ctx: GraphQLContext, accountId: string): void {
  const viewer = viewerOf(ctx);
  if (viewer.accountId !== accountId && viewer.role !== 'auditor') throw forbidden();
}

const UsageFilterInput = builder.inputType('UsageFilter', {
  fields: (t) => ({
    from: t.field({ type: 'DateTime', description: 'Inclusive.' }),
    to: t.field({ type: 'DateTime', description: 'Exclusive.' }),
    model: t.string(),
    apiKeyId: t.id(),
  }),
});

export const UsageConnection = builder.connectionObject({ type: UsageRef, name: 'UsageConnection' });

builder.objectField(AccountRef, 'usage', (t) =>
  t.field({
    type: UsageConnection,
    description: 'Settled LLM calls, newest first.',
    args: { first: t.arg.int(), after: t.arg.string(), filter: t.arg({ type: UsageFilterInput }) },
    authScopes: { authenticated: true },
    resolve: async (account, args, ctx) => {
      assertCanRead(ctx, account.id);
      return toConnection(
        await listUsage(ctx.em, account.id, { first: args.first, after: args.after, filter: args.filter }),
        usageCursor,
      );
    },
  }),
);

const UsageGroupByRef = builder.enumType('UsageGroupBy', { values: USAGE_GROUP_BY });

const UsageBucketRef = builder.objectRef<UsageBucket>('UsageBucket').implement({
  description: 'Totals of the settled calls in one group.',
  fields: (t) => ({
    key: t.exposeString('key', {
      description:
        "The model; the UTC day (YYYY-MM-DD); or the API key id ('' for calls made with a session).",
    }),
    apiKey: t.loadable({
      type: ApiKeyRef,
      nullable: true,
      load: (ids: string[], ctx) => ctx.em.find(ApiKey, { id: { $in: ids } }),
      sort: (key: IApiKey) => key.id,
      resolve: (bucket) => bucket.apiKeyId,
    }),
    requests: t.exposeInt('requests'),
    promptTokens: t.field({ type: 'BigInt', resolve: (bucket) => bucket.promptTokens }),
    completionTokens: t.field({ type: 'BigInt', resolve: (bucket) => bucket.completionTokens }),
    tokens: t.field({ type: 'BigInt', resolve: (bucket) => bucket.promptTokens + bucket.completionTokens }),
    providerCost: t.field({
      type: 'Credits',
      description: 'Known provider costs (calls without one count 0).',
      resolve: (bucket) => bucket.providerCost,
    }),
    userPrice: t.field({ type: 'Credits', resolve: (bucket) => bucket.userPrice }),
    needsReview: t.exposeInt('needsReview', { description: 'Calls of this group in NEEDS_REVIEW.' }),
  }),
});

builder.objectField(AccountRef, 'usageSummary', (t) =>
  t.field({
    type: [UsageBucketRef],
    description: 'Usage totals over [from, to), by model, UTC day or API key.',
    args: {
      from: t.arg({ type: 'DateTime', required: true }),
      to: t.arg({ type: 'DateTime', required: true }),
      groupBy: t.arg({ type: UsageGroupByRef, required: true }),
    },
    authScopes: { authenticated: true },
    resolve: (account, args, ctx) => {
      assertCanRead(ctx, account.id);
      return summarizeUsage(ctx.em, account.id, { from: args.from, to: args.to }, args.groupBy);
    },
  }),
);
