import { viewerOf } from '../../context.ts';
import { builder } from '../../schema/builder.ts';
import { toConnection } from '../../schema/pagination.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import { Deposit, type IDeposit } from '../deposits/deposits.entity.ts';
import { DepositRef } from '../deposits/deposits.schema.ts';
import { type ILedgerEntry, LEDGER_REASONS, LedgerEntry } from './ledger.entity.ts';
import { ledgerCursor, listLedger } from './ledger.service.ts';

const LedgerReasonRef = builder.enumType('LedgerReason', { values: LEDGER_REASONS });

export const LedgerEntryRef = builder.objectRef<ILedgerEntry>('LedgerEntry').implement({
  description: 'One append-only ledger entry; corrections are new entries, never edits.',
  fields: (t) => ({
    id: t.exposeID('id'),
    amount: t.field({
      type: 'Credits',
      description: 'Signed: credits in, debits out.',
      resolve: (e) => e.amount,
    }),
    balanceAfter: t.field({ type: 'Credits', resolve: (entry) => entry.balanceAfter }),
    reason: t.field({ type: LedgerReasonRef, resolve: (entry) => entry.reason }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    deposit: t.loadable({
      type: DepositRef,
      nullable: true,
      description: 'The on-chain deposit a DEPOSIT entry credits.',
      load: (ids: string[], ctx) => ctx.em.find(Deposit, { id: { $in: ids } }),
      sort: (deposit: IDeposit) => deposit.id,
      resolve: (entry) => depositIdOf(entry),
    }),
    hash: t.exposeString('hash', {
      description: 'sha256 over the previous entry hash and this entry (see the audit): the hash chain link.',
    }),
  }),
});

function depositIdOf(entry: ILedgerEntry): string | null {
  const deposit = entry.deposit as { id: string } | string | null | undefined;
  if (!deposit) return null;
  return typeof deposit === 'string' ? deposit : deposit.id;
}

const LedgerEntryConnection = builder.connectionObject({
  type: LedgerEntryRef,
  name: 'LedgerEntryConnection',
});

builder.objectField(AccountRef, 'ledger', (t) =>
  t.field({
    type: LedgerEntryConnection,
    description: 'Ledger entries, newest first.',
    args: { first: t.arg.int(), after: t.arg.string() },
    resolve: async (account, args, ctx) =>
      toConnection(await listLedger(ctx.em, account.id, args), ledgerCursor),
  }),
);

const BalanceUpdateRef = builder.objectRef<{ entry: ILedgerEntry }>('BalanceUpdate').implement({
  fields: (t) => ({
    balance: t.field({
      type: 'Credits',
      description: 'The balance right after this entry.',
      resolve: ({ entry }) => entry.balanceAfter,
    }),
    entry: t.field({ type: LedgerEntryRef, resolve: ({ entry }) => entry }),
  }),
});

builder.subscriptionField('balanceUpdated', (t) =>
  t.field({
    type: BalanceUpdateRef,
    description: "Each change of the signed-in account's balance.",
    authScopes: { authenticated: true },
    subscribe: (_root, _args, ctx) =>
      ctx.services.pubsub.subscribe('balanceUpdated', viewerOf(ctx).accountId),
    resolve: async (payload: { ledgerEntryId: string }, _args, ctx) => {
      // A fresh fork per event: the subscription's own EntityManager would serve stale rows from its identity map.
      const entry = await ctx.services.orm.em
        .fork()
        .findOneOrFail(LedgerEntry, { id: payload.ledgerEntryId });
      return { entry };
    },
  }),
);
