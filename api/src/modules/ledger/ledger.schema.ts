import { viewerOf } from '../../context.ts';
import { sqlFor } from '../../db/sql.ts';
import { builder } from '../../schema/builder.ts';
import { toConnection } from '../../schema/pagination.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import {
  assertCredentialLive,
  type CREDENTIAL_ENDED,
  whileCredentialLive,
} from '../auth/live-subscription.ts';
import { DepositRef } from '../deposits/deposits.schema.ts';
import { LEDGER_REASONS } from './ledger.entity.ts';
import { getLedgerEntry, ledgerCursor, listLedger } from './ledger.service.ts';
import { depositIdOf, type LedgerEntryView } from './ledger.store.ts';

const LedgerReasonRef = builder.enumType('LedgerReason', { values: LEDGER_REASONS });

export const LedgerEntryRef = builder.objectRef<LedgerEntryView>('LedgerEntry').implement({
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
    deposit: t.field({
      type: DepositRef,
      nullable: true,
      description:
        'The on-chain deposit a DEPOSIT entry credits, or that an ADJUSTMENT corrects after a reorg deeper than CONFIRMATIONS (its reversal, a payment of the debt it left, its re-credit).',
      // A page of the ledger reads each entry's deposit with it; an entry read alone gives its id to load.
      resolve: (entry) => (entry.deposit !== undefined ? entry.deposit : depositIdOf(entry)),
    }),
    hash: t.exposeString('hash', {
      description: 'sha256 over the previous entry hash and this entry (see the audit): the hash chain link.',
    }),
    operator: t.field({
      type: 'Address',
      nullable: true,
      description:
        'The operator who wrote this entry (an ADJUSTMENT through adjustBalance, or the USAGE entry of a call an operator resolved); null otherwise. Covered by the hash.',
      resolve: (entry) => entry.operator,
    }),
    reasonText: t.string({
      nullable: true,
      description: "The operator's reason, with `operator`. Covered by the hash.",
      resolve: (entry) => entry.reasonText,
    }),
  }),
});

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
      toConnection(await listLedger(sqlFor(ctx.services.orm), account.id, args), ledgerCursor),
  }),
);

const BalanceUpdateRef = builder.objectRef<{ entry: LedgerEntryView }>('BalanceUpdate').implement({
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
      whileCredentialLive(ctx, ctx.services.pubsub.subscribe('balanceUpdated', viewerOf(ctx).accountId)),
    resolve: async (payload: { ledgerEntryId: string } | typeof CREDENTIAL_ENDED, _args, ctx) => {
      assertCredentialLive(payload);
      // Read through a fresh fork, not the subscription's long-lived EntityManager.
      const entry = await getLedgerEntry(ctx.services.orm.em.fork(), payload.ledgerEntryId);
      if (!entry) throw new Error(`ledger entry ${payload.ledgerEntryId} not found`);
      return { entry };
    },
  }),
);
