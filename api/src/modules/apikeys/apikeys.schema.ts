import { viewerOf } from '../../context.ts';
import { forbidden } from '../../errors.ts';
import { builder } from '../../schema/builder.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import { API_KEY_SCOPES, type IApiKey, LIMIT_RESETS } from './apikeys.entity.ts';
import {
  assertCanManageKeys,
  type CreatedApiKey,
  createApiKey,
  keyScopesFor,
  listApiKeys,
  revokeApiKey,
  spentThisPeriod,
} from './apikeys.service.ts';

const LimitResetRef = builder.enumType('LimitReset', {
  values: LIMIT_RESETS,
  description:
    "When a key's spend limit starts afresh, at UTC boundaries: DAILY at 00:00 UTC, WEEKLY on Monday at 00:00 UTC, MONTHLY on the 1st at 00:00 UTC.",
});

const ApiKeyScopeRef = builder.enumType('ApiKeyScope', {
  values: API_KEY_SCOPES,
  description:
    "ACCOUNT: the key acts for its own account only. AUDITOR: it may also read every account's records (read-only); only a wallet with the auditor role may create one, and it loses that power when the wallet loses the role.",
});

export const ApiKeyRef = builder.objectRef<IApiKey>('ApiKey').implement({
  description:
    'An API key for integrators (`Authorization: Bearer cm_...`). Its secret is shown once, at creation, and never again.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    prefix: t.exposeString('prefix', {
      description: 'The first characters of the secret, to recognize the key.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.expose('lastUsedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'Last authenticated request, to the minute.',
    }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
    scope: t.field({ type: ApiKeyScopeRef, resolve: (apiKey) => apiKey.scope }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    spendLimit: t.field({
      type: 'Credits',
      nullable: true,
      description: 'The most this key may ever spend; null for no limit beyond the balance.',
      resolve: (apiKey) => apiKey.spendLimit ?? null,
    }),
    spent: t.field({
      type: 'Credits',
      description: 'What calls made with this key have cost so far.',
      resolve: (apiKey) => apiKey.spent,
    }),
    limitReset: t.field({
      type: LimitResetRef,
      nullable: true,
      description: 'When the spend limit starts afresh; null: the limit is for the life of the key.',
      resolve: (apiKey) => apiKey.limitReset ?? null,
    }),
    allowedModels: t.stringList({
      nullable: true,
      description: 'The only models this key may call; null for any.',
      resolve: (apiKey) => apiKey.allowedModels ?? null,
    }),
    spentThisPeriod: t.field({
      type: 'Credits',
      description:
        'What calls made with this key have cost in the current period (see limitReset); without a reset, the same as spent.',
      resolve: (apiKey) => spentThisPeriod(apiKey),
    }),
  }),
});

const CreatedApiKeyRef = builder.objectRef<CreatedApiKey>('CreatedApiKey').implement({
  description: 'A new key and its secret: store the secret now, it cannot be shown again.',
  fields: (t) => ({
    apiKey: t.field({ type: ApiKeyRef, resolve: (created) => created.apiKey }),
    secret: t.exposeString('secret'),
  }),
});

const CreateApiKeyInput = builder.inputType('CreateApiKeyInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: '1 to 100 characters.' }),
    spendLimit: t.field({
      type: 'Credits',
      description: 'Optional: the most the key may spend (ever, or per period with limitReset).',
    }),
    limitReset: t.field({
      type: LimitResetRef,
      description: 'Optional, with spendLimit: the limit applies per UTC day, week (from Monday) or month.',
    }),
    allowedModels: t.stringList({
      description:
        'Optional: the only models the key may call (1 to 100); any other is refused (FORBIDDEN, reason model_not_allowed) before anything is held or sent upstream.',
    }),
    expiresAt: t.field({ type: 'DateTime', description: 'Optional: the key stops working at this time.' }),
    scope: t.field({
      type: ApiKeyScopeRef,
      description:
        'Default ACCOUNT. AUDITOR (read every account) only from the session of a wallet with the auditor role.',
    }),
  }),
});

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreatedApiKeyRef,
    description: 'Creates an API key; needs a signed-in session. The secret is returned once, never again.',
    authScopes: { authenticated: true },
    args: { input: t.arg({ type: CreateApiKeyInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      await ctx.services.rateLimits.consumeIp(ctx.clientIp, 'apiKeys');
      const viewer = viewerOf(ctx);
      assertCanManageKeys(viewer);
      if (input.scope === 'AUDITOR' && !keyScopesFor(viewer, viewer.accountId).includes('AUDITOR')) {
        throw forbidden('Only a wallet with the auditor role may create an AUDITOR key');
      }
      return createApiKey(ctx.em, viewer.accountId, {
        name: input.name,
        scope: input.scope ?? 'ACCOUNT',
        spendLimit: input.spendLimit ?? null,
        limitReset: input.limitReset ?? null,
        allowedModels: input.allowedModels ?? null,
        expiresAt: input.expiresAt ?? null,
      });
    },
  }),
  revokeApiKey: t.field({
    type: ApiKeyRef,
    description: 'Revokes one of your keys; every replica refuses it from the next request. Needs a session.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      await ctx.services.rateLimits.consumeIp(ctx.clientIp, 'apiKeys');
      const viewer = viewerOf(ctx);
      assertCanManageKeys(viewer);
      return revokeApiKey(ctx.em, viewer.accountId, String(id));
    },
  }),
}));

builder.objectField(AccountRef, 'apiKeys', (t) =>
  t.field({
    type: [ApiKeyRef],
    description:
      "The account's API keys, revoked and expired ones included, newest first. Never their secrets.",
    authScopes: { authenticated: true },
    resolve: (account, _args, ctx) => {
      const viewer = viewerOf(ctx);
      if (viewer.accountId !== account.id && viewer.role !== 'auditor') throw forbidden();
      return listApiKeys(ctx.em, account.id);
    },
  }),
);

builder.objectField(AccountRef, 'availableApiKeyScopes', (t) =>
  t.field({
    type: [ApiKeyScopeRef],
    description:
      "The scopes the caller may give a new key of this account (createApiKey's input.scope): ACCOUNT, and AUDITOR too for the session of a wallet with the auditor role. Empty with an API key or for another account: keys are made by their owner's session.",
    authScopes: { authenticated: true },
    resolve: (account, _args, ctx) => keyScopesFor(viewerOf(ctx), account.id),
  }),
);
