/**
 * Group commit of charged settlements: they queue here and go to the database together, one transaction
 * per batch. When idle a settlement leaves at once (no added delay); under load, those that arrive while
 * a batch is in flight form the next one. A failed batch fails its members, which retry one by one.
 */
import type { Logger } from 'pino';
import type { SqlRunner } from '../../db/sql.ts';
import { GroupCommitQueue, type Waiting as GroupCommitWaiting } from './group-commit.ts';
import type { LedgerHeads } from './ledger-heads.ts';
import { applyChargedSettlements, applySettlement } from './settlement.store.ts';
import type { SettleResult } from './settlement.ts';
import type { PendingSettlement } from './settlement-write.store.ts';

/** Charged settlements written in one transaction at most. */
const MAX_SETTLEMENT_BATCH = 500;

type Waiting = GroupCommitWaiting<PendingSettlement, SettleResult>;

export class SettlementBatcher {
  readonly #sql: SqlRunner;
  readonly #heads: LedgerHeads;
  readonly #logger: Logger;
  readonly #queue = new GroupCommitQueue<PendingSettlement, SettleResult>(MAX_SETTLEMENT_BATCH, (batch) =>
    this.#writeBatch(batch),
  );

  /** `heads`: the ledger heads this process saw last, so most batches go out as one guarded statement. */
  constructor(sql: SqlRunner, heads: LedgerHeads, logger: Logger) {
    this.#sql = sql;
    this.#heads = heads;
    this.#logger = logger;
  }

  /** Settles `item` with the next batch. */
  settle(item: PendingSettlement): Promise<SettleResult> {
    return this.#queue.submit(item);
  }

  async #writeBatch(batch: Waiting[]): Promise<void> {
    try {
      const items = batch.map((entry) => entry.item);
      const results = await applyChargedSettlements(this.#sql, items, this.#heads);
      for (const entry of batch) {
        entry.resolve(results.get(entry.item.usageId) ?? { settled: false, reason: 'already settled' });
      }
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      // One bad member must not hold back the others: each goes again on its own.
      this.#logger.warn(
        { err: error, size: batch.length },
        'settlement batch failed; settling its members one by one',
      );
      await Promise.all(
        batch.map((entry) =>
          applySettlement(this.#sql, entry.item.usageId, entry.item.settlement).then(
            entry.resolve,
            entry.reject,
          ),
        ),
      );
    }
  }
}
