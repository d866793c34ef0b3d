/**
 * The webhook delivery worker: claims due deliveries from the outbox (`for update skip locked`, so any
 * number of replicas share the work and none sends what another has claimed), sends each signed request
 * (`webhook-sender.ts`) with at most `concurrency` in flight, logs every attempt, and moves the delivery to
 * DELIVERED (a 2xx), or PENDING again after an exponential backoff, or FAILED once the retry window (a day by
 * default) has passed. It runs beside crediting, never inside it: a receiver that never answers holds one
 * of this worker's slots until its timeout, and nothing else; and one account's receivers hold at most
 * `accountConcurrency` attempts at once, so a hanging one delays only its own account's webhooks.
 */
import type { Logger } from 'pino';
import type { SqlRunner } from '../../db/sql.ts';
import type { WebhookMetrics } from './webhook.metrics.ts';
import { sendWebhook } from './webhook-sender.ts';
import {
  type AttemptRecord,
  type ClaimedDelivery,
  claimDueDeliveries,
  pruneFinishedDeliveries,
  recordAttempts,
} from './webhooks.store.ts';

/** How often each worker deletes finished deliveries past their retention, and how many per statement. */
const PRUNE_INTERVAL_MS = 3_600_000;
const PRUNE_BATCH = 1_000;

export interface WebhookDeliverySettings {
  allowPrivateUrls: boolean;
  /** The deadline of one attempt, connection to last byte read. */
  timeoutMs: number;
  /** Attempts in flight at once in this process. */
  concurrency: number;
  /** Attempts in flight at once to one account's endpoints, every process together (see `claimDueDeliveries`). */
  accountConcurrency: number;
  /** How often to look for due deliveries when nothing woke the worker. */
  pollIntervalMs: number;
  /** The delay after the first failed attempt; it doubles with each further one, up to `retryMaxDelayMs`. */
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** No attempt is scheduled later than this after the event (or its manual redelivery): then FAILED. */
  retryWindowMs: number;
  /** Finished deliveries (and their attempt logs) older than this are deleted (see `pruneFinished`). */
  retentionMs: number;
}

export interface WebhookDeliveryWorkerOptions extends WebhookDeliverySettings {
  sql: SqlRunner;
  logger: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  metrics?: WebhookMetrics;
}

export interface WebhookDeliveryWorker {
  /** Looks for due deliveries now (after a transaction that wrote some has committed). */
  wake(): void;
  /** Stops claiming and waits for the attempts in flight. */
  stop(): Promise<void>;
}

/** The delay before attempt `attempts + 1` after `attempts` failed ones: base x 2^(attempts-1), capped. */
export function retryDelayMs(
  attempts: number,
  settings: Pick<WebhookDeliverySettings, 'retryBaseDelayMs' | 'retryMaxDelayMs'>,
): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  return Math.min(settings.retryBaseDelayMs * 2 ** exponent, settings.retryMaxDelayMs);
}

