import { PONDER_FINALITY_BLOCKS } from '@chainmeter/schema';
import type { Em, Orm } from '../../db/orm.ts';
import { sqlOf } from '../../db/sql.ts';
import {
  type CreditingEvent,
  creditConfirmedTransfers,
  getCreditingCursor,
  syncPendingDeposits,
} from './crediting.service.ts';
import { tryCreditingLock } from './crediting.store.ts';
import { INDEXER_MAX_LIMIT, type IndexerClient, type IndexerHead } from './indexer.client.ts';
import {
  payDebtsFromBalance,
  type ReversedCredit,
  recordCompleteReorgCheck,
  reorgCheckStart,
  reverseReorgedCredits,
  rewindCursorBelowUncredited,
} from './reorg.service.ts';

/** The subset of pino the worker logs through. */
export interface WorkerLogger {
  debug(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

const silent: WorkerLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface CreditingWorkerOptions {
  orm: Orm;
  indexer: IndexerClient;
  chainId: number;
  /** A transfer is credited once head - blockNumber >= confirmations. */
  confirmations: number;
  /** How often to ask the indexer for its head. */
  pollIntervalMs?: number;
  /**
   * While the window holds unconfirmed transfers, how long an unchanged indexer head is trusted to need no
   * new look (default 2 s). The head's hash is Ponder's (its `indexed_block` row), but while Ponder starts or
   * recovers from a crash it comes from the chain's RPC: after a reorg at the same height the new hash can then
   * be seen before Ponder has rolled its rows back, and the window read then still holds the gone transfers.
   * Without a new look, a pending deposit they left would stay PENDING until the next block. With no
   * unconfirmed transfer, an unchanged head is trusted until it changes.
   */
  headRecheckMs?: number;
  /** Transfers credited per transaction. */
  batchSize?: number;
  /** Called after each transaction commits with what it changed; errors are logged, not retried. */
  onEvents?: (events: CreditingEvent[]) => void | Promise<void>;
  /** Called with the indexer's head each round it answers (for lag alerts and readiness). */
  onHead?: (head: bigint) => void;
  /** Called when a reorg deeper than CONFIRMATIONS removed credited transfers (for alerts and metrics). */
  onReversedCredits?: (credits: ReversedCredit[]) => void;
  logger?: WorkerLogger;
}

export interface CreditingWorker {
  /** Stops polling and waits for the round in flight. */
  stop(): Promise<void>;
  /** One full round now (credit the confirmed backlog, then sync the window). Throws what failed. */
  runOnce(): Promise<void>;
}

/**
 * Both PostgreSQL and PGlite implement advisory locks; the key pair is (this constant, chainId). Only
 * one replica runs a crediting transaction per chain at a time; the others skip the round rather than
 * queue behind it. Correctness does not rest on the lock (the guarded upserts do that), it only keeps
 * replicas from doing the same work twice.
 */
const ADVISORY_LOCK_KEY = 0x434d_4352; // "CMCR"

/**
 * Polls the indexer and credits confirmed transfers exactly once; keeps PENDING/REORGED deposits in step
 * with the unconfirmed window. Survives the indexer being down (logs, retries next round).
 *
 * @example
 * const worker = startCreditingWorker({ orm, indexer, chainId: 31337, confirmations: 2, onEvents: publish });
 * await worker.stop();
 */
export function startCreditingWorker(options: CreditingWorkerOptions): CreditingWorker {
  const { orm, indexer, chainId, confirmations } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 200;
  const headRecheckMs = options.headRecheckMs ?? 2_000;
  const batchSize = Math.min(options.batchSize ?? 2_000, INDEXER_MAX_LIMIT);
  const logger = options.logger ?? silent;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | null = null;
  // The head of the last round that finished its work, when, and whether its window held unconfirmed
  // transfers: an unchanged head means nothing to do (for `headRecheckMs` only, if it did).
  let settledHead: { key: string; at: number; unconfirmed: boolean } | null = null;
  // The indexer's head up to which the last complete reorg check compared every credit (see `round`).
  let checkedHead: bigint | null = null;
  let indexerDown = false;

  async function publish(events: CreditingEvent[]): Promise<void> {
    if (events.length === 0 || !options.onEvents) return;
    try {
      await options.onEvents(events);
    } catch (error) {
      logger.error({ err: error }, 'publishing crediting events failed');
    }
  }

  /** Runs `fn` in a transaction holding the chain's crediting lock; null when another replica holds it. */
  async function withCreditingLock<T>(fn: (tx: Em) => Promise<T>): Promise<T | null> {
    return orm.em.fork().transactional(async (tx) => {
      if (!(await tryCreditingLock(sqlOf(tx as Em).query, ADVISORY_LOCK_KEY, chainId))) return null;
      return fn(tx as Em);
    });
  }

  async function round(): Promise<void> {
    const head: IndexerHead = await indexer.head();
    if (head.chainId !== chainId) {
      throw new Error(`the indexer follows chain ${head.chainId}, this API credits chain ${chainId}`);
    }
    options.onHead?.(head.blockNumber);
    const headKey = `${head.blockNumber}:${head.blockHash}`;
    if (
      headKey === settledHead?.key &&
      (!settledHead.unconfirmed || performance.now() - settledHead.at < headRecheckMs)
    ) {
      return;
    }

    const toBlock = head.blockNumber - BigInt(confirmations);
    if (checkedHead === null) {
      // Before this process's first check: from where the last complete check (of any process) got to.
      checkedHead = (await reorgCheckStart(orm.em.fork(), chainId, confirmations)) ?? head.blockNumber;
    }
    let busy = false;
    if (toBlock >= 0n) {
      for (;;) {
        const cursor = await getCreditingCursor(orm.em.fork(), chainId);
        const transfers = await indexer.transfersAfter(cursor, toBlock, batchSize);
        if (transfers.length === 0) break;
        const events = await withCreditingLock<CreditingEvent[]>(async (tx) => {
          // Another replica may have credited this page since it was read: start again from its cursor.
          const current = await getCreditingCursor(tx, chainId, { forUpdate: true });
          if (!sameCursor(current, cursor)) return [];
          return creditConfirmedTransfers(tx, chainId, transfers, head.blockNumber);
        });
        if (events === null) {
          busy = true;
          break;
        }
        await publish(events);
        if (events.length > 0) logger.debug({ chainId, count: transfers.length }, 'credited transfers');
        if (transfers.length < batchSize) break;
        if (stopped) return;
      }
    }
    if (busy) return;

    // Everything Ponder can still roll back: the unconfirmed window, and the confirmed blocks below it
    // whose credits a reorg deeper than CONFIRMATIONS could still remove. Ponder rolls back at most its
    // finality depth below its head *at the reorg*, which may be far below today's head: no round ran
    // while the chain moved on (every replica down, or rounds slower than blocks). So the window reaches
    // that far below the head of the last complete check too. Only blocks the window is complete up to
    // are compared: while Ponder recovers from a crash its rows end below the head this round started
    // from, and a transfer it has not re-indexed yet is not a reorged one.
    const latestFrom = reorgWindowFrom(head.blockNumber);
    let windowFrom = reorgWindowFrom(earlier(checkedHead, head.blockNumber));
    let window = await indexer.window(windowFrom);
    if (window.transfers.length >= INDEXER_MAX_LIMIT && windowFrom < latestFrom) {
      logger.error(
        { chainId, fromBlock: windowFrom.toString(), toBlock: (latestFrom - 1n).toString() },
        'too many transfers since the last reorg check: credits in these blocks are not compared again',
      );
      windowFrom = latestFrom;
      window = await indexer.window(windowFrom);
    }
    const windowHead = earlier(window.indexedTo, head.blockNumber);
    const windowComplete = window.transfers.length < INDEXER_MAX_LIMIT;
    const outcome = await withCreditingLock(async (tx) => {
      const pending = await syncPendingDeposits(tx, chainId, window.transfers, windowHead, confirmations, {
        windowComplete,
      });
      if (!windowComplete) return { events: pending, reversed: [], rewound: null };
      const settled = { fromBlock: windowFrom, toBlock: earlier(windowHead, toBlock) };
      const reversals = await reverseReorgedCredits(tx, chainId, window.transfers, settled);
      // What holds released since is the indebted accounts' again: it pays their debts first.
      const payments = await payDebtsFromBalance(tx);
      // A deep reorg may also have put transfers where the cursor has already been.
      const rewound = await rewindCursorBelowUncredited(tx, chainId, window.transfers, settled);
      // With the check's own writes: a process that dies before they commit leaves the next one to look again.
      await recordCompleteReorgCheck(tx, chainId, windowHead);
      return {
        events: [...pending, ...reversals.events, ...payments],
        reversed: reversals.reversed,
        rewound,
      };
    });
    if (outcome === null) return;
    // Every credit up to the window's head has been compared with what the indexer has now.
    if (windowComplete) checkedHead = windowHead;
    if (!windowComplete) {
      logger.warn(
        { chainId, size: window.transfers.length },
        'confirmation window may be truncated: reorg detection skipped',
      );
    }
    for (const credit of outcome.reversed) {
      // An alert: money was credited for a transfer the chain no longer has.
      logger.error(
        {
          chainId,
          depositId: credit.depositId,
          accountId: credit.accountId,
          txHash: credit.txHash,
          logIndex: credit.logIndex,
          blockNumber: credit.blockNumber.toString(),
          amount: credit.amount.toString(),
          reversed: credit.reversed.toString(),
          shortfall: credit.shortfall.toString(),
        },
        'deep reorg removed a credited transfer: credit reversed by an ADJUSTMENT, the shortfall is a debt',
      );
    }
    if (outcome.reversed.length > 0) options.onReversedCredits?.(outcome.reversed);
    await publish(outcome.events);
    if (outcome.rewound) {
      const to = outcome.rewound.to;
      logger.warn(
        { chainId, toBlock: to ? to.blockNumber.toString() : null },
        'deep reorg put transfers below the crediting cursor: cursor moved back to credit them',
      );
      // Not settled: the next round reads again from the rewound cursor, at this head too.
      return;
    }
    // A window behind the head is looked at again next round, whatever the head does meanwhile.
    if (windowHead === head.blockNumber) {
      const unconfirmed = window.transfers.some(
        (t) => head.blockNumber - t.blockNumber < BigInt(confirmations),
      );
      settledHead = { key: headKey, at: performance.now(), unconfirmed };
    }
  }

  async function runOnce(): Promise<void> {
    while (inFlight) await inFlight.catch(() => {});
    const current = round();
    inFlight = current;
    try {
      await current;
    } finally {
      inFlight = null;
    }
  }

  async function tick(): Promise<void> {
    try {
      await runOnce();
      if (indexerDown) logger.info({ chainId }, 'indexer reachable again');
      indexerDown = false;
    } catch (error) {
      // Log the first failure of a streak at error level, the rest quieter: a down indexer would
      // otherwise flood the log five times a second.
      if (!indexerDown) logger.error({ err: error, chainId }, 'crediting round failed, retrying');
      else logger.debug({ err: error, chainId }, 'crediting round failed again');
      indexerDown = true;
    }
    if (!stopped) timer = setTimeout(tick, pollIntervalMs);
  }

  timer = setTimeout(tick, 0);

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      while (inFlight) await inFlight.catch(() => {});
    },
    runOnce,
  };
}

function sameCursor(
  a: { blockNumber: bigint; logIndex: number } | null,
  b: { blockNumber: bigint; logIndex: number } | null,
): boolean {
  if (a === null || b === null) return a === b;
  return a.blockNumber === b.blockNumber && a.logIndex === b.logIndex;
}

/** The lowest block Ponder can still roll back while its head is `head` (its finality depth below it). */
function reorgWindowFrom(head: bigint): bigint {
  const from = head - BigInt(PONDER_FINALITY_BLOCKS - 1);
  return from > 0n ? from : 0n;
}

/** The lower of two block numbers (Math.min takes no bigints). */
function earlier(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
