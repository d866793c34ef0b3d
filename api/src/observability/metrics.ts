/**
 * Prometheus metrics of one API process, on its own registry (several APIs can share a test process).
 *
 * Two kinds of series:
 * - counted in this process (HTTP requests, GraphQL errors by code, completions, cost and revenue):
 *   counters, summed over replicas in PromQL (`sum(rate(...))`);
 * - read from shared state at scrape time (deposits, holds, billing failures, chain / indexer / crediting
 *   heads and lag; see `platform-probe.ts`): gauges, the same on every replica (`max(...)` over replicas),
 *   cached so that scrapes never hammer the database, the indexer or the RPC.
 *
 * Money is exported in micro-USD as Prometheus numbers (float64): monitoring only, never the money path.
 */
import { DISCREPANCY_KINDS } from '@chainmeter/schema';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { SUBSCRIPTION_CHANNELS } from '../pubsub.ts';
import type { PlatformProbe } from './platform-probe.ts';

export const METRIC_PREFIX = 'chainmeter_';

export interface AppMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  graphqlErrors: Counter<'code'>;
  completions: Counter<'model' | 'billing_status'>;
  completionRefusals: Counter<'code'>;
  completionTokens: Counter<'model' | 'kind'>;
  providerCost: Counter<'model'>;
  revenue: Counter<'model'>;
  completionLatency: Histogram<'model' | 'streamed'>;
  /** Discrepancies found by the newest audit, by kind (set by whoever runs the audit in this process). */
  auditDiscrepancies: Gauge<'kind'>;
  auditLastRun: Gauge;
  /** A credited deposit whose transfer a reorg removed (compensated by an ADJUSTMENT entry). */
  creditedDepositsReorged: Counter;
  /** Calls paid per request that were served and never paid (their settlement failed after serving). */
  unpaidCalls: Counter<'scheme'>;
  /** GraphQL subscriptions of this process hearing their channel now, and ever, by channel. */
  liveSubscriptions: Gauge<'channel'>;
  subscriptionsStarted: Counter<'channel'>;
  /**
   * The relayer's ETH balance in wei (set by the relayer's periodic read; absent without a relayer or while
   * the chain cannot be read). Wei as a float64: monitoring only.
   */
  relayerGasBalance: Gauge;
  /** Records the result of an audit run: discrepancy counts by kind (missing kinds count 0). */
  recordAudit(discrepanciesByKind: Record<string, number>, finishedAt?: Date): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

