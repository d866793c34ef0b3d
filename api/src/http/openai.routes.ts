/**
 * The OpenAI-compatible REST API under `/v1`, billed exactly like `createCompletion`:
 * - `POST /v1/chat/completions` (JSON or, with `stream: true`, server-sent events: openai.sse.ts),
 * - `GET /v1/models`,
 * - `GET /v1/usage/export?format=csv|json&from=&to=`: the caller's usage rows, oldest first, streamed
 *   page by page (usage-export.ts).
 * The official `openai` client works unchanged with `baseURL: <origin>/v1` and an API key (or a session
 * token) as its `apiKey`. Errors use OpenAI's shape (openai.errors.ts): 400 bad input, 401 no or bad
 * credential, 402 insufficient credits, 429 rate limited (with `Retry-After`), 502 upstream failure, 504
 * upstream timeout. Without `Authorization` and with x402 on, the call is paid per request (openai.x402.ts:
 * 402 with `PAYMENT-REQUIRED`, then served against `PAYMENT-SIGNATURE`). A model without a price is a 400 with `code: "model_not_priced"` (the upstream is not
 * called); `GET /v1/models` lists only the models that can be billed. A credential never appears in an error.
 */
import { type Context, Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import { cors } from 'hono/cors';
import type { AppServices } from '../context.ts';
import { parseChatRequest } from '../modules/metering/chat-request.ts';
import { failedAfterKeyCheck } from '../modules/metering/metering.errors.ts';
import { iterateUsage } from '../modules/metering/usage.service.ts';
import { parseDateTime } from '../schema/date-time.ts';
import { MAX_REQUEST_BODY_BYTES } from './body-limit.ts';
import { type Caller, resolveCaller, SESSION_COOKIE } from './caller.ts';
import { clientGoneSignal, readJsonBody, requestHeader } from './node-request.ts';
import { openAiError, openAiErrorFor, unauthorized } from './openai.errors.ts';
import { completionEventStream, stalledClientOf } from './openai.sse.ts';
import { PAYMENT_HEADERS, paidCompletion } from './openai.x402.ts';
import { usageExportStream } from './usage-export.ts';

/**
 * The caller of a read (models, the usage export): `Authorization: Bearer`, or the web client's httpOnly
 * session cookie, so its download links work. A cookie never authorizes a POST, so another site cannot
 * make a signed-in browser spend credits.
 */
function callerOfRead(c: Context, services: AppServices): Promise<Caller | null> {
  return resolveCaller(services, {
    authorization: [c.req.header('authorization')],
    sessionCookie:
      c.req.method === 'GET' ? { value: getCookie(c, SESSION_COOKIE), accepted: true } : undefined,
  });
}

/**
 * The caller of a metered call: only the POST's `Authorization` header counts (never the cookie). An API
 * key this replica authenticated lately is taken on trust with a `keyCheck` its hold makes (one round trip
 * fewer per call); `recheck` reads the key's row now, for an answer given without reaching the hold.
 */
function callerOfCompletion(c: Context, services: AppServices, recheck = false): Promise<Caller | null> {
  return resolveCaller(
    services,
    { authorization: [requestHeader(c, 'authorization')] },
    { recentApiKeys: recheck ? 'refresh' : 'claim' },
  );
}

export function openAiRoutes(services: AppServices): Hono {
  const app = new Hono();
  const { metering, logger } = services;
  // Whatever escapes a route (authenticating with the database down, say) still answers in OpenAI's shape.
  app.onError((error, c) => openAiErrorFor(c, logger, error));
  const corsOrigins = services.config.security.corsOrigins;
  if (corsOrigins.length > 0) {
    // A browser paying per request reads the x402 headers: they must be exposed to it.
    app.use(
      '/v1/*',
      cors({
        origin: [...corsOrigins],
        allowMethods: ['GET', 'POST'],
        allowHeaders: ['content-type', 'authorization', 'payment-signature'],
        exposeHeaders: [...PAYMENT_HEADERS, 'x-request-id'],
        maxAge: 600,
      }),
    );
  }

  app.post('/v1/chat/completions', async (c) => {
    // No credential and x402 on: the call is paid per request (openai.x402.ts).
    if (services.x402 && requestHeader(c, 'authorization') === undefined) {
      return paidCompletion(c, services, services.x402);
    }
    const caller = await callerOfCompletion(c, services);
    if (!caller) return unauthorized(c);
    const { viewer, keyCheck } = caller;
    /** An answer given without the hold: a key taken on trust is checked first, so a dead key gets 401. */
    const unlessKeyDead = async (answer: () => Response, error?: unknown): Promise<Response> => {
      if (!keyCheck || (error !== undefined && failedAfterKeyCheck(error))) return answer();
      const live = await callerOfCompletion(c, services, true);
      return live ? answer() : unauthorized(c);
    };
    const body = await readJsonBody(c, MAX_REQUEST_BODY_BYTES);
    if (!body.ok) {
      return unlessKeyDead(() =>
        body.reason === 'too_large'
          ? openAiError(c, 413, {
              message: 'Request body too large',
              type: 'invalid_request_error',
              code: 'body_too_large',
            })
          : openAiError(c, 400, {
              message: 'The request body is not valid JSON',
              type: 'invalid_request_error',
              code: 'invalid_json',
            }),
      );
    }
    const signal = clientGoneSignal(c);
    try {
      const request = parseChatRequest(body.value);
      if (!request.stream) {
        // Settled (or durably queued as UNSETTLED) before the answer leaves, else withheld: an answer sent
        // before its charge is recorded is free if the process dies in between (api/test/faults).
        const { completion, requestId } = await metering.complete(viewer, request, {
          signal,
          keyCheck,
        });
        return c.json(completion, 200, { 'x-request-id': requestId });
      }
      const metered = await metering.stream(viewer, request, { signal, keyCheck });
      const stalled = stalledClientOf(c, services.config.llm.timeoutMs);
      const events = completionEventStream(metered.chunks, request.includeUsage, metered.settled, stalled);
      return new Response(events, {
        status: 200,
        headers: {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          'x-request-id': metered.requestId,
        },
      });
    } catch (error) {
      return unlessKeyDead(() => openAiErrorFor(c, logger, error), error);
    }
  });

  app.get('/v1/models', async (c) => {
    const caller = await callerOfRead(c, services);
    if (!caller) return unauthorized(c);
    try {
      const { credential } = caller.viewer;
      const allowed = credential.kind === 'apiKey' ? credential.allowedModels : undefined;
      // A key limited to some models sees only those.
      const models = (await metering.listModels()).filter((model) => !allowed || allowed.includes(model.id));
      return c.json({ object: 'list', data: models });
    } catch (error) {
      return openAiErrorFor(c, logger, error);
    }
  });

  app.get('/v1/usage/export', async (c) => {
    const caller = await callerOfRead(c, services);
    if (!caller) return unauthorized(c);
    const format = c.req.query('format') ?? 'json';
    if (format !== 'csv' && format !== 'json') {
      return invalidRequest(c, "'format' must be csv or json", 'format');
    }
    const from = parseDate(c.req.query('from'));
    const to = parseDate(c.req.query('to'));
    if (from === 'invalid' || to === 'invalid') {
      return invalidRequest(
        c,
        "'from' and 'to' must be ISO-8601 dates (years 0001 to 9999), e.g. 2026-11-01 or 2026-11-01T00:00:00Z",
        from === 'invalid' ? 'from' : 'to',
      );
    }
    const pages = iterateUsage(services.orm.em.fork(), caller.viewer.accountId, { from, to });
    const stamp = new Date().toISOString().slice(0, 10);
    return new Response(usageExportStream(pages, format), {
      status: 200,
      headers: {
        'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8',
        'content-disposition': `attachment; filename="chainmeter-usage-${stamp}.${format}"`,
        'cache-control': 'no-store',
      },
    });
  });

  app.all('/v1/*', (c) =>
    openAiError(c, 404, {
      message: `Unknown endpoint ${c.req.method} ${c.req.path}`,
      type: 'invalid_request_error',
      code: 'not_found',
    }),
  );
  return app;
}

const invalidRequest = (c: Context, message: string, param: string) =>
  openAiError(c, 400, { message, type: 'invalid_request_error', code: 'invalid_request', param });

function parseDate(value: string | undefined): Date | null | 'invalid' {
  if (value === undefined || value === '') return null;
  return parseDateTime(value, { dateOnly: true }) ?? 'invalid';
}
