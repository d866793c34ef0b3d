import { viewerOf } from '../../context.ts';
import { builder } from '../../schema/builder.ts';
import type { IAccount } from './accounts.entity.ts';
import { getAccount } from './accounts.service.ts';

export const AccountRef = builder.objectRef<IAccount>('Account').implement({
  description: "A wallet's account. Only its owner (or an auditor) can read it.",
  fields: (t) => ({
    id: t.exposeID('id'),
    walletAddress: t.field({ type: 'Address', resolve: (account) => account.walletAddress }),
    balance: t.field({
      type: 'Credits',
      description: 'The balance in credits: always the sum of the ledger.',
      resolve: (account) => account.balance,
    }),
    debt: t.field({
      type: 'Credits',
      description:
        'Credits a reorg deeper than CONFIRMATIONS took back and the account could not pay (it had spent them): its next credits pay this first. Usually 0.',
      resolve: (account) => account.debt,
    }),
  }),
});

builder.queryField('me', (t) =>
  t.field({
    type: AccountRef,
    nullable: true,
    description: 'The signed-in account; null when not authenticated.',
    resolve: async (_root, _args, ctx) => (ctx.viewer ? getAccount(ctx.em, viewerOf(ctx).accountId) : null),
  }),
);
