import type { db as ponderDb, publicClients } from 'ponder:api';
import { sql } from 'ponder';
import type { Hash } from 'viem';
import type { CHAIN_NAME } from '../chain-name.ts';

/**
 * The newest block the indexer has fully processed, from Ponder's own `_ponder_checkpoint` table
 * (what its `/status` route reads). Ponder advances it once per block, empty blocks included, in the
 * same transaction that writes that block's rows: every treasury transfer at or below this height
 * is stored (or was reorged away).
 */
export type IndexedHead = { chainId: number; blockNumber: bigint; blockHash: Hash; timestamp: bigint };

// Ponder's checkpoint string starts with 10 digits of block timestamp, 16 of chain id, 16 of block number.
export function decodeCheckpointHead(checkpoint: string): {
  chainId: number;
  blockNumber: bigint;
  timestamp: bigint;
} {
  if (!/^\d{75}$/.test(checkpoint)) throw new Error(`unexpected Ponder checkpoint format: "${checkpoint}"`);
  return {
    timestamp: BigInt(checkpoint.slice(0, 10)),
    chainId: Number(checkpoint.slice(10, 26)),
    blockNumber: BigInt(checkpoint.slice(26, 42)),
  };
}

type Db = typeof ponderDb;
type ChainClient = (typeof publicClients)[typeof CHAIN_NAME];

// The checkpoint has no block hash; it is read from the RPC and kept while the checkpoint stands
// (briefly: a reorg can replace a block at the same height without changing the checkpoint).
const HASH_TTL_MS = 1_000;
let cachedHash: { checkpoint: string; hash: Hash; at: number } | undefined;

/** `undefined` until Ponder has written its first checkpoint for this chain. */
export async function readIndexedHead(
  db: Db,
  client: ChainClient,
  chainId: number,
): Promise<IndexedHead | undefined> {
  const result = await db.execute(
    sql`SELECT latest_checkpoint FROM _ponder_checkpoint WHERE chain_id = ${chainId} LIMIT 1`,
  );
  const checkpoint = (result.rows[0] as { latest_checkpoint?: string } | undefined)?.latest_checkpoint;
  if (checkpoint === undefined) return undefined;
  const head = decodeCheckpointHead(checkpoint);

  let blockHash =
    cachedHash?.checkpoint === checkpoint && Date.now() - cachedHash.at < HASH_TTL_MS
      ? cachedHash.hash
      : undefined;
  if (blockHash === undefined) {
    const block = await client.getBlock({ blockNumber: head.blockNumber });
    blockHash = block.hash;
    cachedHash = { checkpoint, hash: blockHash, at: Date.now() };
  }
  return { ...head, blockHash };
}
