/** What the x402 tests read about paid calls: a wallet's ledger, the relayer's transactions, an error's code. */
import { devAccounts } from '@chainmeter/testkit/accounts';
import type pg from 'pg';
import { type Address, createPublicClient, getAddress, http } from 'viem';

/** The ledger entries of `wallet`'s account, oldest first (reason and micro-USD amount). */
export async function walletLedger(db: pg.Client, wallet: Address) {
  const { rows } = await db.query(
    `select l.reason, l.amount::text as amount from ledger_entries l join accounts a on a.id = l.account_id
     where a.wallet_address = $1 order by l.seq`,
    [getAddress(wallet)],
  );
  return rows as { reason: string; amount: string }[];
}

/** The relayer's transactions so far, mined or pending: what it spent gas on. */
export function relayerNonce(rpcUrl: string): Promise<number> {
  return createPublicClient({ transport: http(rpcUrl) }).getTransactionCount({
    address: devAccounts.relayer.address,
    blockTag: 'pending',
  });
}

/** The `error.code` of an API error answer, if it has one. */
export async function errorCode(response: Response): Promise<string | undefined> {
  const text = await response.text();
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}
