/**
 * The soak's figures, from what the load recorded: per phase (the quiet baseline, then each fault until the
 * next one) the calls and their failures, the throughput held, how long after the fault calls failed, how
 * late deposits were credited, and how long subscriptions were down. Pure functions of the records.
 */
import { percentile } from '../bench/stats.ts';
import type { CallRecord, SubscriptionRecord } from './load.ts';

/** A deposit credited later than this after its confirming block was seen counts as delayed. */
export const CREDIT_DELAY_OK_MS = 3_000;

export interface CreditTiming {
  /** When the block that confirmed it was first seen. */
  confirmedAt: number;
  creditedAt: number;
}

export interface Phase {
  name: string;
  detail: string;
  /** Start of the phase (the fault's injection). */
  from: number;
  /** Start of the next phase, or the end of the load. */
  to: number;
  /** When the faulted part answered again; undefined for the baseline. */
  backAt?: number;
  /** reorg: when the API no longer counted any removed transfer as credited or pending. */
  settledAt?: number;
  /** reorg: transfers removed / of which already credited. */
  dropped?: number;
  droppedCredited?: number;
}

export type Row = Record<string, string>;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function throughput(calls: readonly CallRecord[], from: number, to: number): { mean: number; min: number } {
  const bucketCount = Math.max(1, Math.floor((to - from) / 1000));
  const buckets = new Array<number>(bucketCount).fill(0);
  for (const call of calls) {
    if (!call.served || call.end < from || call.end >= from + bucketCount * 1000) continue;
    const index = Math.floor((call.end - from) / 1000);
    buckets[index] = (buckets[index] ?? 0) + 1;
  }
  const total = buckets.reduce((sum, n) => sum + n, 0);
  return { mean: total / bucketCount, min: Math.min(...buckets) };
}

/** One row per phase: what the table in the README shows. */
export function phaseRows(
  phases: readonly Phase[],
  calls: readonly CallRecord[],
  credits: readonly CreditTiming[],
  subscriptions: readonly SubscriptionRecord[],
  loadStart: number,
  /** When each balance change of the subscribed accounts was written (one event each, if none is lost). */
  balanceChanges: readonly number[] = [],
): Row[] {
  return phases.map((phase) => {
    // By when a call ended: one in flight when a fault hit fails (or is slowed) by that fault.
    const inPhase = calls.filter((call) => call.end >= phase.from && call.end < phase.to);
    const failed = inPhase.filter((call) => !call.served);
    const kinds = new Map<string, number>();
    for (const call of failed) kinds.set(call.failure ?? '?', (kinds.get(call.failure ?? '?') ?? 0) + 1);
    const lastFailure = Math.max(phase.from, ...failed.map((call) => call.end));
    const { mean, min } = throughput(calls, phase.from, phase.to);
    // A deposit confirmed just before the next fault and credited after it began is that fault's to explain.
    const confirmed = credits.filter(
      (credit) =>
        credit.confirmedAt >= phase.from &&
        credit.confirmedAt < phase.to &&
        (credit.creditedAt < phase.to || credit.confirmedAt + CREDIT_DELAY_OK_MS < phase.to),
    );
    const delays = confirmed.map((credit) => Math.max(0, credit.creditedAt - credit.confirmedAt));
    const delayed = confirmed.filter((credit) => credit.creditedAt - credit.confirmedAt > CREDIT_DELAY_OK_MS);
    const creditingBack = Math.max(phase.from, ...delayed.map((credit) => credit.creditedAt));
    let drops = 0;
    let subscriptionsBack = phase.from;
    for (const subscription of subscriptions) {
      for (const drop of subscription.drops.filter((time) => time >= phase.from && time < phase.to)) {
        drops++;
        const reconnect = subscription.connects.find((time) => time >= drop);
        subscriptionsBack = Math.max(subscriptionsBack, reconnect ?? Number.POSITIVE_INFINITY);
      }
    }
    const baseline = phase.backAt === undefined;
    const within = (time: number) => time >= phase.from && time < phase.to;
    const expectedEvents = balanceChanges.filter(within).length;
    const receivedEvents = subscriptions.reduce(
      (n, subscription) => n + subscription.events.filter(within).length,
      0,
    );
    return {
      phase: phase.name,
      at: `${((phase.from - loadStart) / 1000).toFixed(0)} s`,
      'back after': baseline ? '' : seconds((phase.backAt as number) - phase.from),
      calls: String(inPhase.length),
      failed: String(failed.length),
      'error rate': inPhase.length ? `${((failed.length / inPhase.length) * 100).toFixed(1)} %` : '',
      failures: [...kinds].map(([kind, n]) => `${kind} ${n}`).join(', '),
      'calls ok again after': baseline ? '' : failed.length ? seconds(lastFailure - phase.from) : '0',
      'served/s mean (min 1 s)': `${mean.toFixed(1)} (${min})`,
      'latency p50 / p99': inPhase.length
        ? `${percentile(
            inPhase.map((call) => call.end - call.start),
            50,
          )} / ${percentile(
            inPhase.map((call) => call.end - call.start),
            99,
          )} ms`
        : '',
      'credit delay max': delays.length ? seconds(Math.max(...delays)) : '',
      'crediting ok again after': baseline
        ? ''
        : delayed.length
          ? seconds(creditingBack - phase.from)
          : phase.settledAt !== undefined
            ? `${seconds(phase.settledAt - phase.from)} (reorg settled)`
            : '0',
      'subscription drops': String(drops),
      'events received / written': `${receivedEvents} / ${expectedEvents}`,
      'subscriptions back after':
        baseline || drops === 0
          ? ''
          : Number.isFinite(subscriptionsBack)
            ? seconds(subscriptionsBack - phase.from)
            : 'never',
    };
  });
}

export function formatTable(rows: readonly Row[]): string {
  if (rows.length === 0) return '';
  const columns = Object.keys(rows[0] as Row);
  const width = (column: string) => Math.max(column.length, ...rows.map((row) => (row[column] ?? '').length));
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(columns.map((column) => column.padEnd(width(column)))),
    line(columns.map((column) => '-'.repeat(width(column)))),
    ...rows.map((row) => line(columns.map((column) => (row[column] ?? '').padEnd(width(column))))),
  ].join('\n');
}
