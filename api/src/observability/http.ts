/**
 * Per HTTP request: a request id (the caller's `x-request-id` when it is a sane token, else a new UUID),
 * echoed in the response's `x-request-id` unless a route sets its own (the `/v1` routes answer with the
 * metered call's id, like OpenAI; both ids are then logged), a request-scoped child logger, one log line
 * when the response headers are ready, and the HTTP metrics by matched route (bounded label values).
 * Only the method, the path (never the query string) and the status are logged: no header, no body.
 */
import { randomUUID } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { clientWentAway, requestHeader } from '../http/node-request.ts';
import type { AppMetrics } from './metrics.ts';

const REQUEST_ID_HEADER = 'x-request-id';

/** Accept a caller's id only if it is a short token (no spaces, quotes or control characters). */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Probes and scrapes: logged at debug, so they do not drown the request log. */
const QUIET_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

export interface RequestVariables {
  requestId: string;
  log: Logger;
}

function requestIdOf(incoming: string | undefined | null): string {
  return incoming && REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID();
}

export interface RequestObservabilityOptions {
  logger: Logger;
  metrics: AppMetrics;
}

export function requestObservability(
  options: RequestObservabilityOptions,
): MiddlewareHandler<{ Variables: RequestVariables }> {
  const { logger, metrics } = options;
  return async (c, next) => {
    const started = performance.now();
    const requestId = requestIdOf(requestHeader(c, REQUEST_ID_HEADER));
    const log = logger.child({ requestId });
    c.set('requestId', requestId);
    c.set('log', log);
    let failed: unknown = null;
    try {
      await next();
    } catch (error) {
      failed = error;
      throw error;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      // A client that goes away (a closed tab ending an SSE subscription) is not a server failure: 499.
      // An error is either answered by the app's error handler (`c.error`) or escaped it (`failed`).
      const clientGone = (failed !== null || c.error !== undefined) && clientWentAway(c);
      const status = clientGone ? 499 : failed ? 500 : c.res.status;
      const route = routeOf(c, status);
      metrics.httpRequests.inc({ method: c.req.method, route, status: String(status) });
      metrics.httpDuration.observe({ method: c.req.method, route }, seconds);
      if (!failed) echoRequestId(c, requestId);
      const own = failed ? null : c.res.headers.get(REQUEST_ID_HEADER);
      const line = {
        method: c.req.method,
        path: c.req.path,
        route,
        status,
        durationMs: Math.round(seconds * 1000),
        ...(own && own !== requestId ? { responseRequestId: own } : {}),
        ...(failed ? { err: failed } : {}),
      };
      // A probe's 503 is its answer, not a failure of the API: /readyz says why in its body.
      if ((QUIET_PATHS.has(c.req.path) && !failed) || clientGone) log.debug(line, 'request');
      else if (status >= 500) log.error(line, 'request failed');
      else log.info(line, 'request');
    }
  };
}

function routeOf(c: Context, status: number): string {
  const route = c.req.routePath;
  // Only the catch-all middleware matched: label it as such rather than by the (unbounded) path.
  if (!route || route === '*' || route === '/*') return status === 404 ? 'unmatched' : 'static';
  return route;
}

function echoRequestId(c: Context, requestId: string): void {
  if (c.res.headers.has(REQUEST_ID_HEADER)) return;
  try {
    c.res.headers.set(REQUEST_ID_HEADER, requestId);
  } catch {
    // Immutable headers (a fetched Response): copy the response once.
    const copy = new Response(c.res.body, c.res);
    copy.headers.set(REQUEST_ID_HEADER, requestId);
    c.res = copy;
  }
}
