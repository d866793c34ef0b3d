import { viewerOf } from '../../context.ts';
import { builder } from '../../schema/builder.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import { setLowBalanceAlert } from './alerts.service.ts';

builder.objectField(AccountRef, 'lowBalanceThreshold', (t) =>
  t.field({
    type: 'Credits',
    nullable: true,
    description:
      'BALANCE_LOW fires when the balance falls below this (once per crossing; again after it has risen back to it); null: no alert.',
    resolve: (account) => account.lowBalanceThreshold ?? null,
  }),
);

builder.mutationField('setLowBalanceAlert', (t) =>
  t.field({
    type: AccountRef,
    description:
      'Sets the low-balance alert of your account (null turns it off). BALANCE_LOW fires once each time the balance falls below the threshold, as a webhook; setting it above the balance fires it at once.',
    authScopes: { authenticated: true },
    args: { threshold: t.arg({ type: 'Credits', required: false }) },
    resolve: (_root, { threshold }, ctx) => setLowBalanceAlert(ctx.em, viewerOf(ctx), threshold ?? null),
  }),
);
