/**
 * The webhook series on `/metrics`, registered on the app's registry (see observability/metrics.ts):
 * attempts by outcome, attempt latency, the time from an event to its delivery, deliveries given up,
 * attempts in flight in this process.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WebhookMetrics {
  attempts: Counter<'outcome'>;
  attemptDuration: Histogram;
  eventToDelivery: Histogram;
  givenUp: Counter;
  inFlight: Gauge;
}

export function createWebhookMetrics(registry: Registry, prefix: string): WebhookMetrics {
  const registers = [registry];
  return {
    attempts: new Counter({
      name: `${prefix}webhook_attempts_total`,
      help: 'Webhook HTTP attempts by outcome (delivered: a 2xx; failed: anything else, no answer included)',
      labelNames: ['outcome'],
      registers,
    }),
    attemptDuration: new Histogram({
      name: `${prefix}webhook_attempt_duration_seconds`,
      help: 'Time of one webhook attempt, connection to response',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    eventToDelivery: new Histogram({
      name: `${prefix}webhook_event_to_delivery_seconds`,
      help: 'From the event (its transaction) to its webhook delivered, retries included',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400],
      registers,
    }),
    givenUp: new Counter({
      name: `${prefix}webhook_deliveries_failed_total`,
      help: 'Webhook deliveries given up (FAILED) after the retry window',
      registers,
    }),
    inFlight: new Gauge({
      name: `${prefix}webhook_attempts_in_flight`,
      help: 'Webhook attempts in flight in this process',
      registers,
    }),
  };
}
