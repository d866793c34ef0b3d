/**
 * Users for tests: a fresh wallet signed in to an in-process API, or an account of a store test's database,
 * with credits put on its balance.
 */
import { randomBytes } from 'node:crypto';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import type { Orm } from '../../src/db/orm.ts';
import { appendLedgerEntry } from '../../src/modules/ledger/ledger.service.ts';
import type { RunningApi } from '../../src/server.ts';
import { gqlData, signIn } from './graphql.ts';

export interface TestUser {
  token: string;
  accountId: string;
}

/**
 * A new wallet signed in to `api` (chain 31337) with `balance` micro-USD credited as an ADJUSTMENT, written
 * by the ledger's own statement (no chain needed); nothing is credited for a balance of 0.
 */
export async function fundedUser(api: RunningApi, balance: bigint): Promise<TestUser> {
  const token = await signIn(api.url, privateKeyToAccount(generatePrivateKey()), 31337);
  const { me } = await gqlData<{ me: { id: string } }>(api.url, '{ me { id } }', {}, token);
  if (balance > 0n) {
    await appendLedgerEntry(api.services.orm.em.fork(), {
      accountId: me.id,
      amount: balance,
      reason: 'ADJUSTMENT',
      referenceId: 'test-setup',
    });
  }
  return { token, accountId: me.id };
}

/**
 * A new account of a random wallet in `orm`'s database with `balance` micro-USD credited as an ADJUSTMENT
 * (nothing for 0): for store tests, which need no API. Returns its id.
 */
export async function fundedAccount(orm: Orm, balance: bigint): Promise<string> {
  const em = orm.em.fork();
  const [row] = await em.execute<{ id: string }[]>(
    'insert into accounts (wallet_address) values (?) returning id',
    [`0x${randomBytes(20).toString('hex')}`],
  );
  if (!row) throw new Error('no account');
  if (balance > 0n) {
    await appendLedgerEntry(em, {
      accountId: row.id,
      amount: balance,
      reason: 'ADJUSTMENT',
      referenceId: 'setup',
    });
  }
  return row.id;
}
