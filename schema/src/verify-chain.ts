import { type Address, createPublicClient, http, isAddress } from 'viem';
import { USDC_DECIMALS } from './money.ts';
import { usdcAbi } from './usdc-abi.ts';

export interface ChainSetup {
  rpcUrl: string;
  chainId: number;
  usdcAddress: string;
  treasuryAddress: string;
}

/**
 * Checks a chain configuration against the chain itself before anything is served: the RPC answers
 * with the configured chain id, the token is a contract with 6 decimals, the addresses are well formed.
 * Returns every problem found (empty when the setup is sound), each saying what is wrong.
 */
export async function verifyChainSetup(setup: ChainSetup, timeoutMs = 10_000): Promise<string[]> {
  const problems: string[] = [];
  if (!isAddress(setup.usdcAddress, { strict: false })) {
    problems.push(`USDC_ADDRESS "${setup.usdcAddress}" is not an address`);
  }
  if (!isAddress(setup.treasuryAddress, { strict: false })) {
    problems.push(`TREASURY_ADDRESS "${setup.treasuryAddress}" is not an address`);
  }
  const client = createPublicClient({ transport: http(setup.rpcUrl, { timeout: timeoutMs, retryCount: 1 }) });
  let chainId: number;
  try {
    chainId = await client.getChainId();
  } catch (error) {
    problems.push(`RPC_URL ${setup.rpcUrl} does not answer: ${(error as Error).message.split('\n')[0]}`);
    return problems;
  }
  if (chainId !== setup.chainId) {
    problems.push(`RPC_URL ${setup.rpcUrl} serves chain ${chainId}, but CHAIN_ID is ${setup.chainId}`);
    return problems;
  }
  if (problems.length > 0) return problems;
  const token = setup.usdcAddress as Address;
  const code = await client.getCode({ address: token }).catch(() => undefined);
  if (!code || code === '0x') {
    problems.push(`USDC_ADDRESS ${token} has no contract on chain ${chainId}`);
    return problems;
  }
  try {
    const decimals = await client.readContract({ address: token, abi: usdcAbi, functionName: 'decimals' });
    if (decimals !== USDC_DECIMALS) {
      problems.push(
        `USDC_ADDRESS ${token} has ${decimals} decimals; ChainMeter needs a ${USDC_DECIMALS}-decimal token`,
      );
    }
  } catch {
    problems.push(`USDC_ADDRESS ${token} does not answer decimals(): not an ERC-20 token`);
  }
  return problems;
}
