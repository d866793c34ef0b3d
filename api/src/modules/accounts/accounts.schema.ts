import { viewerOf } from '../../context.ts';
import { builder } from '../../schema/builder.ts';
import { getAccount } from './accounts.service.ts';
import type { AccountView } from './accounts.store.ts';
import { collectAccountReads } from './one-moment.ts';

// An entity (`IAccount`) or a row read with the caller's credential (`me`): both are an AccountView.
export const AccountRef = builder.objectRef<AccountView>('Account').implement({
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
    // The account as the credential's lookup read it a moment ago, in the same request: no statement of its
    // own. What else the selection reads of it comes later, so the response is checked (one-moment.ts).
    resolve: async (_root, _args, ctx, info) => {
      if (!ctx.viewer) return null;
      const { accountId } = viewerOf(ctx);
      if (ctx.viewerAccount?.id !== accountId) return getAccount(ctx.em, accountId);
      for (const node of info.fieldNodes) {
        if (node.selectionSet) {
          collectAccountReads(
            ctx.viewerAccountReads,
            String(info.path.key),
            node.selectionSet,
            info.fragments,
          );
        }
      }
      return ctx.viewerAccount;
    },
  }),
);
