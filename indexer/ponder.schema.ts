import { index, onchainTable } from 'ponder';

/**
 * USDC transfers to the treasury, one row per log. Ponder owns this table: on a reorg it deletes
 * the rows of the dropped blocks, and nothing else writes here.
 */
export const transfer = onchainTable(
  'transfer',
  (t) => ({
    /** Ponder's `event.id`: unique per log across chains and reorgs of the same log. */
    id: t.text().primaryKey(),
    chainId: t.integer().notNull(),
    txHash: t.hex().notNull(),
    logIndex: t.integer().notNull(),
    blockNumber: t.bigint().notNull(),
    blockHash: t.hex().notNull(),
    from: t.hex().notNull(),
    to: t.hex().notNull(),
    /** Token base units (USDC: 6 decimals, one unit = one micro-USD). */
    value: t.bigint().notNull(),
    /** Block timestamp, unix seconds. */
    timestamp: t.bigint().notNull(),
  }),
  (table) => ({
    // The API pages by this cursor.
    cursorIndex: index().on(table.blockNumber, table.logIndex),
  }),
);

/**
 * The newest block whose rows are all here, one row per chain: written at the end of every block (a block
 * source, after that block's transfers) in the same transaction, and reverted with them. Ponder's own
 * `_ponder_checkpoint` is not: on a reorg Ponder deletes the rows of the dropped blocks and moves the
 * checkpoint only when it indexes the next block. A lagging RPC (a load-balanced one whose nodes disagree)
 * that answers an older `latest` makes Ponder do exactly that, and while it fetches the blocks back the
 * checkpoint names a head whose transfers are missing. The API trusts the lower of the two.
 */
export const indexedBlock = onchainTable('indexed_block', (t) => ({
  chainId: t.integer().primaryKey(),
  number: t.bigint().notNull(),
  hash: t.hex().notNull(),
  /** Unix seconds. */
  timestamp: t.bigint().notNull(),
}));
