import type { Address, PublicClient } from 'viem';
import { tokenUnitsToMicroUsd } from '../money.ts';
import { usdcAbi } from '../usdc-abi.ts';

/**
 * The treasury's token balance at `blockNumber`, read from the chain (`balanceOf`), in micro-USD: the
 * solvency figure the audit prints beside what the ledger owes.
 */
export async function readTreasuryBalance(
  client: PublicClient,
  params: { token: Address; treasury: Address; blockNumber: bigint; tokenDecimals?: number },
): Promise<bigint> {
  const units = await client.readContract({
    address: params.token,
    abi: usdcAbi,
    functionName: 'balanceOf',
    args: [params.treasury],
    blockNumber: params.blockNumber,
  });
  return tokenUnitsToMicroUsd(units, params.tokenDecimals);
}
