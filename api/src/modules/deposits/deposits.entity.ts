import { randomUUID } from 'node:crypto';
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import { Account } from '../accounts/accounts.entity.ts';

export const DEPOSIT_STATUSES = ['PENDING', 'CREDITED', 'REORGED'] as const;
export type DepositStatus = (typeof DEPOSIT_STATUSES)[number];

/**
 * One USDC transfer to the treasury, keyed by its log (chainId, txHash, logIndex). Written only by the
 * crediting service from indexed chain data. CREDITED is final: nothing moves a deposit out of it.
 */
export const Deposit = defineEntity({
  name: 'Deposit',
  tableName: 'deposits',
  uniques: [{ properties: ['chainId', 'txHash', 'logIndex'], name: 'deposits_log_unique' }],
  properties: {
    id: p
      .uuid()
      .primary()
      .onCreate(() => randomUUID()),
    chainId: p.integer(),
    txHash: p.string().columnType('text'),
    logIndex: p.integer(),
    blockNumber: p.bigint(),
    blockHash: p.string().columnType('text'),
    /** EIP-55 checksummed sender, the wallet whose account is credited. */
    fromAddress: p.string().columnType('text'),
    account: () => p.manyToOne(Account),
    /** Token base units as transferred. */
    amountToken: p.bigint(),
    /** micro-USD credited. */
    amount: p.bigint(),
    status: p.enum(DEPOSIT_STATUSES).columnType('text'),
    /** head - blockNumber when last seen by the worker. */
    confirmations: p.integer(),
    creditedAt: p.datetime().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export type IDeposit = InferEntity<typeof Deposit>;

/** Where the crediting worker has got to on one chain: the last credited (blockNumber, logIndex). */
export const CreditingCursor = defineEntity({
  name: 'CreditingCursor',
  tableName: 'crediting_cursors',
  properties: {
    chainId: p.integer().primary().autoincrement(false),
    blockNumber: p.bigint(),
    logIndex: p.integer(),
    updatedAt: p.datetime(),
  },
});

export type ICreditingCursor = InferEntity<typeof CreditingCursor>;
