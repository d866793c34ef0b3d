import { ponder } from 'ponder:registry';
import { indexedBlock, transfer } from 'ponder:schema';

ponder.on('USDC:Transfer', async ({ event, context }) => {
  // Keyed by the log, so a replayed block writes nothing twice.
  await context.db
    .insert(transfer)
    .values({
      id: event.id,
      chainId: context.chain.id,
      txHash: event.transaction.hash,
      logIndex: event.log.logIndex,
      blockNumber: event.block.number,
      blockHash: event.block.hash,
      from: event.args.from,
      to: event.args.to,
      value: event.args.value,
      timestamp: event.block.timestamp,
    })
    .onConflictDoNothing();
});

ponder.on('IndexedBlock:block', async ({ event, context }) => {
  // After the block's transfers (Ponder runs a block event last in its block), in the same transaction.
  const block = { number: event.block.number, hash: event.block.hash, timestamp: event.block.timestamp };
  await context.db
    .insert(indexedBlock)
    .values({ chainId: context.chain.id, ...block })
    .onConflictDoUpdate(block);
});
