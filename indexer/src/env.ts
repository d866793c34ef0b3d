/**
 * The indexer's configuration: the only module that reads `process.env`. Every problem is listed at
 * once, so a misconfigured start fails with the whole list instead of one variable at a time.
 *
 * PONDER_RPC_URL             JSON-RPC endpoint of the chain to index. Default: the devnet, http://127.0.0.1:8545
 * PONDER_CHAIN_ID            its chain id. Default: 31337 (anvil)
 * PONDER_USDC_ADDRESS        the USDC (or devnet TestUSDC) contract. Required.
 * PONDER_TREASURY_ADDRESS    the DAO wallet: only Transfers TO it are fetched and stored. Required.
 * PONDER_START_BLOCK         first block to index (the token's deployment block is enough). Default: 0
 * PONDER_POLLING_INTERVAL_MS how often Ponder polls for new blocks; 100 is its floor. Default: 100 on
 *                            the devnet (31337), 1000 elsewhere
 * PONDER_DATABASE_URL        PostgreSQL for Ponder. Unset: embedded PGlite in PONDER_PGLITE_DIR.
 *                            (Ponder's own DATABASE_URL is ignored on purpose: in `npm start` that one
 *                            belongs to the API.) The schema is `ponder start --schema <name>`.
 * PONDER_DATABASE_POOL_MAX   PostgreSQL connections for this instance. Default: 12
 * PONDER_PGLITE_DIR          PGlite data directory. Default: .ponder/pglite (relative to indexer/)
 */
import { getAddress } from 'viem';
import { z } from 'zod';

const address = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte hex address')
  .transform((value) => getAddress(value.toLowerCase()));

const integer = (min: number) => z.coerce.number().int().min(min);

const envSchema = z.object({
  PONDER_RPC_URL: z.url().default('http://127.0.0.1:8545'),
  PONDER_CHAIN_ID: integer(1).default(31337),
  PONDER_USDC_ADDRESS: address,
  PONDER_TREASURY_ADDRESS: address,
  PONDER_START_BLOCK: integer(0).default(0),
  PONDER_POLLING_INTERVAL_MS: integer(100).optional(),
  PONDER_DATABASE_URL: z.string().min(1).optional(),
  PONDER_DATABASE_POOL_MAX: integer(5).default(12),
  PONDER_PGLITE_DIR: z.string().min(1).default('.ponder/pglite'),
});

export type IndexerEnv = {
  rpcUrl: string;
  chainId: number;
  usdcAddress: `0x${string}`;
  treasuryAddress: `0x${string}`;
  startBlock: number;
  pollingIntervalMs: number;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  pgliteDir: string;
};

class IndexerConfigError extends Error {
  override name = 'IndexerConfigError';
}

function parseIndexerEnv(source: Record<string, string | undefined>): IndexerEnv {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new IndexerConfigError(`invalid indexer environment:\n${problems.join('\n')}`);
  }
  const env = parsed.data;
  return {
    rpcUrl: env.PONDER_RPC_URL,
    chainId: env.PONDER_CHAIN_ID,
    usdcAddress: env.PONDER_USDC_ADDRESS,
    treasuryAddress: env.PONDER_TREASURY_ADDRESS,
    startBlock: env.PONDER_START_BLOCK,
    pollingIntervalMs: env.PONDER_POLLING_INTERVAL_MS ?? (env.PONDER_CHAIN_ID === 31337 ? 100 : 1_000),
    databaseUrl: env.PONDER_DATABASE_URL,
    databasePoolMax: env.PONDER_DATABASE_POOL_MAX,
    pgliteDir: env.PONDER_PGLITE_DIR,
  };
}

export const env: IndexerEnv = parseIndexerEnv(process.env);
