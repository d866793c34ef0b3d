/**
 * The OpenAI-compatible REST API under `/v1`, billed exactly like `createCompletion`:
 * - `POST /v1/chat/completions` (JSON or, with `stream: true`, server-sent events),
 * - `GET /v1/models`,
 * - `GET /v1/usage/export?format=csv|json&from=&to=`: the caller's usage rows, oldest first, streamed
 *   page by page (never the whole history in memory).
 * The official `openai` client works unchanged with `baseURL: <origin>/v1` and an API key (or a session
 * token) as its `apiKey`. Errors use OpenAI's shape `{ error: { message, type, param, code } }`:
 * 400 bad input, 401 no or bad credential, 402 insufficient credits, 429 rate limited (with
 * `Retry-After`), 502 upstream failure, 504 upstream timeout. A model without a price is a 400 with
 * `code: "model_not_priced"` (the upstream is not called); `GET /v1/models` lists only the models that
 * can be billed. A credential never appears in an error.
 */
import { formatCredits, type MicroUsd } from '@chainmeter/schema';
import { type Context, Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { AppServices } from '../context.ts';
import { isDatabaseUnavailable } from '../errors.ts';
import { type ApiKeyCheck, isApiKeySecret, viewerFromApiKey } from '../modules/apikeys/apikeys.service.ts';
import { parseChatRequest } from '../modules/metering/chat-request.ts';
import {
  CompletionFailedError,
  MODEL_NOT_PRICED,
  type UsageView,
} from '../modules/metering/metering.service.ts';
import { iterateUsage } from '../modules/metering/usage.service.ts';
import { parseDateTime } from '../schema/date-time.ts';
import type { Viewer } from '../viewer.ts';
import { authenticate, bearerToken, SESSION_COOKIE } from './authenticate.ts';
import { clientGoneSignal, readJsonBody, requestHeader } from './node-request.ts';

const MAX_BODY_BYTES = 4 * 1024 * 1024;

interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function errorResponse(
  c: Context,
  status: ContentfulStatusCode,
  message: string,
  type: string,
  code: string | null,
  param: string | null = null,
  headers: Record<string, string> = {},
) {
  const body: OpenAiErrorBody = { error: { message, type, param, code } };
  return c.json(body, status, headers);
}

/** Maps what the metering path throws to an OpenAI-shaped response; unexpected errors are masked. */
function failure(c: Context, services: AppServices, error: unknown) {
  const code = (error as { code?: unknown }).code;
  if (error instanceof CompletionFailedError) {
    const { kind, status } = error.upstream;
    const headers = { 'x-request-id': error.requestId };
    if (kind === 'timeout') {
      return errorResponse(c, 504, error.message, 'upstream_error', 'upstream_timeout', null, headers);
    }
    if (kind === 'rejected' && (status === 400 || status === 404 || status === 413 || status === 422)) {
      const upstreamCode = status === 404 ? 'model_not_found' : 'invalid_request_error';
      return errorResponse(c, status, error.message, 'invalid_request_error', upstreamCode, null, headers);
    }
    return errorResponse(c, 502, error.message, 'upstream_error', 'upstream_unavailable', null, headers);
  }
  if (code === 'BAD_USER_INPUT') {
    const extensions = (error as { extensions?: { field?: unknown; reason?: unknown } }).extensions;
    return errorResponse(
      c,
      400,
      (error as Error).message,
      'invalid_request_error',
      // A model that cannot be billed is refused before the upstream: say so in OpenAI's `code`.
      extensions?.reason === MODEL_NOT_PRICED ? MODEL_NOT_PRICED : 'invalid_request',
      typeof extensions?.field === 'string' ? extensions.field : null,
    );
  }
  if (code === 'INSUFFICIENT_CREDITS') {
    return errorResponse(c, 402, (error as Error).message, 'insufficient_credits', 'insufficient_credits');
  }
  if (code === 'RATE_LIMITED') {
    const retryAfter = Math.max(
      1,
      Math.ceil(Number((error as { retryAfterSeconds?: unknown }).retryAfterSeconds) || 1),
    );
    return errorResponse(c, 429, (error as Error).message, 'rate_limit_error', 'rate_limit_exceeded', null, {
      'retry-after': String(retryAfter),
    });
  }
  if (code === 'UNAUTHENTICATED') {
    return errorResponse(c, 401, (error as Error).message, 'authentication_error', 'invalid_api_key');
  }
  if (code === 'FORBIDDEN') {
    return errorResponse(c, 403, (error as Error).message, 'permission_error', 'forbidden');
  }
  if (isDatabaseUnavailable(error)) {
    services.logger.warn({ err: error, path: c.req.path }, 'REST request failed: database unavailable');
    return errorResponse(
      c,
      503,
      'The service is temporarily unavailable (its database cannot be reached); nothing was charged. Retry shortly.',
      'server_error',
      'service_unavailable',
      null,
      { 'retry-after': '1' },
    );
  }
  services.logger.error({ err: error, path: c.req.path }, 'REST request failed');
  return errorResponse(c, 500, 'Unexpected error.', 'server_error', 'internal_error');
}

/**
 * The caller: an API key or session token as `Authorization: Bearer`. Reads (GET: models, the usage export)
 * also accept the web client's httpOnly session cookie, so its download links work; a cookie never
 * authorizes a POST, so another site cannot make a signed-in browser spend credits.
 */
async function viewerOfRequest(c: Context, services: AppServices): Promise<Viewer | null> {
  let token = bearerToken(c.req.header('authorization'));
  if (!token && c.req.method === 'GET') token = bearerToken(getCookie(c, SESSION_COOKIE));
  if (!token) return null;
  return authenticate(services.orm.em.fork(), services.config, token);
}

/** The API key of `Authorization: Bearer`, authenticated now (and remembered in `recentApiKeys`). */
function viewerOfApiKey(c: Context, services: AppServices): Promise<Viewer | null> {
  const token = bearerToken(requestHeader(c, 'authorization')) ?? '';
  return viewerFromApiKey(services.orm.em.fork(), services.config, token, new Date(), services.recentApiKeys);
}

/**
 * The caller of a metered call. An API key this replica authenticated lately is taken from
 * `recentApiKeys` without a lookup, with the check its hold makes that the key is still live
 * (`keyCheck`); any other key is looked up now, and any other credential authenticated as usual. Only a
 * POST's `Authorization` header counts (never the cookie: another site cannot spend a browser's credits).
 */
async function callerOfCompletion(
  c: Context,
  services: AppServices,
): Promise<{ viewer: Viewer; keyCheck?: ApiKeyCheck } | null> {
  const token = bearerToken(requestHeader(c, 'authorization'));
  if (!token) return null;
  if (!isApiKeySecret(token)) {
    const viewer = await authenticate(services.orm.em.fork(), services.config, token);
    return viewer ? { viewer } : null;
  }
  const claim = services.recentApiKeys.claim(services.config, token);
  if (claim) return { viewer: claim.viewer, keyCheck: claim.check };
  const viewer = await viewerOfApiKey(c, services);
  return viewer ? { viewer } : null;
}

const unauthorized = (c: Context) =>
  errorResponse(
    c,
    401,
    'Missing or invalid credential: send "Authorization: Bearer <API key or session token>"',
    'authentication_error',
    'invalid_api_key',
  );

export function openAiRoutes(services: AppServices): Hono {
  const app = new Hono();
  const { metering } = services;
  // Whatever escapes a route (authenticating with the database down, say) still answers in OpenAI's shape.
  app.onError((error, c) => failure(c, services, error));

  app.post('/v1/chat/completions', async (c) => {
    const caller = await callerOfCompletion(c, services);
    if (!caller) return unauthorized(c);
    const { viewer, keyCheck } = caller;
    /** An answer given without the hold: a key taken on trust is checked first, so a dead key gets 401. */
    const unlessKeyDead = async (answer: () => Response): Promise<Response> => {
      if (!keyCheck || keyCheck.verified) return answer();
      const live = await viewerOfApiKey(c, services);
      return live ? answer() : unauthorized(c);
    };
    const body = await readJsonBody(c, MAX_BODY_BYTES);
    if (!body.ok) {
      return unlessKeyDead(() =>
        body.reason === 'too_large'
          ? errorResponse(c, 413, 'Request body too large', 'invalid_request_error', 'body_too_large')
          : errorResponse(
              c,
              400,
              'The request body is not valid JSON',
              'invalid_request_error',
              'invalid_json',
            ),
      );
    }
    const signal = clientGoneSignal(c);
    try {
      const request = parseChatRequest(body.value);
      if (!request.stream) {
        const { completion, requestId } = await metering.complete(viewer, request, {
          signal,
          keyCheck,
          // Settled (or durably queued as UNSETTLED) before the answer leaves: an answer sent before its
          // charge is recorded is free if the process dies in between (api/test/faults/crash-recovery).
          settle: 'await',
        });
        return c.json(completion, 200, { 'x-request-id': requestId });
      }
      const metered = await metering.stream(viewer, request, { signal, keyCheck });
      return new Response(sseBody(metered.chunks, request.includeUsage, metered.settled), {
        status: 200,
        headers: {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          'x-request-id': metered.requestId,
        },
      });
    } catch (error) {
      return unlessKeyDead(() => failure(c, services, error));
    }
  });

  app.get('/v1/models', async (c) => {
    const viewer = await viewerOfRequest(c, services);
    if (!viewer) return unauthorized(c);
    try {
      const models = await metering.listModels();
      return c.json({ object: 'list', data: models });
    } catch (error) {
      if ((error as { name?: string }).name === 'UpstreamError') {
        return errorResponse(c, 502, (error as Error).message, 'upstream_error', 'upstream_unavailable');
      }
      return failure(c, services, error);
    }
  });

  app.get('/v1/usage/export', async (c) => {
    const viewer = await viewerOfRequest(c, services);
    if (!viewer) return unauthorized(c);
    const format = c.req.query('format') ?? 'json';
    if (format !== 'csv' && format !== 'json') {
      return errorResponse(
        c,
        400,
        "'format' must be csv or json",
        'invalid_request_error',
        'invalid_request',
        'format',
      );
    }
    const from = parseDate(c.req.query('from'));
    const to = parseDate(c.req.query('to'));
    if (from === 'invalid' || to === 'invalid') {
      return errorResponse(
        c,
        400,
        "'from' and 'to' must be ISO-8601 dates (years 0001 to 9999), e.g. 2026-11-01 or 2026-11-01T00:00:00Z",
        'invalid_request_error',
        'invalid_request',
        from === 'invalid' ? 'from' : 'to',
      );
    }
    const pages = iterateUsage(services.orm.em.fork(), viewer.accountId, { from, to });
    const stamp = new Date().toISOString().slice(0, 10);
    return new Response(exportBody(pages, format), {
      status: 200,
      headers: {
        'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8',
        'content-disposition': `attachment; filename="chainmeter-usage-${stamp}.${format}"`,
        'cache-control': 'no-store',
      },
    });
  });

  app.all('/v1/*', (c) =>
    errorResponse(
      c,
      404,
      `Unknown endpoint ${c.req.method} ${c.req.path}`,
      'invalid_request_error',
      'not_found',
    ),
  );
  return app;
}

function parseDate(value: string | undefined): Date | null | 'invalid' {
  if (value === undefined || value === '') return null;
  return parseDateTime(value, { dateOnly: true }) ?? 'invalid';
}

const encoder = new TextEncoder();

/**
 * The upstream's chunks as server-sent events. Pulled one chunk at a time, so a slow client slows the
 * upstream read (backpressure); a client that goes away cancels the stream, which leaves the upstream
 * loop early: generation stops and the call is billed for what was generated.
 */
function sseBody(
  chunks: AsyncIterable<ChatCompletionChunk>,
  includeUsage: boolean,
  settled: Promise<UsageView | null>,
): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        let next: IteratorResult<ChatCompletionChunk>;
        try {
          next = await iterator.next();
        } catch (error) {
          // The upstream broke off mid-answer: billed for what it had generated (nothing, if it had not
          // generated anything); tell the client which, in OpenAI's shape.
          const usage = await settled.catch(() => null);
          const message = `${(error as Error).message}; ${
            usage ? 'only the part generated before the break is billed' : 'nothing was charged'
          }`;
          controller.enqueue(
            encoder.encode(
              `data: ${JSON.stringify({ error: { message, type: 'upstream_error', param: null, code: 'upstream_unavailable' } })}\n\n`,
            ),
          );
          controller.close();
          return;
        }
        if (next.done) {
          // [DONE] only once the charge is recorded, so a stream that completed is billed even if the
          // process dies right after it (the settlement itself never throws).
          await settled.catch(() => {});
          controller.enqueue(encoder.encode('data: [DONE]\n\n'));
          controller.close();
          return;
        }
        const chunk = next.value;
        if (!includeUsage) {
          // The client did not ask for the usage chunk (the gateway always does, to bill).
          if (chunk.choices.length === 0 && chunk.usage) continue;
          if ('usage' in chunk) delete (chunk as { usage?: unknown }).usage;
        }
        controller.enqueue(encoder.encode(`data: ${JSON.stringify(chunk)}\n\n`));
        return;
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

const CSV_COLUMNS = [
  'id',
  'created_at',
  'request_id',
  'model',
  'api_key_id',
  'prompt_tokens',
  'completion_tokens',
  'provider_cost_micro_usd',
  'user_price_micro_usd',
  'provider_cost_credits',
  'user_price_credits',
  'billing_status',
  'latency_ms',
  'flags',
] as const;

export function usageExportRecord(
  usage: UsageView,
): Record<(typeof CSV_COLUMNS)[number], string | number | null> {
  return {
    id: usage.id,
    created_at: usage.createdAt.toISOString(),
    request_id: usage.requestId,
    model: usage.model,
    api_key_id: usage.apiKeyId,
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    provider_cost_micro_usd: usage.providerCost === null ? null : usage.providerCost.toString(),
    user_price_micro_usd: usage.userPrice.toString(),
    provider_cost_credits: usage.providerCost === null ? null : formatCredits(usage.providerCost as MicroUsd),
    user_price_credits: formatCredits(usage.userPrice as MicroUsd),
    billing_status: usage.billingStatus,
    latency_ms: usage.latencyMs,
    flags: usage.flags.join(' '),
  };
}

function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  // Quote when needed; a leading = + - @ is neutralised so a spreadsheet never runs it as a formula.
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

function exportBody(pages: AsyncGenerator<UsageView[]>, format: 'csv' | 'json'): ReadableStream<Uint8Array> {
  let started = false;
  let first = true;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(encoder.encode(format === 'csv' ? `${CSV_COLUMNS.join(',')}\n` : '['));
        return;
      }
      const next = await pages.next();
      if (next.done) {
        if (format === 'json') controller.enqueue(encoder.encode(first ? ']\n' : '\n]\n'));
        controller.close();
        return;
      }
      let text = '';
      for (const usage of next.value) {
        const record = usageExportRecord(usage);
        if (format === 'csv') {
          text += `${CSV_COLUMNS.map((column) => csvField(record[column])).join(',')}\n`;
        } else {
          text += `${first ? '\n' : ',\n'}${JSON.stringify(record)}`;
          first = false;
        }
      }
      controller.enqueue(encoder.encode(text));
    },
    async cancel() {
      await pages.return(undefined);
    },
  });
}
