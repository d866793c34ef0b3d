/**
 * What the platform looks like right now, for `/metrics` and `/readyz`: the chain's head (RPC), the
 * indexer's head, the crediting lag, and a few counts read from the database. Every source is cached for
 * a short time and bounded by a timeout, so a scrape or a readiness probe costs at most a handful of cheap
 * queries per cache period whatever the scrape rate, and a hung dependency cannot hang either endpoint.
 *
 * The database reads use partial indexes (`deposits_pending_idx`, `usage_records_open_idx`) or small
 * tables, except the deposit counts by status (one scan of `deposits`: one row per payment) and the
 * NEEDS_REVIEW count, which scans settled usage and so has its own, longer cache.
 */
import type { Orm } from '../db/orm.ts';
import { type SqlRunner, sqlFor } from '../db/sql.ts';
import type { IndexerClient } from '../modules/deposits/indexer.client.ts';
import { countNeedsReview, readDatabaseState } from './probe.store.ts';

export interface ChainHeadSource {
  getBlockNumber(args?: { cacheTime?: number }): Promise<bigint>;
}

export type Probed<T> = ({ ok: true } & T) | { ok: false; error: string };

export interface DatabaseState {
  deposits: Record<'PENDING' | 'CREDITED' | 'REORGED', { count: number; amount: bigint }>;
  creditingCursor: { blockNumber: bigint; logIndex: number } | null;
  creditingCursorBlock: bigint | null;
  oldestPendingSeconds: number;
  held: { count: number; amount: bigint };
  unsettled: { count: number; amount: bigint };
}

export interface PlatformSnapshot {
  takenAt: Date;
  chain: Probed<{ head: bigint }>;
  indexer: Probed<{ head: bigint; timestamp: bigint }>;
  database: Probed<DatabaseState>;
  /** Chain head minus indexer head, at least 0; null when either is unknown. */
  indexerLagBlocks: bigint | null;
  /** The oldest confirmed transfer not yet credited; zeros when none waits; null when unknown. */
  creditingLag: { blocks: bigint; seconds: number } | null;
}

export interface PlatformProbe {
  readonly confirmations: number;
  /** Cached for `cacheMs`; concurrent callers share one probe. */
  snapshot(): Promise<PlatformSnapshot>;
  /** The expensive counts, cached for `slowCacheMs`. */
  slowSnapshot(): Promise<Probed<{ needsReview: number }>>;
  /** The chain's and the indexer's heads only (what readiness needs), cached for `headCacheMs`. */
  heads(): Promise<Pick<PlatformSnapshot, 'chain' | 'indexer' | 'indexerLagBlocks'>>;
  /** Settlements the metering service keeps in memory. */
  queuedSettlements(): number;
}

export interface PlatformProbeOptions {
  orm: Orm;
  chain: ChainHeadSource;
  indexer: IndexerClient;
  chainId: number;
  confirmations: number;
  /** Cache of the full snapshot (metrics). Default 5 s. */
  cacheMs?: number;
  /** Cache of the chain and indexer heads (readiness). Default 1 s, or `cacheMs` when shorter. */
  headCacheMs?: number;
  /** Cache of the expensive counts. Default 60 s. */
  slowCacheMs?: number;
  /** Bound on each source. Default 2.5 s. */
  timeoutMs?: number;
  queuedSettlements?: () => number;
  now?: () => Date;
}

