import { getAddress, isAddress } from 'viem';
import type { Em } from '../../db/orm.ts';
import { sqlOf } from '../../db/sql.ts';
import { ExpectedError } from '../../errors.ts';
import { Account, type IAccount } from './accounts.entity.ts';
import { createAccounts } from './accounts.store.ts';

export class InvalidWalletAddressError extends ExpectedError {
  override name = 'InvalidWalletAddressError';
  constructor(message: string) {
    super('BAD_USER_INPUT', message);
  }
}

/** EIP-55 checksum of any-case input; accounts are keyed by this form. */
function normalizeWalletAddress(walletAddress: string): `0x${string}` {
  if (!isAddress(walletAddress, { strict: false })) {
    throw new InvalidWalletAddressError(`not an address: "${walletAddress}"`);
  }
  return getAddress(walletAddress);
}

/**
 * The account of a wallet, created on first sight. Race-safe: the insert is `on conflict do nothing`
 * on the unique wallet address, so two concurrent calls (two requests, two replicas, a sign-in racing
 * a deposit) end with one row and both return it.
 *
 * @example
 * const account = await findOrCreateAccount(tx, '0xabc...');
 */
export async function findOrCreateAccount(em: Em, walletAddress: string): Promise<IAccount> {
  const address = normalizeWalletAddress(walletAddress);
  const existing = await em.findOne(Account, { walletAddress: address });
  if (existing) return existing;
  await createAccounts(sqlOf(em).query, [address]);
  return em.findOneOrFail(Account, { walletAddress: address });
}

export async function getAccountByWallet(em: Em, walletAddress: string): Promise<IAccount | null> {
  return em.findOne(Account, { walletAddress: normalizeWalletAddress(walletAddress) });
}

export async function getAccount(em: Em, accountId: string): Promise<IAccount | null> {
  return em.findOne(Account, { id: accountId });
}
