import { createConfig } from 'ponder';
import { usdcAbi } from './abis/usdc.ts';
import { CHAIN_NAME } from './src/chain-name.ts';
import { env } from './src/env.ts';

export default createConfig({
  database: env.databaseUrl
    ? { kind: 'postgres', connectionString: env.databaseUrl, poolConfig: { max: env.databasePoolMax } }
    : { kind: 'pglite', directory: env.pgliteDir },
  chains: {
    [CHAIN_NAME]: { id: env.chainId, rpc: env.rpcUrl, pollingInterval: env.pollingIntervalMs },
  },
  contracts: {
    USDC: {
      chain: CHAIN_NAME,
      abi: usdcAbi,
      address: env.usdcAddress,
      startBlock: env.startBlock,
      // A topic filter: the RPC returns only transfers to the treasury, not every USDC transfer.
      filter: { event: 'Transfer', args: { to: env.treasuryAddress } },
    },
  },
});
