import { db, publicClients } from 'ponder:api';
import { transfer } from 'ponder:schema';
import { Hono } from 'hono';
import { and, asc, eq, gt, lte, or } from 'ponder';
import { CHAIN_NAME } from '../chain-name.ts';
import { env } from '../env.ts';
import { readIndexedHead, readWindow } from './indexed-head.store.ts';
import { parseTransfersQuery, parseWindowQuery, type TransferCursor } from './query-params.ts';
import { transferToJson } from './transfer-json.ts';

/**
 * What the API's crediting worker reads. Over HTTP rather than from the database so that it works
 * the same on PGlite (which no other process can open) and on PostgreSQL.
 */
const app = new Hono();

app.get('/chainmeter/head', async (c) => {
  let head: Awaited<ReturnType<typeof readIndexedHead>>;
  try {
    head = await readIndexedHead(db, publicClients[CHAIN_NAME], env.chainId);
  } catch (error) {
    // While Ponder starts or recovers from a crash the block hash comes from the RPC: its outage is the
    // indexer's unavailability, not a bug here.
    console.error('reading the indexed head failed', error);
    return c.json({ error: `cannot read the indexed head: ${(error as Error).message.split('\n')[0]}` }, 503);
  }
  if (!head) return c.json({ error: 'the indexer has not processed any block yet' }, 503);
  return c.json({
    chainId: head.chainId,
    blockNumber: head.blockNumber.toString(),
    blockHash: head.blockHash,
    timestamp: head.timestamp.toString(),
  });
});

function after(cursor: TransferCursor) {
  if (cursor.logIndex === undefined) return gt(transfer.blockNumber, cursor.blockNumber);
  return or(
    gt(transfer.blockNumber, cursor.blockNumber),
    and(eq(transfer.blockNumber, cursor.blockNumber), gt(transfer.logIndex, cursor.logIndex)),
  );
}

/** Transfers strictly after the cursor, in (blockNumber, logIndex) order, up to `toBlock`. */
app.get('/chainmeter/transfers', async (c) => {
  const query = parseTransfersQuery(c.req.query());
  if (!query.ok) return c.json({ error: query.error }, 400);
  const { after: cursor, toBlock, limit } = query.value;
  const rows = await db
    .select()
    .from(transfer)
    .where(
      and(
        cursor === undefined ? undefined : after(cursor),
        toBlock === undefined ? undefined : lte(transfer.blockNumber, toBlock),
      ),
    )
    .orderBy(asc(transfer.blockNumber), asc(transfer.logIndex))
    .limit(limit);
  return c.json({ transfers: rows.map(transferToJson) });
});

/**
 * Transfers at or above `fromBlock` (the ones a reorg could still remove), with `indexedTo`: the block
 * every transfer at or below which is in the answer, read in the same snapshot.
 */
app.get('/chainmeter/window', async (c) => {
  const query = parseWindowQuery(c.req.query());
  if (!query.ok) return c.json({ error: query.error }, 400);
  const window = await readWindow(db, env.chainId, query.value.fromBlock, query.value.limit);
  if (!window) return c.json({ error: 'the indexer has not processed any block yet' }, 503);
  return c.json({ indexedTo: window.indexedTo.toString(), transfers: window.transfers });
});

export default app;
