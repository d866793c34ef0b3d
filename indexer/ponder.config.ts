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
  blocks: {
    // Writes `indexed_block` (ponder.schema.ts) at every block. From the head at start only: before it,
    // the backfill's rows are not Ponder's to revert, and fetching every block since the token's
    // deployment would cost one RPC call per block.
    IndexedBlock: { chain: CHAIN_NAME, interval: 1, startBlock: 'latest' },
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
