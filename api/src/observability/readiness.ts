/**
 * `/readyz`: may this replica take traffic? Ready when the database answers and the indexer answers
 * within `maxIndexerLagBlocks` of the chain's head. A chain RPC that does not answer is reported but does
 * not by itself make the API unready (reads, sign-in and metered calls still work; the indexer's own
 * head, which needs the RPC, is the crediting check). The body names every check, and `failing` lists
 * what is not ready, so an operator reading one probe knows where to look.
 */
import type { Orm } from '../db/orm.ts';
import { sqlFor } from '../db/sql.ts';
import { type PlatformProbe, withTimeout } from './platform-probe.ts';
import { pingDatabase } from './probe.store.ts';

export interface ReadinessCheck {
  ok: boolean;
  error?: string;
  [detail: string]: unknown;
}

export interface Readiness {
  ready: boolean;
  /** Names of the checks that failed, e.g. `["indexer"]`. */
  failing: string[];
  checks: { database: ReadinessCheck; indexer: ReadinessCheck; chain: ReadinessCheck };
}

export interface ReadinessOptions {
  orm: Orm;
  probe: PlatformProbe;
  maxIndexerLagBlocks: number;
  timeoutMs?: number;
}

export async function checkReadiness(options: ReadinessOptions): Promise<Readiness> {
  const { orm, probe, maxIndexerLagBlocks } = options;
  const started = performance.now();
  const [database, heads] = await Promise.all([
    withTimeout(pingDatabase(sqlFor(orm)), options.timeoutMs ?? 2_000, 'the database')
      .then((): ReadinessCheck => ({ ok: true, latencyMs: Math.round(performance.now() - started) }))
      .catch((error: unknown): ReadinessCheck => ({ ok: false, error: (error as Error).message })),
    probe.heads(),
  ]);

  const chain: ReadinessCheck = heads.chain.ok
    ? { ok: true, head: heads.chain.head.toString() }
    : { ok: false, error: heads.chain.error };

  let indexer: ReadinessCheck;
  if (!heads.indexer.ok) {
    indexer = { ok: false, error: heads.indexer.error };
  } else if (heads.indexerLagBlocks !== null && heads.indexerLagBlocks > BigInt(maxIndexerLagBlocks)) {
    indexer = {
      ok: false,
      head: heads.indexer.head.toString(),
      lagBlocks: heads.indexerLagBlocks.toString(),
      maxLagBlocks: maxIndexerLagBlocks,
      error: `the indexer is ${heads.indexerLagBlocks} blocks behind the chain (at most ${maxIndexerLagBlocks})`,
    };
  } else {
    indexer = {
      ok: true,
      head: heads.indexer.head.toString(),
      lagBlocks: heads.indexerLagBlocks?.toString() ?? null,
      maxLagBlocks: maxIndexerLagBlocks,
    };
  }

  const checks = { database, indexer, chain };
  // The chain check is informational (see the header comment).
  const failing = (['database', 'indexer'] as const).filter((name) => !checks[name].ok);
  return { ready: failing.length === 0, failing, checks };
}
