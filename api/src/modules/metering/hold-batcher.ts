/**
 * Group commit of holds, as `SettlementBatcher` does for settlements (the queue: `GroupCommitQueue`): holds go
 * to the database together, one statement (`placeHolds`) and one durable commit per batch. When idle a hold
 * leaves at once, alone, as the single-row `placeHold` (no added delay); under load, those that arrive while
 * a batch is in flight form the next one. A member the batch could not decide for certain (refused, or
 * after a refused one on its account), and every member of a batch that failed, is placed again on its own
 * with `placeHold`, so each gets exactly the outcome it would have had alone.
 */
import type { Logger } from 'pino';
import type { SqlRunner } from '../../db/sql.ts';
import { GroupCommitQueue, type Waiting as GroupCommitWaiting } from './group-commit.ts';
import { type PlacedHold, type PlaceHoldParameters, placeHold, placeHolds } from './hold.store.ts';

/** Holds written in one statement at most. */
const MAX_HOLD_BATCH = 200;

type Waiting = GroupCommitWaiting<PlaceHoldParameters, PlacedHold>;

export class HoldBatcher {
  readonly #sql: SqlRunner;
  readonly #batchSql: SqlRunner;
  readonly #logger: Logger;
  readonly #queue = new GroupCommitQueue<PlaceHoldParameters, PlacedHold>(MAX_HOLD_BATCH, (batch) =>
    this.#writeBatch(batch),
  );

  /**
   * `sql`: where a hold alone goes (`placeHold`, prepared on the ORM's pool); `batchSql`: where batches go
   * (on generic plans: their arrays make PostgreSQL plan them afresh otherwise, see `sqlWithGenericPlans`).
   */
  constructor(sql: SqlRunner, batchSql: SqlRunner, logger: Logger) {
    this.#sql = sql;
    this.#batchSql = batchSql;
    this.#logger = logger;
  }

  /** Places `params` with the next batch; rejects as `placeHold` would. */
  place(params: PlaceHoldParameters): Promise<PlacedHold> {
    return this.#queue.submit(params);
  }

  async #writeBatch(batch: Waiting[]): Promise<void> {
    const [only] = batch;
    if (only !== undefined && batch.length === 1) {
      await placeHold(this.#sql, only.item).then(only.resolve, only.reject);
      return;
    }
    let results: (PlacedHold | null)[];
    try {
      results = await placeHolds(
        this.#batchSql,
        batch.map((entry) => entry.item),
      );
    } catch (error) {
      // One bad member must not hold back the others: each goes again on its own.
      this.#logger.warn(
        { err: error, size: batch.length },
        'hold batch failed; placing its members one by one',
      );
      results = batch.map(() => null);
    }
    const alone: Waiting[] = [];
    batch.forEach((entry, index) => {
      const placed = results[index];
      if (placed) entry.resolve(placed);
      else alone.push(entry);
    });
    // Each account's in arrival order, each after the one before it (as they would have gone alone); the
    // accounts side by side (a key is one account's).
    const byAccount = new Map<string, Waiting[]>();
    for (const entry of alone) {
      const entries = byAccount.get(entry.item.accountId);
      if (entries) entries.push(entry);
      else byAccount.set(entry.item.accountId, [entry]);
    }
    await Promise.all(
      [...byAccount.values()].map(async (entries) => {
        for (const entry of entries) {
          await placeHold(this.#sql, entry.item).then(entry.resolve, entry.reject);
        }
      }),
    );
  }
}
