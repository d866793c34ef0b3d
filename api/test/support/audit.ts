/** The audit of a test platform, as the audit CLI runs it with `--database`: the chain read through its RPC. */
import { checkAudit, fetchTreasuryTransfers, readAllAuditRecords } from '@chainmeter/schema';
import { createPublicClient, http } from 'viem';
import type { Platform } from './platform.ts';

/** Runs the audit of `platform`'s chain against the records `query` reads (the API's database). */
export async function auditPlatform(
  platform: Pick<Platform, 'anvil' | 'chainId' | 'token' | 'treasury'>,
  query: (text: string, values: readonly unknown[]) => Promise<unknown[]>,
  confirmations: number,
) {
  const chain = createPublicClient({ transport: http(platform.anvil.rpcUrl) });
  const head = await chain.getBlockNumber();
  const records = await readAllAuditRecords((statement, values) => query(statement.text, values));
  const transfers = await fetchTreasuryTransfers(chain, {
    chainId: platform.chainId,
    token: platform.token,
    treasury: platform.treasury,
    fromBlock: 0n,
    toBlock: head,
  });
  return checkAudit({
    chainId: platform.chainId,
    tokenAddress: platform.token,
    treasuryAddress: platform.treasury,
    confirmations,
    fromBlock: 0n,
    head,
    transfers,
    ...records,
  });
}