export function createAppMetrics(): AppMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const name = (suffix: string) => `${METRIC_PREFIX}${suffix}`;

  const auditDiscrepancies = new Gauge({
    name: name('audit_discrepancies'),
    help: 'Discrepancies found by the newest audit run in this process, by kind',
    labelNames: ['kind'],
    registers,
  });
  const auditLastRun = new Gauge({
    name: name('audit_last_run_timestamp_seconds'),
    help: 'When the newest audit run in this process finished (unix seconds); absent before the first',
    registers,
  });

  const metrics: AppMetrics = {
    registry,
    httpRequests: new Counter({
      name: name('http_requests_total'),
      help: 'HTTP requests by method, matched route and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: name('http_request_duration_seconds'),
      help: 'Time to the response headers, by method and matched route',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    graphqlErrors: new Counter({
      name: name('graphql_errors_total'),
      help: 'GraphQL errors sent to clients, by extensions.code (INTERNAL_SERVER_ERROR for masked ones)',
      labelNames: ['code'],
      registers,
    }),
    completions: new Counter({
      name: name('completions_total'),
      help: 'Metered LLM calls by model and billing status (BILLED, NEEDS_REVIEW, NOT_CHARGED, FAILED)',
      labelNames: ['model', 'billing_status'],
      registers,
    }),
    completionRefusals: new Counter({
      name: name('completion_refusals_total'),
      help: 'LLM calls refused before the upstream was called, by error code',
      labelNames: ['code'],
      registers,
    }),
    completionTokens: new Counter({
      name: name('completion_tokens_total'),
      help: 'Tokens of settled LLM calls, by model and kind (prompt, completion)',
      labelNames: ['model', 'kind'],
      registers,
    }),
    providerCost: new Counter({
      name: name('provider_cost_micro_usd_total'),
      help: 'Provider cost of settled LLM calls in micro-USD (unknown costs, NEEDS_REVIEW, count 0)',
      labelNames: ['model'],
      registers,
    }),
    revenue: new Counter({
      name: name('revenue_micro_usd_total'),
      help: 'User price charged for settled LLM calls in micro-USD',
      labelNames: ['model'],
      registers,
    }),
    completionLatency: new Histogram({
      name: name('completion_duration_seconds'),
      help: 'Upstream latency of answered LLM calls',
      labelNames: ['model', 'streamed'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 120],
      registers,
    }),
    auditDiscrepancies,
    auditLastRun,
    unpaidCalls: new Counter({
      name: name('unpaid_calls_total'),
      help: 'Calls paid per request (x402) that were served and never paid (recorded UNPAID): an upto settlement that failed, or a settlement a deep reorg removed after its authorization expired',
      labelNames: ['scheme'],
      registers,
    }),
    creditedDepositsReorged: new Counter({
      name: name('credited_deposits_reorged_total'),
      help: 'Credited deposits whose transfer a reorg deeper than CONFIRMATIONS removed',
      registers,
    }),
    liveSubscriptions: new Gauge({
      name: name('graphql_live_subscriptions'),
      help: 'GraphQL subscriptions of this replica listening for events now, by channel',
      labelNames: ['channel'],
      registers,
    }),
    subscriptionsStarted: new Counter({
      name: name('graphql_subscriptions_started_total'),
      help: 'GraphQL subscriptions of this replica that started listening for events (the event source confirmed), by channel',
      labelNames: ['channel'],
      registers,
    }),
    relayerGasBalance: new Gauge({
      name: name('relayer_gas_balance_wei'),
      help: 'ETH balance (wei) of the relayer that submits x402 settlements and gasless top-ups',
      registers,
    }),
    recordAudit(discrepanciesByKind, finishedAt = new Date()) {
      const kinds = new Set<string>([...DISCREPANCY_KINDS, ...Object.keys(discrepanciesByKind)]);
      for (const kind of kinds) auditDiscrepancies.set({ kind }, discrepanciesByKind[kind] ?? 0);
      auditLastRun.set(finishedAt.getTime() / 1000);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
  // Every kind's series exists (at 0) before the first audit.
  for (const kind of DISCREPANCY_KINDS) auditDiscrepancies.set({ kind }, 0);
  metrics.creditedDepositsReorged.inc(0);
  for (const channel of SUBSCRIPTION_CHANNELS) {
    metrics.liveSubscriptions.set({ channel }, 0);
    metrics.subscriptionsStarted.inc({ channel }, 0);
  }
  return metrics;
}

/**
 * Gauges read from the platform's shared state at scrape time, through the probe's cache. Every gauge of
 * one scrape reads the same snapshot.
 */
export function registerPlatformGauges(metrics: AppMetrics, probe: PlatformProbe): void {
  const registers = [metrics.registry];
  const name = (suffix: string) => `${METRIC_PREFIX}${suffix}`;
  const num = (value: bigint | number) => Number(value);

  new Gauge({
    name: name('dependency_up'),
    help: 'Whether the last probe of a dependency (database, indexer, chain) succeeded',
    labelNames: ['dependency'],
    registers,
    async collect() {
      const s = await probe.snapshot();
      this.set({ dependency: 'database' }, s.database.ok ? 1 : 0);
      this.set({ dependency: 'indexer' }, s.indexer.ok ? 1 : 0);
      this.set({ dependency: 'chain' }, s.chain.ok ? 1 : 0);
    },
  });
  new Gauge({
    name: name('chain_head_block'),
    help: "The chain's newest block, from the RPC",
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.chain.ok) this.set(num(s.chain.head));
      else this.reset();
    },
  });
  new Gauge({
    name: name('indexer_head_block'),
    help: 'The newest block the indexer has processed',
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.indexer.ok) this.set(num(s.indexer.head));
      else this.reset();
    },
  });
  new Gauge({
    name: name('indexer_head_timestamp_seconds'),
    help: "Timestamp of the indexer's newest block (unix seconds); time() minus it is its staleness",
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.indexer.ok) this.set(num(s.indexer.timestamp));
      else this.reset();
    },
  });
  new Gauge({
    name: name('indexer_lag_blocks'),
    help: "Chain head minus the indexer's head (0 when the indexer is at the head)",
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.indexerLagBlocks !== null) this.set(num(s.indexerLagBlocks));
      else this.reset();
    },
  });
  new Gauge({
    name: name('confirmations_required'),
    help: 'CONFIRMATIONS: blocks on top of a transfer before it is credited',
    registers,
    collect() {
      this.set(probe.confirmations);
    },
  });
  new Gauge({
    name: name('crediting_cursor_block'),
    help: 'Block of the last transfer the crediting worker has passed (credited or skipped)',
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.database.ok && s.database.creditingCursorBlock !== null)
        this.set(num(s.database.creditingCursorBlock));
      else this.reset();
    },
  });
  new Gauge({
    name: name('crediting_lag_blocks'),
    help:
      'Indexer head minus the block of the oldest confirmed transfer not yet credited (0 when none waits); ' +
      'at least CONFIRMATIONS when one waits',
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.creditingLag) this.set(num(s.creditingLag.blocks));
      else this.reset();
    },
  });
  new Gauge({
    name: name('crediting_lag_seconds'),
    help: 'Seconds since the block of the oldest confirmed transfer not yet credited (0 when none waits)',
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.creditingLag) this.set(s.creditingLag.seconds);
      else this.reset();
    },
  });
  new Gauge({
    name: name('deposits'),
    help: 'Deposits of the configured chain by status (PENDING, CREDITED, REORGED)',
    labelNames: ['status'],
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (!s.database.ok) return this.reset();
      for (const [status, row] of Object.entries(s.database.deposits)) this.set({ status }, row.count);
    },
  });
  new Gauge({
    name: name('deposits_micro_usd'),
    help: 'Sum of deposit amounts of the configured chain by status, in micro-USD',
    labelNames: ['status'],
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (!s.database.ok) return this.reset();
      for (const [status, row] of Object.entries(s.database.deposits)) this.set({ status }, num(row.amount));
    },
  });
  new Gauge({
    name: name('oldest_pending_deposit_seconds'),
    help: 'Age of the oldest PENDING deposit (0 when none)',
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (s.database.ok) this.set(s.database.oldestPendingSeconds);
      else this.reset();
    },
  });
  new Gauge({
    name: name('holds_outstanding'),
    help: 'LLM calls holding credits (HELD) or whose settlement failed and awaits a retry (UNSETTLED)',
    labelNames: ['status'],
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (!s.database.ok) return this.reset();
      this.set({ status: 'HELD' }, s.database.held.count);
      this.set({ status: 'UNSETTLED' }, s.database.unsettled.count);
    },
  });
  new Gauge({
    name: name('holds_outstanding_micro_usd'),
    help: 'Credits held by outstanding LLM calls (HELD, UNSETTLED), in micro-USD',
    labelNames: ['status'],
    registers,
    async collect() {
      const s = await probe.snapshot();
      if (!s.database.ok) return this.reset();
      this.set({ status: 'HELD' }, num(s.database.held.amount));
      this.set({ status: 'UNSETTLED' }, num(s.database.unsettled.amount));
    },
  });
  new Gauge({
    name: name('usage_needs_review'),
    help: 'Settled LLM calls whose provider cost could not be determined (NEEDS_REVIEW)',
    registers,
    async collect() {
      const s = await probe.slowSnapshot();
      if (s.ok) this.set(s.needsReview);
      else this.reset();
    },
  });
  new Gauge({
    name: name('settlements_queued_in_memory'),
    help: 'Settlements that could not even be recorded as UNSETTLED, retried from this process memory',
    registers,
    collect() {
      this.set(probe.queuedSettlements());
    },
  });
}
