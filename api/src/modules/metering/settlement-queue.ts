/**
 * Applying settlements exactly once, whatever fails. A settlement that fails is kept on the record
 * (UNSETTLED) or, if even that fails, in memory, and the settlement loop retries it. Only the first is durable:
 * a charge kept in memory only for a call whose answer is still waiting withholds that answer (`settle`'s
 * `answerWaiting`), since a crash before the retry would release its hold and give the answer away. Each
 * round the loop also settles what a crashed process left UNSETTLED and closes holds whose call never
 * finished (HELD past `hold_expires_at`): released, or, for a stream with recorded progress, billed for what
 * it had generated; and a paid call whose process died (its payment not on its account): released when its
 * payment moved (it stays as the payer's credits once credited), UNPAID when an `upto` call never settled
 * (it may have been served), for an operator to look at.
 */
import type { Ratio } from '@chainmeter/schema';
import type { Logger } from 'pino';
import type { SqlRunner } from '../../db/sql.ts';
import { settlementOfExpiredHold } from './billing.ts';
import { findExpiredHolds } from './hold.store.ts';
import type { HoldHeartbeat } from './hold-heartbeat.ts';
import type { LedgerHeads } from './ledger-heads.ts';
import { findAbandonedPaidCalls, finishPaidCall } from './paid-call.store.ts';
import type { PriceBook } from './price-book.ts';
import { applySettlement, findUnsettled, markUnsettled } from './settlement.store.ts';
import { releasedUnanswered, type Settlement, type SettleResult } from './settlement.ts';
import { SettlementBatcher } from './settlement-batcher.ts';
import type { HeldRecord } from './settlement-write.store.ts';

/** Records read back from the database per kind and round of the loop. */
const LOOP_BATCH = 100;

export interface SettlementQueueOptions {
  sql: SqlRunner;
  /**
   * Where charged settlements are written in batches (default `sql`): the metering service gives it a runner
   * on generic plans (`sqlWithGenericPlans`), so the batch statement is not planned afresh on every run.
   */
  batchSql?: SqlRunner;
  logger: Logger;
  heads: LedgerHeads;
  /** The records this process holds open: closed once settled, and never expired by the loop. */
  holds: HoldHeartbeat;
  /** Prices and markup that bill an interrupted stream's recorded progress. */
  prices: PriceBook;
  markup: Ratio;
  /** Period of the settlement loop. */
  retryMs: number;
  /** Called before each settlement attempt (test hook); a throw makes that attempt fail. */
  beforeAttempt?(usageId: string, attempt: number): void | Promise<void>;
  /** Called once a charged settlement is committed, before the answer is sent (test hook). */
  afterCharge?(usageId: string): void;
  /** Called after a charge commits, with its ledger entry (to publish `balanceUpdated`). */
  onCharged?(charge: { accountId: string; ledgerEntryId: string }): void;
}

/** The flag of a call released because its answer was withheld (`settle`'s `answerWaiting`). */
const ANSWER_WITHHELD = 'ANSWER_WITHHELD';

/**
 * Whether a settlement is durable; when it is kept in memory only, the error that kept it there, and whether
 * the call's answer must be withheld (what is kept is then its release). `error` is null when nothing failed
 * but the record had been released already (its hold expired under the call).
 */
export type SettleOutcome = { durable: true } | { durable: false; withheld: boolean; error: unknown };

export class SettlementQueue {
  readonly #options: SettlementQueueOptions;
  readonly #batcher: SettlementBatcher;
  /** Settlements that could not even be recorded as UNSETTLED: retried from memory. */
  readonly #retryFromMemory = new Map<string, Settlement>();
  readonly #attempts = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<number> | null = null;

  constructor(options: SettlementQueueOptions) {
    this.#options = options;
    this.#batcher = new SettlementBatcher(options.batchSql ?? options.sql, options.heads, options.logger);
  }

  /** Settlements waiting in memory for a retry. */
  get waitingInMemory(): number {
    return this.#retryFromMemory.size;
  }