/** A function whose result is kept for `ttlMs` after it settles; callers during a load share it. */
function cached<T>(ttlMs: number, load: () => Promise<T>): () => Promise<T> {
  let current: { promise: Promise<T>; settledAt: number | null } | null = null;
  return () => {
    if (current && (current.settledAt === null || Date.now() - current.settledAt < ttlMs)) {
      return current.promise;
    }
    const entry: { promise: Promise<T>; settledAt: number | null } = { promise: load(), settledAt: null };
    entry.promise.then(
      () => {
        entry.settledAt = Date.now();
      },
      () => {
        entry.settledAt = Date.now();
      },
    );
    current = entry;
    return entry.promise;
  };
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function probe<T extends object>(load: () => Promise<T>): Promise<Probed<T>> {
  try {
    return { ok: true, ...(await load()) };
  } catch (error) {
    return { ok: false, error: firstLine(error) };
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]?.slice(0, 300) ?? 'unknown error';
}

/**
 * @example
 * const probe = createPlatformProbe({ orm, chain, indexer: createIndexerClient(url), chainId, confirmations });
 * const { indexer } = await probe.heads();
 */
export function createPlatformProbe(options: PlatformProbeOptions): PlatformProbe {
  const { orm, chain, indexer, chainId, confirmations } = options;
  const timeoutMs = options.timeoutMs ?? 2_500;
  const headCacheMs = options.headCacheMs ?? Math.min(1_000, options.cacheMs ?? 5_000);
  const now = options.now ?? (() => new Date());
  const sql = sqlFor(orm);

  const chainHead = cached(headCacheMs, () =>
    probe(async () => ({
      head: await withTimeout(chain.getBlockNumber({ cacheTime: 0 }), timeoutMs, 'the chain RPC'),
    })),
  );
  const indexerHead = cached(headCacheMs, () =>
    probe(async () => {
      const head = await withTimeout(indexer.head(), timeoutMs, 'the indexer');
      if (head.chainId !== chainId) {
        throw new Error(`the indexer follows chain ${head.chainId}, this API credits chain ${chainId}`);
      }
      return { head: head.blockNumber, timestamp: head.timestamp };
    }),
  );

  async function heads() {
    const [chainState, indexerState] = await Promise.all([chainHead(), indexerHead()]);
    const indexerLagBlocks =
      chainState.ok && indexerState.ok
        ? chainState.head > indexerState.head
          ? chainState.head - indexerState.head
          : 0n
        : null;
    return { chain: chainState, indexer: indexerState, indexerLagBlocks };
  }

  const readDatabase = () =>
    probe<DatabaseState>(() => withTimeout(databaseState(sql, chainId), timeoutMs, 'the database'));

  const snapshot = cached(options.cacheMs ?? 5_000, async (): Promise<PlatformSnapshot> => {
    const [headState, database] = await Promise.all([heads(), readDatabase()]);
    let creditingLag: PlatformSnapshot['creditingLag'] = null;
    if (headState.indexer.ok && database.ok) {
      const head = headState.indexer.head;
      const confirmedTo = head - BigInt(confirmations);
      try {
        const [waiting] =
          confirmedTo < 0n
            ? []
            : await withTimeout(
                indexer.transfersAfter(database.creditingCursor, confirmedTo, 1),
                timeoutMs,
                'the indexer',
              );
        creditingLag = waiting
          ? {
              blocks: head - waiting.blockNumber,
              seconds: Math.max(0, now().getTime() / 1000 - Number(waiting.timestamp)),
            }
          : { blocks: 0n, seconds: 0 };
      } catch {
        creditingLag = null;
      }
    }
    return { takenAt: now(), ...headState, database, creditingLag };
  });

  const slowSnapshot = cached(options.slowCacheMs ?? 60_000, () =>
    probe(async () => {
      const needsReview = await withTimeout(countNeedsReview(sql), timeoutMs * 4, 'the database');
      return { needsReview };
    }),
  );

  return {
    confirmations,
    snapshot,
    slowSnapshot,
    heads,
    queuedSettlements: options.queuedSettlements ?? (() => 0),
  };
}

async function databaseState(sql: SqlRunner, chainId: number): Promise<DatabaseState> {
  const row = await readDatabaseState(sql, chainId);
  const deposits: DatabaseState['deposits'] = {
    PENDING: { count: 0, amount: 0n },
    CREDITED: { count: 0, amount: 0n },
    REORGED: { count: 0, amount: 0n },
  };
  for (const d of row.deposits ?? []) {
    if (d.status in deposits) {
      deposits[d.status as keyof typeof deposits] = { count: Number(d.count), amount: BigInt(d.amount) };
    }
  }
  const holds = new Map((row.holds ?? []).map((h) => [h.status, h]));
  const holdOf = (status: string) => {
    const h = holds.get(status);
    return h ? { count: Number(h.count), amount: BigInt(h.amount) } : { count: 0, amount: 0n };
  };
  const cursorBlock = row.cursor_block == null ? null : BigInt(row.cursor_block);
  return {
    deposits,
    creditingCursor:
      cursorBlock === null ? null : { blockNumber: cursorBlock, logIndex: row.cursor_log_index ?? 0 },
    creditingCursorBlock: cursorBlock,
    oldestPendingSeconds: row.oldest_pending_seconds == null ? 0 : Number(row.oldest_pending_seconds),
    held: holdOf('HELD'),
    unsettled: holdOf('UNSETTLED'),
  };
}
