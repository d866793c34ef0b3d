/**
 * How an upstream call fails: every failure of the LLM upstream adapter is an {@link UpstreamError} of
 * one kind, whose message never carries the API key (nor anything that looks like one).
 */
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';

/**
 * - `timeout`: no answer (or, streaming, no chunk) within `timeoutMs`.
 * - `unavailable`: no connection, a dropped connection, or an upstream 5xx (`status` set then).
 * - `rejected`: the upstream refused the request with a 4xx (`status` set): bad request, auth, rate limit.
 * - `bad_response`: an answer that is not a chat completion, or a stream that broke off mid-way.
 * - `aborted`: the caller's own signal (for instance its client disconnected); not the upstream's fault.
 */
export type UpstreamErrorKind = 'timeout' | 'unavailable' | 'rejected' | 'bad_response' | 'aborted';

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  readonly kind: UpstreamErrorKind;
  /** The upstream's HTTP status, when it answered with one. */
  readonly status: number | null;
  /** The upstream's `Retry-After` in seconds, when it answered with one (a 429 or a 503, mostly). */
  readonly retryAfterSeconds: number | null;

  constructor(
    kind: UpstreamErrorKind,
    message: string,
    options: { status?: number; cause?: unknown; retryAfterSeconds?: number | null } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.status = options.status ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds ?? null;
  }
}

/**
 * A `Retry-After` header's delay in seconds, or null unless it is one (delta-seconds, at most 6 digits: an
 * HTTP date or anything else is not passed on).
 * @example retryAfterSeconds('20') // 20
 */
export function retryAfterSeconds(header: string | null | undefined): number | null {
  const text = header?.trim();
  return text && /^\d{1,6}$/.test(text) ? Number(text) : null;
}

export const abortedByCaller = () => new UpstreamError('aborted', 'upstream call aborted by the caller');
export const answerTimedOut = () => new UpstreamError('timeout', 'upstream did not answer in time');

const MAX_UPSTREAM_MESSAGE = 200;
const SECRET_LIKE = /\b(?:sk|cm)[-_][\w*-]{4,}/g;

/**
 * An HTTP error answer (status >= 400), worded the same whether the SDK or our own client saw it, with the
 * upstream's `Retry-After` (raw) when it sent one.
 */
export function statusError(
  status: number,
  upstreamText: string,
  apiKey: string | undefined,
  retryAfter?: string | null,
): UpstreamError {
  const text =
    upstreamText.length > MAX_UPSTREAM_MESSAGE
      ? `${upstreamText.slice(0, MAX_UPSTREAM_MESSAGE)}...`
      : upstreamText;
  const detail = redact(text, apiKey);
  const kind = status >= 500 ? 'unavailable' : 'rejected';
  const verb = kind === 'rejected' ? 'rejected the request' : 'failed';
  return new UpstreamError(kind, `upstream ${verb} (HTTP ${status})${detail ? `: ${detail}` : ''}`, {
    status,
    retryAfterSeconds: retryAfterSeconds(retryAfter),
  });
}

/** The `error.message` of an OpenAI-shaped error body, or '' when the body is not one. */
export function errorBodyMessage(body: string): string {
  try {
    const message = (JSON.parse(body) as { error?: { message?: unknown } }).error?.message;
    return typeof message === 'string' ? message : '';
  } catch {
    return ''; // not JSON: no detail
  }
}

/** Maps whatever the SDK threw to an {@link UpstreamError}; the API key never reaches the message. */
export function toUpstreamError(error: unknown, apiKey?: string): UpstreamError {
  if (error instanceof UpstreamError) return error;
  if (error instanceof APIUserAbortError) return abortedByCaller();
  if (error instanceof APIConnectionTimeoutError) return answerTimedOut();
  if (error instanceof APIConnectionError) {
    // The cause is the transport's error (ECONNREFUSED, socket closed): useful, and it holds no secret.
    return new UpstreamError('unavailable', `upstream unreachable: ${connectionReason(error)}`, {
      cause: error.cause,
    });
  }
  if (error instanceof APIError && typeof error.status === 'number') {
    return statusError(error.status, sdkErrorMessage(error), apiKey, error.headers?.get('retry-after'));
  }
  if (error instanceof APIError) {
    // An error event inside a stream: the upstream gave up mid-answer.
    const text = sdkErrorMessage(error);
    const detail = text.length > MAX_UPSTREAM_MESSAGE ? `${text.slice(0, MAX_UPSTREAM_MESSAGE)}...` : text;
    return new UpstreamError('bad_response', `upstream stream reported an error: ${redact(detail, apiKey)}`);
  }
  if (error instanceof SyntaxError) {
    return new UpstreamError('bad_response', 'upstream answer is not valid JSON');
  }
  if (error instanceof TypeError && error.message === 'terminated') {
    // undici's word for a response body cut off by the peer.
    return new UpstreamError('bad_response', 'upstream connection closed mid-answer', { cause: error.cause });
  }
  if (error instanceof Error && error.name === 'AbortError') return abortedByCaller();
  return new UpstreamError('bad_response', `upstream call failed: ${redact(String(error), apiKey)}`);
}

function sdkErrorMessage(error: APIError): string {
  const body = error.error as { message?: unknown } | undefined;
  return typeof body?.message === 'string' ? body.message : '';
}

function connectionReason(error: APIConnectionError): string {
  const cause = error.cause as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = cause?.code ?? cause?.cause?.code;
  return typeof code === 'string' ? code : 'connection failed';
}

function redact(text: string, apiKey: string | undefined): string {
  const withoutKey = apiKey ? text.split(apiKey).join('[redacted]') : text;
  return withoutKey.replace(SECRET_LIKE, '[redacted]');
}
