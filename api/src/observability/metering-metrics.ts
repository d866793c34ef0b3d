/**
 * Counts metered LLM calls from outside the metering module: a decorator over `MeteringService` that
 * observes what `complete` and `stream` return (the settled usage) or throw. The counts are what this
 * process decided to bill; a settlement that fails is retried from its durable record with the same
 * amounts, so the counters match the usage table except across a crash between answer and record.
 *
 * The `model` label takes a model name only once the upstream has answered it (or when it is priced):
 * a caller cannot mint label values by sending made-up model names.
 */

import { Gauge } from 'prom-client';
import { expectedCodeOf } from '../errors.ts';
import type { ChatRequest } from '../modules/metering/chat-request.ts';
import { CompletionFailedError } from '../modules/metering/metering.errors.ts';
import type { MeteringService, UsageView } from '../modules/metering/metering.service.ts';
import type { Viewer } from '../viewer.ts';
import { type AppMetrics, METRIC_PREFIX } from './metrics.ts';

const MAX_MODELS = 200;

export function instrumentMetering(
  service: MeteringService,
  metrics: AppMetrics,
  pricedModels: Iterable<string> = [],
): MeteringService {
  const known = new Set<string>(pricedModels);
  new Gauge({
    name: `${METRIC_PREFIX}settlement_batches`,
    help: 'Charged settlement batches since start, by path: guarded (one statement from the ledger head this process knew) or stale (the head had moved, settled through the lock)',
    labelNames: ['path'],
    registers: [metrics.registry],
    collect() {
      const batches = service.settlementBatches();
      this.set({ path: 'guarded' }, batches.guarded);
      this.set({ path: 'stale' }, batches.stale);
    },
  });
  const modelLabel = (model: string) => (known.has(model) ? model : 'other');

  function settled(usage: UsageView | null, request: ChatRequest, streamed: boolean): void {
    if (!usage) {
      metrics.completions.inc({ model: modelLabel(request.model), billing_status: 'NOT_CHARGED' });
      return;
    }
    if (known.size < MAX_MODELS) known.add(usage.model);
    const model = modelLabel(usage.model);
    metrics.completions.inc({ model, billing_status: usage.billingStatus });
    metrics.completionTokens.inc({ model, kind: 'prompt' }, usage.promptTokens);
    metrics.completionTokens.inc({ model, kind: 'completion' }, usage.completionTokens);
    metrics.providerCost.inc({ model }, Number(usage.providerCost ?? 0n));
    metrics.revenue.inc({ model }, Number(usage.userPrice));
    if (usage.latencyMs !== null) {
      metrics.completionLatency.observe({ model, streamed: String(streamed) }, usage.latencyMs / 1000);
    }
  }

  function failed(error: unknown, request: ChatRequest): void {
    if (error instanceof CompletionFailedError) {
      metrics.completions.inc({ model: modelLabel(request.model), billing_status: 'FAILED' });
      return;
    }
    metrics.completionRefusals.inc({ code: expectedCodeOf(error) ?? 'INTERNAL_SERVER_ERROR' });
  }

  return {
    ...service,
    async complete(viewer: Viewer, request: ChatRequest, options) {
      try {
        const result = await service.complete(viewer, request, options);
        settled(result.usage, request, false);
        return result;
      } catch (error) {
        failed(error, request);
        throw error;
      }
    },
    async completePaid(payment, request, options) {
      try {
        const result = await service.completePaid(payment, request, options);
        settled(result.usage, request, false);
        return result;
      } catch (error) {
        failed(error, request);
        throw error;
      }
    },
    async streamPaid(payment, request, options) {
      let metered: Awaited<ReturnType<MeteringService['streamPaid']>>;
      try {
        metered = await service.streamPaid(payment, request, options);
      } catch (error) {
        failed(error, request);
        throw error;
      }
      metered.settled.then(
        (usage) => settled(usage, request, true),
        () => metrics.completions.inc({ model: modelLabel(request.model), billing_status: 'FAILED' }),
      );
      return metered;
    },
    async stream(viewer: Viewer, request: ChatRequest, options) {
      let metered: Awaited<ReturnType<MeteringService['stream']>>;
      try {
        metered = await service.stream(viewer, request, options);
      } catch (error) {
        failed(error, request);
        throw error;
      }
      metered.settled.then(
        (usage) => settled(usage, request, true),
        () => metrics.completions.inc({ model: modelLabel(request.model), billing_status: 'FAILED' }),
      );
      return metered;
    },
  };
}
