import { MICRO_USD_PER_USD, USDC_DECIMALS } from '@chainmeter/schema';
import { viewerOf } from '../../context.ts';
import { builder } from '../../schema/builder.ts';
import { toConnection } from '../../schema/pagination.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import {
  assertCredentialLive,
  type CREDENTIAL_ENDED,
  whileCredentialLive,
} from '../auth/live-subscription.ts';
import { DEPOSIT_STATUSES, Deposit } from './deposits.entity.ts';
import { depositCursor, getDepositsByIds, listDeposits } from './deposits.service.ts';
import type { DepositView } from './deposits.store.ts';

const DepositStatusRef = builder.enumType('DepositStatus', {
  values: DEPOSIT_STATUSES,
  description:
    'PENDING until CONFIRMATIONS blocks are on top, then CREDITED; REORGED if the chain dropped it.',
});

/**
 * A field of this type may resolve to the deposit itself or to its id: ids are loaded together, one
 * statement per request (the ledger's entries read outside a page, such as a subscription's, load theirs).
 */
export const DepositRef = builder
  .loadableObjectRef<DepositView, string>('Deposit', {
    load: (ids, ctx) => getDepositsByIds(ctx.em, ids),
    sort: (deposit) => deposit.id,
  })
  .implement({
    description: 'A USDC transfer to the treasury, as indexed from the chain.',
    fields: (t) => ({
      id: t.exposeID('id'),
      chainId: t.exposeInt('chainId'),
      txHash: t.field({ type: 'Hash', resolve: (deposit) => deposit.txHash }),
      logIndex: t.exposeInt('logIndex'),
      blockNumber: t.field({ type: 'BigInt', resolve: (deposit) => deposit.blockNumber }),
      from: t.field({ type: 'Address', resolve: (deposit) => deposit.fromAddress }),
      amountToken: t.field({
        type: 'BigInt',
        description: 'Token base units.',
        resolve: (d) => d.amountToken,
      }),
      credits: t.field({ type: 'Credits', resolve: (deposit) => deposit.amount }),
      status: t.field({ type: DepositStatusRef, resolve: (deposit) => deposit.status }),
      confirmations: t.exposeInt('confirmations', {
        description: 'Blocks on top of the transfer when last seen (live while PENDING).',
      }),
      creditedAt: t.expose('creditedAt', { type: 'DateTime', nullable: true }),
    }),
  });

const DepositConnection = builder.connectionObject({ type: DepositRef, name: 'DepositConnection' });

builder.objectField(AccountRef, 'deposits', (t) =>
  t.field({
    type: DepositConnection,
    description: 'Deposits, newest first.',
    args: { first: t.arg.int(), after: t.arg.string() },
    resolve: async (account, args, ctx) =>
      toConnection(await listDeposits(ctx.em, account.id, args), depositCursor),
  }),
);

builder.subscriptionField('depositUpdated', (t) =>
  t.field({
    type: DepositRef,
    description:
      "The signed-in account's deposits: PENDING with each new confirmation, then CREDITED or REORGED.",
    authScopes: { authenticated: true },
    subscribe: (_root, _args, ctx) =>
      whileCredentialLive(ctx, ctx.services.pubsub.subscribe('depositUpdated', viewerOf(ctx).accountId)),
    // A fresh fork per event: the subscription's own EntityManager would serve stale rows from its identity map.
    resolve: (payload: { depositId: string } | typeof CREDENTIAL_ENDED, _args, ctx) => {
      assertCredentialLive(payload);
      return ctx.services.orm.em.fork().findOneOrFail(Deposit, { id: payload.depositId });
    },
  }),
);

interface PaymentConfigShape {
  chainId: number;
  tokenAddress: string;
  treasuryAddress: string;
  confirmations: number;
}

export const PaymentConfigRef = builder.objectRef<PaymentConfigShape>('PaymentConfig').implement({
  description: 'Everything a client needs to pay: send tokenAddress tokens to treasuryAddress on chainId.',
  fields: (t) => ({
    chainId: t.exposeInt('chainId'),
    tokenAddress: t.field({ type: 'Address', resolve: (config) => config.tokenAddress }),
    tokenDecimals: t.int({ resolve: () => USDC_DECIMALS }),
    treasuryAddress: t.field({ type: 'Address', resolve: (config) => config.treasuryAddress }),
    confirmations: t.exposeInt('confirmations', {
      description: 'Blocks on top before a deposit is credited.',
    }),
    creditsPerToken: t.field({
      type: 'Credits',
      description: 'Credits bought by one whole token (1 USDC = 1,000 credits).',
      resolve: () => MICRO_USD_PER_USD,
    }),
  }),
});

builder.queryField('paymentConfig', (t) =>
  t.field({
    type: PaymentConfigRef,
    resolve: (_root, _args, ctx) => ({
      chainId: ctx.services.config.chainId,
      tokenAddress: ctx.services.config.usdcAddress,
      treasuryAddress: ctx.services.config.treasuryAddress,
      confirmations: ctx.services.config.confirmations,
    }),
  }),
);
