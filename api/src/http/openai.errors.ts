/**
 * Errors of the `/v1` REST API in OpenAI's shape `{ error: { message, type, param, code } }`, and the
 * mapping from what the metering path throws to them. Unexpected errors are logged and masked.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../errors.ts';
import { CompletionFailedError, MODEL_NOT_PRICED } from '../modules/metering/metering.service.ts';

interface OpenAiError {
  message: string;
  type: string;
  code: string | null;
  param?: string | null;
  headers?: Record<string, string>;
}

/** An error answer in OpenAI's shape. */
export function openAiError(c: Context, status: ContentfulStatusCode, error: OpenAiError): Response {
  const { message, type, code, param = null, headers = {} } = error;
  return c.json({ error: { message, type, param, code } }, status, headers);
}

export const unauthorized = (c: Context) =>
  openAiError(c, 401, {
    message: 'Missing or invalid credential: send "Authorization: Bearer <API key or session token>"',
    type: 'authentication_error',
    code: 'invalid_api_key',
  });

/** Upstream statuses that are the caller's mistake, answered with the upstream's own status. */
const CALLER_MISTAKE_STATUSES: ReadonlySet<number> = new Set([400, 404, 413, 422]);

/** The expected failures `/v1` answers with their own message: status, OpenAI's `type`, `code` and `param`. */
const OPENAI_ERROR_OF_CODE = new Map<
  string,
  { status: ContentfulStatusCode; answer: (error: unknown) => Omit<OpenAiError, 'message'> }
>([
  [
    'BAD_USER_INPUT',
    {
      status: 400,
      answer: (error) => {
        const extensions = (error as { extensions?: { field?: unknown; reason?: unknown } }).extensions;
        return {
          type: 'invalid_request_error',
          // A model that cannot be billed is refused before the upstream: say so in OpenAI's `code`.
          code: extensions?.reason === MODEL_NOT_PRICED ? MODEL_NOT_PRICED : 'invalid_request',
          param: typeof extensions?.field === 'string' ? extensions.field : null,
        };
      },
    },
  ],
  [
    'INSUFFICIENT_CREDITS',
    { status: 402, answer: () => ({ type: 'insufficient_credits', code: 'insufficient_credits' }) },
  ],
  [
    'RATE_LIMITED',
    {
      status: 429,
      answer: (error) => {
        const seconds = Number((error as { retryAfterSeconds?: unknown }).retryAfterSeconds) || 1;
        const retryAfter = Math.max(1, Math.ceil(seconds));
        return {
          type: 'rate_limit_error',
          code: 'rate_limit_exceeded',
          headers: { 'retry-after': String(retryAfter) },
        };
      },
    },
  ],
  [
    'UNAUTHENTICATED',
    { status: 401, answer: () => ({ type: 'authentication_error', code: 'invalid_api_key' }) },
  ],
  ['FORBIDDEN', { status: 403, answer: () => ({ type: 'permission_error', code: 'forbidden' }) }],
]);

/** The OpenAI-shaped answer to an error thrown while serving a `/v1` request. */
export function openAiErrorFor(c: Context, logger: Logger, error: unknown): Response {
  const code = (error as { code?: unknown }).code;
  const message = (error as Error).message;
  if (error instanceof CompletionFailedError) {
    const { kind, status } = error.upstream;
    const headers = { 'x-request-id': error.requestId };
    if (kind === 'timeout') {
      return openAiError(c, 504, { message, type: 'upstream_error', code: 'upstream_timeout', headers });
    }
    if (kind === 'rejected' && status !== null && CALLER_MISTAKE_STATUSES.has(status)) {
      const upstreamCode = status === 404 ? 'model_not_found' : 'invalid_request_error';
      return openAiError(c, status as ContentfulStatusCode, {
        message,
        type: 'invalid_request_error',
        code: upstreamCode,
        headers,
      });
    }
    return openAiError(c, 502, { message, type: 'upstream_error', code: 'upstream_unavailable', headers });
  }
  const known = typeof code === 'string' ? OPENAI_ERROR_OF_CODE.get(code) : undefined;
  if (known) return openAiError(c, known.status, { message, ...known.answer(error) });
  if (isDatabaseUnavailable(error)) {
    logger.warn({ err: error, path: c.req.path }, 'REST request failed: database unavailable');
    return openAiError(c, 503, {
      message:
        'The service is temporarily unavailable (its database cannot be reached); nothing was charged. Retry shortly.',
      type: 'server_error',
      code: 'service_unavailable',
      headers: { 'retry-after': '1' },
    });
  }
  logger.error({ err: error, path: c.req.path }, 'REST request failed');
  return openAiError(c, 500, { message: 'Unexpected error.', type: 'server_error', code: 'internal_error' });
}
