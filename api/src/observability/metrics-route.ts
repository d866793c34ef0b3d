/**
 * `GET /metrics`: the Prometheus exposition, behind `Authorization: Bearer <METRICS_TOKEN>` when the token is
 * set. In production it is never open: without METRICS_TOKEN every scrape is refused (403) and the start logs
 * a warning, since the metrics name models, revenue, balances held and the platform's heads and lags.
 * In development and test an unset token leaves it open, for a local Prometheus.
 */
import type { Handler } from 'hono';
import type { Logger } from 'pino';
import type { ApiConfig } from '../env.ts';
import { bearerToken } from '../http/caller.ts';
import { sameSecret } from './logger.ts';
import type { AppMetrics } from './metrics.ts';

export interface MetricsRouteOptions {
  config: Pick<ApiConfig, 'env' | 'observability'>;
  metrics: Pick<AppMetrics, 'render'>;
  logger: Pick<Logger, 'warn'>;
}

export function metricsRoute({ config, metrics, logger }: MetricsRouteOptions): Handler {
  const token = config.observability.metricsToken;
  const closed = !token && config.env === 'production';
  if (closed) {
    logger.warn(
      'METRICS_TOKEN is not set: /metrics refuses every scrape in production. Set METRICS_TOKEN (16+ characters) and scrape with Authorization: Bearer <METRICS_TOKEN>.',
    );
  }
  return async (c) => {
    if (closed) {
      return c.json({ error: 'metrics are off: this production API has no METRICS_TOKEN' }, 403);
    }
    if (token && !sameSecret(bearerToken(c.req.header('authorization')), token)) {
      return c.json({ error: 'metrics need Authorization: Bearer <METRICS_TOKEN>' }, 401);
    }
    const { contentType, body } = await metrics.render();
    return c.body(body, 200, { 'content-type': contentType, 'cache-control': 'no-store' });
  };
}
