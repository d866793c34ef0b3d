import { verifyLedgerChain } from '@chainmeter/schema';
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { checkLedgerInvariants } from '../../../test/support/ledger-invariants.ts';
import { listAllLedgerEntries } from '../../../test/support/records.ts';
import { InvalidCursorError } from '../../db/cursor.ts';
import { sqlFor } from '../../db/sql.ts';
import { Account } from '../accounts/accounts.entity.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import {
  appendLedgerEntry,
  InsufficientBalanceError,
  LedgerEntryError,
  listLedger,
} from './ledger.service.ts';

const { orm } = await testOrmForFile();

async function newAccountId(): Promise<string> {
  return (await findOrCreateAccount(orm.em.fork(), privateKeyToAddress(generatePrivateKey()))).id;
}

describe('appendLedgerEntry', () => {
  it('appends entries with seq, balanceAfter and a verifiable hash chain', async () => {
    const accountId = await newAccountId();
    const amounts = [5_000_000n, -1_234n, -42n, 10n];
    for (const [i, amount] of amounts.entries()) {
      await appendLedgerEntry(orm.em.fork(), {
        accountId,
        amount,
        reason: amount > 0n ? 'ADJUSTMENT' : 'USAGE',
        referenceId: `ref-${i}`,
      });
    }
    const em = orm.em.fork();
    const account = await em.findOneOrFail(Account, accountId);
    expect(account.balance).toBe(5_000_000n - 1_234n - 42n + 10n);
    expect(account.ledgerSeq).toBe(4);
    const entries = await listAllLedgerEntries(em, accountId);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(entries.map((e) => e.balanceAfter)).toEqual([5_000_000n, 4_998_766n, 4_998_724n, 4_998_734n]);
    expect(entries[0]?.prevHash).toBeNull();
    expect(entries[1]?.prevHash).toBe(entries[0]?.hash);
    expect(account.ledgerHead).toBe(entries[3]?.hash);
    // Read back from the database (timestamps included) the chain still verifies.
    const chain = entries.map((e) => ({ ...e, accountId }));
    expect(verifyLedgerChain(chain)).toBeNull();
    expect((await checkLedgerInvariants(em)).problems).toEqual([]);
  });

  it('refuses a debit below zero with a typed error and changes nothing', async () => {
    const accountId = await newAccountId();
    await appendLedgerEntry(orm.em.fork(), {
      accountId,
      amount: 100n,
      reason: 'ADJUSTMENT',
      referenceId: 'seed',
    });
    const error = await appendLedgerEntry(orm.em.fork(), {
      accountId,
      amount: -101n,
      reason: 'USAGE',
      referenceId: 'too-much',
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InsufficientBalanceError);
    expect((error as InsufficientBalanceError).code).toBe('INSUFFICIENT_CREDITS');
    const account = await orm.em.fork().findOneOrFail(Account, accountId);
    expect(account.balance).toBe(100n);
    expect(account.ledgerSeq).toBe(1);
  });

  it('has the database refuse a negative balance even when code bypasses the check', async () => {
    const accountId = await newAccountId();
    await expect(
      orm.em.fork().execute('update accounts set balance = -1 where id = ?', [accountId]),
    ).rejects.toThrow(/accounts_balance_non_negative/);
  });

  it('requires a deposit id exactly for DEPOSIT entries', async () => {
    const accountId = await newAccountId();
    await expect(
      appendLedgerEntry(orm.em.fork(), { accountId, amount: 1n, reason: 'DEPOSIT', referenceId: 'x' }),
    ).rejects.toBeInstanceOf(LedgerEntryError);
  });

  it('serializes concurrent debits on one account: no lost update, no overdraft', async () => {
    const accountId = await newAccountId();
    await appendLedgerEntry(orm.em.fork(), {
      accountId,
      amount: 1_000n,
      reason: 'ADJUSTMENT',
      referenceId: 'seed',
    });
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        appendLedgerEntry(orm.em.fork(), { accountId, amount: -50n, reason: 'USAGE', referenceId: `u-${i}` }),
      ),
    );
    const fulfilled = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter(
      (r) => r.status === 'rejected' && r.reason instanceof InsufficientBalanceError,
    );
    expect(fulfilled).toBe(20);
    expect(refused.length).toBe(10);
    const account = await orm.em.fork().findOneOrFail(Account, accountId);
    expect(account.balance).toBe(0n);
    expect(account.ledgerSeq).toBe(21);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });
});

describe('listLedger', () => {
  it('pages newest first by keyset, stable while entries are appended', async () => {
    const accountId = await newAccountId();
    for (let i = 1; i <= 7; i++) {
      await appendLedgerEntry(orm.em.fork(), {
        accountId,
        amount: BigInt(i),
        reason: 'ADJUSTMENT',
        referenceId: `r${i}`,
      });
    }
    const page1 = await listLedger(sqlFor(orm), accountId, { first: 3 });
    expect(page1.entries.map((e) => e.seq)).toEqual([7, 6, 5]);
    expect(page1.hasNextPage).toBe(true);
    // A new entry between pages must not shift the next page.
    await appendLedgerEntry(orm.em.fork(), {
      accountId,
      amount: 8n,
      reason: 'ADJUSTMENT',
      referenceId: 'r8',
    });
    const page2 = await listLedger(sqlFor(orm), accountId, { first: 3, after: page1.endCursor });
    expect(page2.entries.map((e) => e.seq)).toEqual([4, 3, 2]);
    const page3 = await listLedger(sqlFor(orm), accountId, { first: 3, after: page2.endCursor });
    expect(page3.entries.map((e) => e.seq)).toEqual([1]);
    expect(page3.hasNextPage).toBe(false);
    const empty = await listLedger(sqlFor(orm), accountId, { first: 0 });
    expect(empty).toEqual({ entries: [], hasNextPage: true, endCursor: null });
    await expect(listLedger(sqlFor(orm), accountId, { after: 'garbage' })).rejects.toBeInstanceOf(
      InvalidCursorError,
    );
    await expect(listLedger(sqlFor(orm), accountId, { first: 1000 })).rejects.toBeInstanceOf(
      InvalidCursorError,
    );
  });
});