  /**
   * Applies a settlement; on failure keeps it for the loop. Never throws. `record`: the record as this
   * process's hold wrote it (absent for records read back from the database). Says whether the settlement
   * is durable (written, or recorded UNSETTLED for the loop) or kept in memory only, with why.
   *
   * `answerWaiting`: the call's answer has not left and waits for this. If a charge can then be kept in
   * memory only, the answer must not leave (a crash before the retry would release its hold: a free call),
   * so what the loop retries is a release instead, nothing charged, and the outcome says `withheld`. If this
   * process dies first, the sweep releases the hold once it expires: either way the call is not charged.
   */
  async settle(
    usageId: string,
    settlement: Settlement,
    record?: HeldRecord,
    { answerWaiting = false }: { answerWaiting?: boolean } = {},
  ): Promise<SettleOutcome> {
    const { sql, logger, holds } = this.#options;
    const attempt = (this.#attempts.get(usageId) ?? 0) + 1;
    this.#attempts.set(usageId, attempt);
    try {
      await this.#options.beforeAttempt?.(usageId, attempt);
      const result =
        settlement.userPrice > 0n && attempt === 1
          ? await this.#batcher.settle({ usageId, settlement, record })
          : await applySettlement(sql, usageId, settlement);
      this.#retryFromMemory.delete(usageId);
      this.#attempts.delete(usageId);
      holds.close(usageId);
      if (result.settled && result.ledgerEntryId) this.#options.afterCharge?.(usageId);
      if (result.settled) this.#announceCharge(result);
      else if (settlement.flags.includes(ANSWER_WITHHELD)) {
        // The charge it failed to confirm had committed after all: charged for an answer it never got.
        logger.error({ usageId }, 'a call whose answer was withheld had been charged; review it');
      } else logger.debug({ usageId }, 'usage already settled');
      if (settlement.status === 'NEEDS_REVIEW') {
        logger.warn({ usageId, flags: settlement.flags }, 'usage needs review');
      }
      if (!result.settled && answerWaiting && settlement.userPrice > 0n) {
        // Its first settlement, and the record was closed already: a sweep released its expired hold
        // (this process's heartbeat could not extend it). Answering now would give the call away.
        logger.warn({ usageId }, 'a call was released under its running call; its answer is withheld');
        return { durable: false, withheld: true, error: null };
      }
      return { durable: true };
    } catch (error) {
      logger.error({ err: error, usageId, attempt }, 'settlement failed; it will be retried');
      try {
        if (await markUnsettled(sql, usageId, settlement, String((error as Error).message))) {
          this.#retryFromMemory.delete(usageId);
          holds.close(usageId);
          return { durable: true };
        }
      } catch (markError) {
        logger.error(
          { err: markError, usageId },
          'could not record the unsettled usage; retrying from memory',
        );
      }
      const withheld = answerWaiting && settlement.userPrice > 0n;
      this.#retryFromMemory.set(
        usageId,
        withheld
          ? releasedUnanswered(
              ANSWER_WITHHELD,
              'its settlement could not be written; the answer was not sent',
            )
          : settlement,
      );
      return { durable: false, withheld, error };
    }
  }

  /** One round of the settlement loop; returns how many records it closed. */
  async settleOutstanding(now = new Date()): Promise<number> {
    const { sql, logger, holds, prices, markup } = this.#options;
    let closed = 0;
    for (const [usageId, settlement] of [...this.#retryFromMemory]) {
      await this.settle(usageId, settlement);
      if (!this.#retryFromMemory.has(usageId)) closed++;
    }
    for (const { id, settlement } of await findUnsettled(sql, LOOP_BATCH)) {
      const result = await applySettlement(sql, id, settlement).catch((error: unknown) => {
        logger.error({ err: error, usageId: id }, 'retrying an unsettled usage failed');
        return null;
      });
      if (result?.settled) {
        closed++;
        this.#announceCharge(result);
      }
    }
    for (const expired of await findExpiredHolds(sql, now, LOOP_BATCH, holds.openIds())) {
      const settlement = settlementOfExpiredHold(expired, prices.get(expired.model), markup);
      // Re-checked in the settling statement: a live replica may have extended the hold since it was read.
      const result = await applySettlement(sql, expired.id, settlement, { expiredAt: now });
      if (result.settled) {
        closed++;
        this.#announceCharge(result);
        logger.warn(
          { usageId: expired.id, status: settlement.status, userPrice: settlement.userPrice.toString() },
          settlement.status === 'RELEASED'
            ? 'released an expired hold'
            : 'billed an interrupted stream for what it had generated',
        );
      }
    }
    for (const call of await findAbandonedPaidCalls(sql, now, LOOP_BATCH, holds.openIds())) {
      const status = call.scheme === 'upto' && call.txHash === null ? 'UNPAID' : 'RELEASED';
      if (await finishPaidCall(sql, call.id, status, abandonedPaidCall(call.txHash))) {
        closed++;
        logger.warn({ usageId: call.id, status }, 'closed a paid call its process left unfinished');
      }
    }
    return closed;
  }

  /** Runs the loop now (whatever a previous process left behind), then every `retryMs`. */
  start(): void {
    if (this.#timer) return;
    this.#runRound();
    this.#timer = setInterval(() => this.#runRound(), this.#options.retryMs);
    this.#timer.unref();
  }

  /** Stops the loop; resolves once its running round has finished. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  #runRound(): void {
    if (this.#round) return;
    this.#round = this.settleOutstanding()
      .catch((error: unknown) => {
        this.#options.logger.error({ err: error }, 'settlement loop round failed');
        return 0;
      })
      .finally(() => {
        this.#round = null;
      });
  }

  #announceCharge(result: SettleResult & { settled: true }): void {
    if (result.ledgerEntryId) {
      this.#options.onCharged?.({ accountId: result.accountId, ledgerEntryId: result.ledgerEntryId });
    }
  }
}

/** The settlement of a paid call its process left unfinished (nothing known of its answer). */
function abandonedPaidCall(txHash: string | null): Settlement {
  const error = txHash ? `process ended before the call did; payment ${txHash} stays as credits` : null;
  return releasedUnanswered('PAID_CALL_ABANDONED', error);
}
