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
