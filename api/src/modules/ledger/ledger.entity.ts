import { randomUUID } from 'node:crypto';
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import { Account } from '../accounts/accounts.entity.ts';
import { Deposit } from '../deposits/deposits.entity.ts';

export const LEDGER_REASONS = ['DEPOSIT', 'USAGE', 'ADJUSTMENT'] as const;

/**
 * Append-only: rows are inserted by `ledger.store.ts` (the one writer) and never updated or
 * deleted (a correction is a new ADJUSTMENT entry). `hash` chains the entries of one account, see
 * `ledgerEntryHash` in @chainmeter/schema.
 */
export const LedgerEntry = defineEntity({
  name: 'LedgerEntry',
  tableName: 'ledger_entries',
  properties: {
    id: p
      .uuid()
      .primary()
      .onCreate(() => randomUUID()),
    account: () => p.manyToOne(Account),
    /** 1-based, per account. */
    seq: p.integer(),
    /** Signed micro-USD. */
    amount: p.bigint(),
    balanceAfter: p.bigint(),
    reason: p.enum(LEDGER_REASONS).columnType('text'),
    /** The deposit id for DEPOSIT, the usage id for USAGE. */
    referenceId: p.string().columnType('text'),
    deposit: () => p.manyToOne(Deposit).nullable(),
    createdAt: p.datetime(),
    prevHash: p.string().columnType('text').nullable(),
    hash: p.string().columnType('text'),
    /** The operator's wallet on an entry an operator wrote (with `reasonText`); null otherwise. */
    operator: p.string().columnType('text').nullable(),
    reasonText: p.string().columnType('text').nullable(),
  },
});

export type ILedgerEntry = InferEntity<typeof LedgerEntry>;
