/**
 * The holds this process keeps open, and the heartbeat that keeps them alive.
 *
 * A record is open from its hold until its settlement is written (or recorded as UNSETTLED, which the
 * expiry never touches), with the stream being served, if any. The heartbeat pushes the expiry
 * (`hold_expires_at`) of every open record forward, and records how much text each stream has generated,
 * so a call that outlives the hold TTL (a long stream) keeps its hold on every replica; only a process
 * that stopped beating (it died) has its holds expire, one TTL after its last beat: released, or billed
 * for the progress recorded.
 */
import type { Logger } from 'pino';
import type { SqlRunner } from '../../db/sql.ts';
import { extendHolds, type StreamProgress } from './hold.store.ts';

/** A stream this process is serving: what the heartbeat records of it (see `extendHolds`). */
export interface ServedStream {
  promptBound: number;
  /**
   * What billing would count of the output so far: UTF-8 bytes generated, each choice's at most its
   * max_tokens (recorded as `generated_bytes`; a stream whose process dies is billed for it).
   */
  generatedBytes(): number;
}

export interface HoldHeartbeatOptions {
  sql: SqlRunner;
  logger: Logger;
  /** How far ahead each beat pushes the expiry. */
  holdTtlMs: number;
  /** Time between beats. */
  periodMs: number;
  /** Called once a beat has recorded a stream's progress (test hook). */
  afterProgress?(usageId: string): void;
}

export class HoldHeartbeat {
  readonly #options: HoldHeartbeatOptions;
  /** The open records, by usage id, with the stream each serves (null until it streams, or never). */
  readonly #open = new Map<string, ServedStream | null>();
  #timer: NodeJS.Timeout | undefined;
  #extending: Promise<void> | null = null;

  constructor(options: HoldHeartbeatOptions) {
    this.#options = options;
  }

  /** A hold was placed: its record is open until {@link close}. */
  open(usageId: string): void {
    this.#open.set(usageId, null);
  }

  /** The record's call is now a stream: its progress is recorded with each beat (if still open). */
  serveStream(usageId: string, stream: ServedStream): void {
    if (this.#open.has(usageId)) this.#open.set(usageId, stream);
  }

  /** The record is settled, or recorded UNSETTLED: no longer this process's to keep alive. */
  close(usageId: string): void {
    this.#open.delete(usageId);
  }

  /** The open records: the settlement loop never expires them. */
  openIds(): string[] {
    return [...this.#open.keys()];
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#extendOpenHolds(), this.#options.periodMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#extending;
  }

  /** One beat: pushes the expiry of every open record; records streams' progress. Skipped while one runs. */
  #extendOpenHolds(): void {
    if (this.#extending || this.#open.size === 0) return;
    const { sql, logger, holdTtlMs, afterProgress } = this.#options;
    const progress: StreamProgress[] = [];
    for (const [usageId, stream] of this.#open) {
      const generatedBytes = stream?.generatedBytes() ?? 0;
      if (stream && generatedBytes > 0) {
        progress.push({ usageId, generatedBytes, promptTokensBound: stream.promptBound });
      }
    }
    this.#extending = extendHolds(sql, this.openIds(), new Date(Date.now() + holdTtlMs), progress)
      .then(
        () => {
          for (const { usageId } of progress) afterProgress?.(usageId);
        },
        (error: unknown) => logger.warn({ err: error }, 'could not extend the holds of in-flight calls'),
      )
      .finally(() => {
        this.#extending = null;
      });
  }
}
