import type { db as ponderDb, publicClients } from 'ponder:api';
import { indexedBlock, transfer } from 'ponder:schema';
import { sql } from 'ponder';
import type { Hash } from 'viem';
import type { CHAIN_NAME } from '../chain-name.ts';
import { type TransferJson, transferToJson } from './transfer-json.ts';

/**
 * How far the indexer's rows can be trusted, read from Ponder's own tables.
 *
 * Ponder advances `_ponder_checkpoint.latest_checkpoint` once per block, empty blocks included, in the
 * same transaction that writes that block's rows. Two exceptions:
 *
 *  - Crash recovery. When `ponder start` finds a schema it left behind, it reverts every row newer than
 *    `safe_checkpoint` (what its reorg tables can undo) and sets `_ponder_meta.is_ready` to 0 in one
 *    transaction, but leaves `latest_checkpoint` where it was until re-indexing moves it. Until Ponder is
 *    ready again, only the block before the safe checkpoint's is trusted (a safe checkpoint may stand
 *    inside its block, whose later rows were reverted). Trusting `latest_checkpoint` here once made every
 *    credit of the last 30 blocks look reorged while the indexer restarted.
 *  - A reorg, real or not. Ponder reverts the rows of the dropped blocks at once, but moves the checkpoint
 *    only when it indexes the next block (ponder's runtime/omnichain.ts, case "reorg"). A lagging RPC that
 *    answers an older `latest` once is such a reorg to Ponder: while it fetches the blocks back, the
 *    checkpoint names a head whose transfers are gone. Trusting it once took back credits whose transfers
 *    were on chain. The `indexed_block` row (ponder.schema.ts) is reverted with the rows, so the indexed
 *    block is never above it; without it (before the block source's first block) only the safe
 *    checkpoint's is trusted.
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

type StatusColumns = {
  latest_checkpoint: string;
  safe_checkpoint: string;
  ready: number | string | null;
  /** The `indexed_block` row's, null before the block source's first block. */
  row_number: string | null;
  row_hash: Hash | null;
  row_timestamp: string | null;
};

/** The status columns, for one chain; a subquery both reads below share so they agree. */
const status = (chainId: number) => sql`SELECT c.latest_checkpoint, c.safe_checkpoint,
    (SELECT (m.value->>'is_ready')::int FROM _ponder_meta m WHERE m.key = 'app') AS ready,
    b.number::text AS row_number, b.hash AS row_hash, b.timestamp::text AS row_timestamp
  FROM _ponder_checkpoint c LEFT JOIN ${indexedBlock} b ON b.chain_id = c.chain_id
  WHERE c.chain_id = ${chainId} LIMIT 1`;

/** The highest block whose rows are all stored (see above). */
export function trustedIndexedBlock(row: StatusColumns): bigint {
  const safe = decodeCheckpointHead(row.safe_checkpoint).blockNumber;
  const beforeSafe = safe > 0n ? safe - 1n : 0n;
  if (row.row_number === null) return beforeSafe;
  const checkpoint =
    Number(row.ready) === 1 ? decodeCheckpointHead(row.latest_checkpoint).blockNumber : beforeSafe;
  const written = BigInt(row.row_number);
  return written < checkpoint ? written : checkpoint;
}

// Below the `indexed_block` row (crash recovery) there is no stored hash: it is read from the RPC and kept
// while the block number stands (briefly: a reorg can replace a block at the same height).
const HASH_TTL_MS = 1_000;
let cachedBlock: { number: bigint; hash: Hash; timestamp: bigint; at: number } | undefined;

/** `undefined` until Ponder has written its first checkpoint for this chain. */
export async function readIndexedHead(
  db: Db,
  client: ChainClient,
  chainId: number,
): Promise<IndexedHead | undefined> {
  const result = await db.execute(status(chainId));
  const row = result.rows[0] as StatusColumns | undefined;
  if (row === undefined) return undefined;
  const blockNumber = trustedIndexedBlock(row);
  if (row.row_number !== null && BigInt(row.row_number) === blockNumber) {
    // Ponder's own row: the block it indexed, whatever the RPC answers now.
    return {
      chainId,
      blockNumber,
      blockHash: row.row_hash as Hash,
      timestamp: BigInt(row.row_timestamp as string),
    };
  }
  if (!(cachedBlock?.number === blockNumber && Date.now() - cachedBlock.at < HASH_TTL_MS)) {
    const block = await client.getBlock({ blockNumber });
    cachedBlock = { number: blockNumber, hash: block.hash, timestamp: block.timestamp, at: Date.now() };
  }
  return { chainId, blockNumber, blockHash: cachedBlock.hash, timestamp: cachedBlock.timestamp };
}

/** Transfers at or above a block, and the indexed block they are complete up to. */
export type IndexedWindow = { indexedTo: bigint; transfers: TransferJson[] };

type WindowRow = StatusColumns & {
  id: string | null;
  chain_id: number | null;
  tx_hash: `0x${string}` | null;
  log_index: number | null;
  block_number: string | null;
  block_hash: `0x${string}` | null;
  from: `0x${string}` | null;
  to: `0x${string}` | null;
  value: string | null;
  timestamp: string | null;
};

/**
 * The transfers at or above `fromBlock` (ascending, at most `limit`) and the indexed block, read in ONE
 * statement so both come from the same snapshot: a caller comparing its credits with this window can
 * trust that every transfer at or below `indexedTo` is in it, even if Ponder restarts meanwhile.
 * `undefined` until Ponder has written its first checkpoint for this chain.
 */
export async function readWindow(
  db: Db,
  chainId: number,
  fromBlock: bigint,
  limit: number,
): Promise<IndexedWindow | undefined> {
  const result = await db.execute(sql`WITH status AS (${status(chainId)})
    SELECT status.*, w.id, w.chain_id::int AS chain_id, w.tx_hash, w.log_index::int AS log_index,
      w.block_number::text AS block_number, w.block_hash, w."from", w."to", w.value::text AS value,
      w.timestamp::text AS timestamp
    FROM status LEFT JOIN (
      SELECT * FROM ${transfer} WHERE block_number >= ${fromBlock.toString()}::numeric
      ORDER BY block_number, log_index LIMIT ${limit}
    ) w ON true
    ORDER BY w.block_number, w.log_index`);
  const rows = result.rows as WindowRow[];
  const first = rows[0];
  if (first === undefined) return undefined;
  const transfers: TransferJson[] = [];
  for (const row of rows) {
    if (row.id === null) continue; // the status row alone: an empty window
    transfers.push(
      transferToJson({
        id: row.id,
        chainId: Number(row.chain_id),
        txHash: row.tx_hash as `0x${string}`,
        logIndex: Number(row.log_index),
        blockNumber: BigInt(row.block_number as string),
        blockHash: row.block_hash as `0x${string}`,
        from: row.from as `0x${string}`,
        to: row.to as `0x${string}`,
        value: BigInt(row.value as string),
        timestamp: BigInt(row.timestamp as string),
      }),
    );
  }
  return { indexedTo: trustedIndexedBlock(first), transfers };
}
