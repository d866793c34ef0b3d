import { randomUUID } from 'node:crypto';
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';

/**
 * One account per wallet. `balance` and `held` are micro-USD; `balance` always equals the sum of the
 * account's ledger entries, and only the ledger's store (`ledger.store.ts`) writes it, with the row locked.
 */
export const Account = defineEntity({
  name: 'Account',
  tableName: 'accounts',
  properties: {
    id: p
      .uuid()
      .primary()
      .onCreate(() => randomUUID()),
    /** EIP-55 checksummed. */
    walletAddress: p.string().columnType('text').unique(),
    balance: p.bigint().default(0),
    /** Reserved by in-flight LLM calls; spendable = balance - held - debt. */
    held: p.bigint().default(0),
    /**
     * What a reorg deeper than CONFIRMATIONS took back from this account and could not (it had spent it):
     * the next credits pay it before they add to `balance`. Written by crediting only.
     */
    debt: p.bigint().default(0),
    /** Number of ledger entries, i.e. the seq of the newest one. */
    ledgerSeq: p.integer().default(0),
    /** Hash of the newest ledger entry; null before the first. */
    ledgerHead: p.string().columnType('text').nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
    /** BALANCE_LOW fires when the balance falls below this (micro-USD); null: no alert. See alerts module. */
    lowBalanceThreshold: p.bigint().nullable(),
    /** Whether the balance was below the threshold at its last change (written with the balance). */
    lowBalanceBelow: p.boolean().default(false),
    /** The ledger seq of the change that last crossed the threshold downwards. */
    lowBalanceFiredSeq: p.integer().nullable(),
  },
});

export type IAccount = InferEntity<typeof Account>;
