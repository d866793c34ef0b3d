import { viewerOf } from '../../context.ts';
import { sqlOf } from '../../db/sql.ts';
import { builder } from '../../schema/builder.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import { TransferAuthorizationInputRef } from '../relayer/relayer.schema.ts';
import { cancelAutoTopUp, getAutoTopUp, setAutoTopUp } from './topup.service.ts';
import type { AutoTopUpView } from './topup.store.ts';

const AutoTopUpRef = builder.objectRef<AutoTopUpView>('AutoTopUp').implement({
  description:
    'Auto top-up: when the balance falls below the threshold, the next stored authorization is submitted through the relayer (one at a time; the next only once its deposit is credited).',
  fields: (t) => ({
    threshold: t.field({ type: 'Credits', resolve: (topUp) => topUp.threshold }),
    remaining: t.exposeInt('remaining', { description: 'Stored authorizations not used yet.' }),
    paused: t.exposeBoolean('paused', {
      description:
        'A submission failed (no funds, an authorization canceled on chain...): set it again to resume.',
    }),
    pausedReason: t.exposeString('pausedReason', {
      nullable: true,
      description: 'Why it is paused (the relayer refusal reason, e.g. INSUFFICIENT_FUNDS).',
    }),
    nonces: t.field({
      type: ['Hash'],
      description:
        "The stored authorizations' nonces, in the order they would be used: what the wallet may cancel on chain (cancelAuthorization).",
      resolve: (topUp) => topUp.nonces as `0x${string}`[],
    }),
  }),
});

const AutoTopUpInputRef = builder.inputType('AutoTopUpInput', {
  fields: (t) => ({
    threshold: t.field({ type: 'Credits', required: true }),
    authorizations: t.field({
      type: [TransferAuthorizationInputRef],
      required: true,
      description:
        'Signed by your wallet, to the treasury, each valid for at least an hour from now, in the order to use them (1 to 50). They replace those not used yet.',
    }),
  }),
});

builder.mutationFields((t) => ({
  setAutoTopUp: t.field({
    type: AutoTopUpRef,
    description:
      'Stores signed EIP-3009 authorizations (each checked) and the threshold below which the next one is submitted; unpauses it. AUTO_TOP_UP_SUBMITTED / AUTO_TOP_UP_FAILED webhooks follow.',
    authScopes: { authenticated: true },
    args: { input: t.arg({ type: AutoTopUpInputRef, required: true }) },
    resolve: (_root, { input }, ctx) =>
      setAutoTopUp(
        {
          sql: sqlOf(ctx.em),
          config: ctx.services.config,
          chain: ctx.services.chain,
          relayer: ctx.services.relayer,
          logger: ctx.log,
        },
        viewerOf(ctx),
        input,
      ),
  }),
  cancelAutoTopUp: t.field({
    type: 'Boolean',
    description:
      'Deletes the stored authorizations not yet submitted and the settings; true when there was an auto top-up. The wallet may also cancel them on chain (AutoTopUp.nonces, cancelAuthorization).',
    authScopes: { authenticated: true },
    resolve: (_root, _args, ctx) => cancelAutoTopUp(sqlOf(ctx.em), viewerOf(ctx)),
  }),
}));

builder.objectField(AccountRef, 'autoTopUp', (t) =>
  t.field({
    type: AutoTopUpRef,
    nullable: true,
    description: 'Auto top-up, or null when it is not set.',
    authScopes: { authenticated: true },
    resolve: (account, _args, ctx) => {
      const viewer = viewerOf(ctx);
      if (viewer.accountId !== account.id && viewer.role !== 'auditor') return null;
      return getAutoTopUp(sqlOf(ctx.em), account.id);
    },
  }),
);
