/**
 * Account creation, the one statement that inserts `accounts` rows: race-safe (`on conflict do nothing` on
 * the unique wallet address), so concurrent callers (two requests, two replicas, a sign-in racing a
 * deposit) end with one row per wallet. The ledger columns are written by `ledger.store.ts`, `held` by
 * the metering stores, `debt` by crediting.
 */
import type { Query, Statement } from '../../db/sql.ts';

const CREATE_ACCOUNTS: Statement = {
  name: 'cm_create_accounts',
  text: `insert into accounts (wallet_address) select w from unnest($1::text[]) as t(w)
   on conflict (wallet_address) do nothing`,
};

/** Creates the accounts of these (checksummed) wallet addresses that do not exist yet. */
export async function createAccounts(query: Query, walletAddresses: readonly string[]): Promise<void> {
  await query(CREATE_ACCOUNTS, [[...new Set(walletAddresses)]]);
}
