/**
 * What the webhook tests share: an API configuration that polls and retries fast, and the receivers a test
 * file starts (closed together at the end).
 */
import { randomUUID } from 'node:crypto';
import type { ApiConfig } from '../../src/env.ts';
import { testApiConfig } from './config.ts';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.ts';

/**
 * An API on `databaseUrl` crediting from `indexerUrl` (2 confirmations), polling crediting and deliveries
 * every 50 ms and retrying on a 50 ms base (at most 200 ms), so that no test waits on the production
 * backoff; its own rate-limit keys. `env` goes last.
 */
export function webhookTestConfig(
  urls: { databaseUrl: string; indexerUrl: string },
  env: Record<string, string> = {},
): ApiConfig {
  const loaded = testApiConfig({
    DATABASE_URL: urls.databaseUrl,
    INDEXER_URL: urls.indexerUrl,
    CONFIRMATIONS: '2',
    CREDITING_POLL_MS: '50',
    RATE_LIMIT_IP_PER_MINUTE: '1000',
    METRICS_CACHE_MS: '0',
    WEBHOOK_POLL_MS: '50',
    WEBHOOK_RETRY_BASE_DELAY_MS: '50',
    WEBHOOK_RETRY_MAX_DELAY_MS: '200',
    ...env,
  });
  return { ...loaded, rateLimits: { ...loaded.rateLimits, keyPrefix: `cm:rl:test:${randomUUID()}` } };
}

/** Starts receivers for a test file; `closeAll` (in its `afterAll`) closes every one. */
export function webhookReceivers(): { start(): Promise<WebhookReceiver>; closeAll(): Promise<void> } {
  const started: WebhookReceiver[] = [];
  return {
    async start() {
      const receiver = await startWebhookReceiver();
      started.push(receiver);
      return receiver;
    },
    async closeAll() {
      for (const receiver of started.splice(0)) await receiver.close();
    },
  };
}
