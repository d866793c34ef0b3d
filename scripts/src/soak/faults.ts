/**
 * The faults the soak injects, on a schedule, while the load runs:
 * - `replica-kill`: SIGKILL of one API replica (in-flight calls die with it), started again at once on its
 *   port, as a supervisor (compose's `restart: unless-stopped`) would;
 * - `redis-restart`: SIGKILL of Redis, then a new empty one on the same port (pub/sub and rate limits);
 * - `ponder-restart`: SIGINT to Ponder (not SIGTERM: DESIGN.md), then `ponder start` again on its port;
 * - `postgres-pause`: every platform connection to PostgreSQL stalls for 5 s (SIGSTOP/SIGCONT of the relay
 *   they go through: stack.ts, pg-relay.ts);
 * - `reorg`: `anvil_reorg` of CONFIRMATIONS + 4 blocks: their transfers vanish from the chain, credited ones
 *   included, and the API must take those credits back. It waits (up to 20 s) for crediting to catch up
 *   first, so that the blocks it replaces hold credited transfers.
 */
import { reorg } from '@chainmeter/testkit/anvil';
import type { Hash } from 'viem';
import type { BlockWatcher } from './chain.ts';
import { sleep } from './processes.ts';
import { CONFIRMATIONS, type Stack } from './stack.ts';

/** In this order, each cycle: Ponder's restart last, since it takes longest to come back. */
export const FAULT_KINDS = [
  'replica-kill',
  'reorg',
  'redis-restart',
  'postgres-pause',
  'ponder-restart',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const POSTGRES_PAUSE_MS = 5_000;
export const REORG_DEPTH = CONFIRMATIONS + 4;

export interface ScheduledFault {
  kind: FaultKind;
  /** Since the load started. */
  offsetMs: number;
}

/**
 * A quiet baseline first (15 % of the run, 8 to 60 s), then the faults one after another at even intervals,
 * every kind once per cycle; a cycle per 5 minutes of run (at least one).
 */
export function faultSchedule(durationMs: number): ScheduledFault[] {
  const baselineMs = Math.min(60_000, Math.max(8_000, Math.round(durationMs * 0.15)));
  const cycles = Math.max(1, Math.round(durationMs / 300_000));
  const count = cycles * FAULT_KINDS.length;
  const slotMs = Math.max(1_000, Math.floor((durationMs - baselineMs) / count));
  return Array.from({ length: count }, (_, i) => ({
    kind: FAULT_KINDS[i % FAULT_KINDS.length] as FaultKind,
    offsetMs: baselineMs + i * slotMs,
  }));
}

export interface FaultRecord {
  kind: FaultKind;
  /** What exactly was done. */
  detail: string;
  /** When it was injected. */
  at: number;
  /** When the faulted part answered again (the replica's /healthz, Redis PING, Ponder caught up, the relay resumed). */
  backAt: number;
  /** reorg: the transfers it removed from the chain, and how many of them the API had already credited. */
  dropped?: Hash[];
  droppedCredited?: number;
  /** reorg: when the API no longer counted any removed transfer as credited or pending. */
  settledAt?: number;
}

export interface FaultContext {
  stack: Stack;
  watcher: BlockWatcher;
  /** Which of these transfers the API has credited now (lowercase hashes, read from its database). */
  creditedAmong(txHashes: readonly Hash[]): Promise<Set<string>>;
}

export async function injectFault(
  kind: FaultKind,
  cycle: number,
  context: FaultContext,
): Promise<FaultRecord> {
  const { stack, watcher } = context;
  const at = Date.now();
  switch (kind) {
    case 'replica-kill': {
      const index = cycle % stack.replicas.length;
      await stack.killReplica(index);
      await stack.startReplica(index);
      return {
        kind,
        at,
        backAt: Date.now(),
        detail: `SIGKILL ${stack.replicas[index]?.name}, restarted at once`,
      };
    }
    case 'redis-restart': {
      await stack.restartRedis();
      return { kind, at, backAt: Date.now(), detail: 'SIGKILL redis-server, a new empty one on its port' };
    }
    case 'ponder-restart': {
      const { stoppedMs } = await stack.restartIndexer();
      const backAt = Date.now();
      return {
        kind,
        at,
        backAt,
        detail: `SIGINT ponder (gone after ${(stoppedMs / 1000).toFixed(1)} s), \`ponder start\` again on its port (caught up ${((backAt - at - stoppedMs) / 1000).toFixed(1)} s later)`,
      };
    }
    case 'postgres-pause': {
      stack.pausePostgres(true);
      try {
        await sleep(POSTGRES_PAUSE_MS);
      } finally {
        stack.pausePostgres(false);
      }
      return {
        kind,
        at,
        backAt: Date.now(),
        detail: `every connection to PostgreSQL stalled ${POSTGRES_PAUSE_MS / 1000} s`,
      };
    }
    case 'reorg': {
      await watcher.resync(watcher.head > 10n ? watcher.head - 10n : 0n);
      // Crediting caught up first: the transfers of the blocks the reorg replaces are credited where confirmed.
      const confirmed = () =>
        [...watcher.blockOf]
          .filter(([, block]) => block <= watcher.head - BigInt(CONFIRMATIONS))
          .map(([hash]) => hash);
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const wanted = confirmed().slice(-50);
        if ((await context.creditedAmong(wanted)).size === wanted.length) break;
        await sleep(200);
      }
      const from = watcher.head - BigInt(REORG_DEPTH) - 1n;
      const before = [...watcher.blockOf].filter(([, block]) => block >= from).map(([hash]) => hash);
      const credited = await context.creditedAmong(before);
      await reorg(stack.rpcUrl, REORG_DEPTH);
      const reorgedAt = Date.now();
      await watcher.resync(from);
      const dropped = before.filter((hash) => !watcher.blockOf.has(hash));
      return {
        kind,
        at: reorgedAt,
        backAt: reorgedAt,
        detail: `anvil_reorg of ${REORG_DEPTH} blocks (CONFIRMATIONS ${CONFIRMATIONS}): ${dropped.length} transfers removed`,
        dropped,
        droppedCredited: dropped.filter((hash) => credited.has(hash.toLowerCase())).length,
      };
    }
  }
}
