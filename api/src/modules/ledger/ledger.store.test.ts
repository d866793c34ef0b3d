import { type LedgerHead, verifyLedgerChain } from '@chainmeter/schema';
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { checkLedgerInvariants } from '../../../test/support/ledger-invariants.ts';
import { listAllLedgerEntries } from '../../../test/support/records.ts';
import { sqlOf } from '../../db/sql.ts';
import { Account } from '../accounts/accounts.entity.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import { chainLedgerBatch, writeLedgerBatch } from './ledger.store.ts';

const { orm } = await testOrmForFile();

const EMPTY: LedgerHead = { seq: 0, hash: null, balance: 0n };

describe('chainLedgerBatch and writeLedgerBatch', () => {
  it('chain each account from its own head, in order, and write entries and heads in one statement', async () => {
    const alice = (await findOrCreateAccount(orm.em.fork(), privateKeyToAddress(generatePrivateKey()))).id;
    const bob = (await findOrCreateAccount(orm.em.fork(), privateKeyToAddress(generatePrivateKey()))).id;
    const createdAt = new Date();
    const batch = chainLedgerBatch(
      () => EMPTY,
      [
        { accountId: alice, amount: 500n, reason: 'ADJUSTMENT', referenceId: 'a1' },
        { accountId: bob, amount: 70n, reason: 'ADJUSTMENT', referenceId: 'b1' },
        { accountId: alice, amount: -20n, reason: 'USAGE', referenceId: 'a2' },
      ],
      createdAt,
    );
    expect(batch.entries.map((e) => [e.seq, e.balanceAfter])).toEqual([
      [1, 500n],
      [1, 70n],
      [2, 480n],
    ]);
    expect(batch.entries[2]?.prevHash).toBe(batch.entries[0]?.hash);
    expect(batch.heads.get(alice)).toEqual({ seq: 2, hash: batch.entries[2]?.hash, balance: 480n });

    const em = orm.em.fork();
    await em.transactional(async (tx) => writeLedgerBatch(sqlOf(tx).query, batch));
    const stored = await orm.em.fork().findOneOrFail(Account, alice);
    expect([stored.balance, stored.ledgerSeq, stored.ledgerHead]).toEqual([480n, 2, batch.entries[2]?.hash]);
    const entries = await listAllLedgerEntries(orm.em.fork(), alice);
    expect(entries.map((e) => e.referenceId)).toEqual(['a1', 'a2']);
    expect(verifyLedgerChain(entries.map((e) => ({ ...e, accountId: alice })))).toBeNull();
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('writes nothing for an empty batch', async () => {
    await writeLedgerBatch(
      sqlOf(orm.em.fork()).query,
      chainLedgerBatch(() => EMPTY, [], new Date()),
    );
  });
});