export function startWebhookDeliveryWorker(options: WebhookDeliveryWorkerOptions): WebhookDeliveryWorker {
  const { sql, logger, metrics } = options;
  // A claimed delivery is not claimed again before this: longer than an attempt can take.
  const leaseMs = options.timeoutMs + 30_000;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let claiming = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  // Attempts that end close together are recorded by one statement (one commit): at a high delivery rate
  // that is most of the database work a delivery costs. When that statement fails, each attempt is recorded
  // on its own, so that one record that cannot be written does not lose the others' results (which would
  // leave their deliveries claimed until the lease ends, and send a delivered one again).
  type Pending = { record: AttemptRecord; settle(moved: boolean): void; fail(error: unknown): void };
  let pending: Pending[] = [];
  let flushing = false;
  const recordBatch = async (batch: Pending[]): Promise<void> => {
    const moved = await recordAttempts(
      sql.query,
      batch.map((entry) => entry.record),
    );
    for (const entry of batch) entry.settle(moved.has(entry.record.delivery.id));
  };
  const flush = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await recordBatch(batch);
      } catch (error) {
        if (batch.length === 1) (batch[0] as Pending).fail(error);
        else {
          for (const entry of batch) await recordBatch([entry]).catch((alone: unknown) => entry.fail(alone));
        }
      }
    }
    flushing = false;
  };
  const record = (entry: AttemptRecord): Promise<boolean> =>
    new Promise<boolean>((settle, fail) => {
      pending.push({ record: entry, settle, fail });
      if (!flushing) {
        flushing = true;
        setImmediate(() => void flush());
      }
    });

  const schedule = (ms: number) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(tick, ms);
  };

  async function attempt(delivery: ClaimedDelivery): Promise<void> {
    const attemptedAt = new Date();
    const result = await sendWebhook(
      delivery.url,
      delivery.secret,
      { id: delivery.eventId, type: delivery.eventType, occurredAt: delivery.eventAt, data: delivery.data },
      { timeoutMs: options.timeoutMs, allowPrivateUrls: options.allowPrivateUrls, now: attemptedAt },
    );
    const delivered = result.responseCode !== null && result.responseCode >= 200 && result.responseCode < 300;
    let next: { status: 'DELIVERED' | 'PENDING' | 'FAILED'; nextAttemptAt: Date | null };
    if (delivered) next = { status: 'DELIVERED', nextAttemptAt: null };
    else {
      // +-20% so that the deliveries of a receiver that was down do not all come back in the same instant.
      const jitter = 0.8 + Math.random() * 0.4;
      const retryAt = new Date(Date.now() + Math.round(retryDelayMs(delivery.attempts, options) * jitter));
      next =
        retryAt.getTime() - delivery.retryingSince.getTime() > options.retryWindowMs
          ? { status: 'FAILED', nextAttemptAt: null }
          : { status: 'PENDING', nextAttemptAt: retryAt };
    }
    const moved = await record({ delivery, result: { ...result, attemptedAt }, next });
    metrics?.attempts.inc({ outcome: delivered ? 'delivered' : 'failed' });
    metrics?.attemptDuration.observe(result.latencyMs / 1000);
    if (moved && next.status === 'DELIVERED') {
      metrics?.eventToDelivery.observe((Date.now() - delivery.eventAt.getTime()) / 1000);
    }
    if (moved && next.status === 'FAILED') metrics?.givenUp.inc();
    logger[delivered ? 'debug' : 'info'](
      {
        deliveryId: delivery.id,
        webhookId: delivery.eventId,
        attempt: delivery.attempts,
        responseCode: result.responseCode,
        latencyMs: result.latencyMs,
        error: result.error,
        status: next.status,
      },
      delivered ? 'webhook delivered' : 'webhook attempt failed',
    );
  }

  async function tick(): Promise<void> {
    if (stopped) return;
    if (claiming) {
      again = true;
      return;
    }
    claiming = true;
    let claimed: ClaimedDelivery[] = [];
    const free = options.concurrency - inFlight.size;
    try {
      claimed = await claimDueDeliveries(sql.query, free, leaseMs, options.accountConcurrency);
    } catch (error) {
      logger.warn({ err: error }, 'webhook deliveries could not be claimed; retrying');
    } finally {
      claiming = false;
    }
    metrics?.inFlight.set(inFlight.size + claimed.length);
    for (const delivery of claimed) {
      const running: Promise<void> = attempt(delivery)
        .catch((error: unknown) => {
          // The attempt's result could not be written: the claim's lease runs out and it is sent again.
          logger.error({ err: error, deliveryId: delivery.id }, 'webhook attempt could not be recorded');
        })
        .finally(() => {
          inFlight.delete(running);
          metrics?.inFlight.set(inFlight.size);
          // A slot is free: there may be more due. Attempts ending together share one claim.
          if (!stopped) schedule(0);
        });
      inFlight.add(running);
    }
    // A full claim (or a wake during the claim) means more may be due right now.
    if (again || (free > 0 && claimed.length === free)) {
      again = false;
      schedule(0);
    } else schedule(options.pollIntervalMs);
  }

  /** Deletes what is past its retention, a batch per statement (short transactions), until none is left. */
  let pruning: Promise<void> | null = null;
  const pruneFinished = () => {
    if (pruning || stopped) return;
    pruning = (async () => {
      const before = new Date(Date.now() - options.retentionMs);
      let deleted = 0;
      for (let n = PRUNE_BATCH; n === PRUNE_BATCH && !stopped; ) {
        n = await pruneFinishedDeliveries(sql.query, before, PRUNE_BATCH);
        deleted += n;
      }
      if (deleted > 0) logger.info({ deleted, before }, 'deleted webhook deliveries past their retention');
    })()
      .catch((error: unknown) => logger.warn({ err: error }, 'webhook deliveries could not be pruned'))
      .finally(() => {
        pruning = null;
      });
  };
  const pruneTimer = setInterval(pruneFinished, PRUNE_INTERVAL_MS);
  pruneTimer.unref();
  pruneFinished();

  schedule(0);
  return {
    wake() {
      if (!stopped) schedule(0);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(pruneTimer);
      await pruning;
      while (claiming || inFlight.size > 0) {
        await Promise.allSettled([...inFlight]);
        if (claiming) await new Promise((resolve) => setImmediate(resolve));
      }
    },
  };
}
