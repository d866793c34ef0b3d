/** Users for tests of an in-process API: a fresh wallet signed in, with credits put on its balance. */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
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
