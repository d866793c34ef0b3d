/**
 * Errors of the `/v1` REST API in OpenAI's shape `{ error: { message, type, param, code } }`, and the
 * mapping from what the metering path throws to them. Unexpected errors are logged and masked.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from 'pino';
import { type ErrorAnswer, ExpectedError, errorAnswerOf } from '../errors.ts';
import { MODEL_NOT_ALLOWED } from '../modules/apikeys/apikeys.service.ts';
import { CompletionFailedError, MODEL_NOT_PRICED } from '../modules/metering/metering.errors.ts';
import { RateLimitedError } from '../modules/ratelimit/ratelimit.service.ts';
import { clientWentAway } from './node-request.ts';

/** nginx's status for a request whose client closed the connection first; never seen by that client. */
const CLIENT_CLOSED_REQUEST = 499;

export interface OpenAiError {
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

/** OpenAI's `type` and `code` for each of our error codes (the status comes from errors.ts). */
const OPENAI_ERROR_OF: Record<ErrorAnswer['code'], { type: string; code: string }> = {
  BAD_USER_INPUT: { type: 'invalid_request_error', code: 'invalid_request' },
  UNAUTHENTICATED: { type: 'authentication_error', code: 'invalid_api_key' },
  INSUFFICIENT_CREDITS: { type: 'insufficient_credits', code: 'insufficient_credits' },
  FORBIDDEN: { type: 'permission_error', code: 'forbidden' },
  NOT_FOUND: { type: 'invalid_request_error', code: 'not_found' },
  CONFLICT: { type: 'invalid_request_error', code: 'conflict' },
  RATE_LIMITED: { type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  UPSTREAM_TIMEOUT: { type: 'upstream_error', code: 'upstream_timeout' },
  UPSTREAM_UNAVAILABLE: { type: 'upstream_error', code: 'upstream_unavailable' },
  UPSTREAM_ERROR: { type: 'upstream_error', code: 'upstream_unavailable' },
  SERVICE_UNAVAILABLE: { type: 'server_error', code: 'service_unavailable' },
  INTERNAL_SERVER_ERROR: { type: 'server_error', code: 'internal_error' },
};

/** The OpenAI-shaped answer to an error thrown while serving a `/v1` request. */
/**
 * The answer to `error` in OpenAI's shape; `amend` may add to it before it is written (a paid call's receipt).
 */
export function openAiErrorFor(
  c: Context,
  logger: Logger,
  error: unknown,
  amend?: (answer: OpenAiError) => void,
): Response {
  // The client went away mid-request, and its abort is the error: nobody to answer, and nothing failed here.
  if (clientWentAway(c)) return new Response(null, { status: CLIENT_CLOSED_REQUEST });
  const answer = errorAnswerOf(error);
  const openAi: OpenAiError = { message: answer.message, ...OPENAI_ERROR_OF[answer.code] };
  if (error instanceof CompletionFailedError) {
    openAi.headers = { 'x-request-id': error.requestId };
    // The upstream said when to try again (a rate limit, an overload): the openai client's retries wait so long.
    const { retryAfterSeconds } = error.upstream;
    if (retryAfterSeconds !== null) openAi.headers['retry-after'] = String(retryAfterSeconds);
    // The upstream refused the request itself as bad: its status passes through (see `httpStatus`).
    if (answer.status < 500) {
      openAi.type = 'invalid_request_error';
      openAi.code = answer.status === 404 ? 'model_not_found' : 'invalid_request_error';
    }
  } else if (error instanceof ExpectedError && error.code === 'BAD_USER_INPUT') {
    const { field, reason } = error.extensions;
    // A model that cannot be billed is refused before the upstream: say so in OpenAI's `code`.
    if (reason === MODEL_NOT_PRICED) openAi.code = MODEL_NOT_PRICED;
    openAi.param = typeof field === 'string' ? field : null;
  } else if (error instanceof ExpectedError && error.extensions.reason === MODEL_NOT_ALLOWED) {
    // A model outside the key's allowedModels: refused before the rate limits, the hold and the upstream.
    openAi.code = MODEL_NOT_ALLOWED;
    openAi.param = 'model';
  } else if (error instanceof RateLimitedError) {
    openAi.headers = { 'retry-after': String(Math.max(1, Math.ceil(error.retryAfterSeconds || 1))) };
  } else if (answer.code === 'SERVICE_UNAVAILABLE') {
    if (!answer.expected) {
      logger.warn({ err: error, path: c.req.path }, 'REST request failed: database unavailable');
      openAi.message =
        'The service is temporarily unavailable (its database cannot be reached); nothing was charged. Retry shortly.';
    }
    openAi.headers = { 'retry-after': '1' };
  } else if (!answer.expected) {
    logger.error({ err: error, path: c.req.path }, 'REST request failed');
  }
  amend?.(openAi);
  return openAiError(c, answer.status as ContentfulStatusCode, openAi);
}
