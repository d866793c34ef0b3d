/**
 * Expected failures: one family, {@link ExpectedError}, each with a code from {@link HTTP_STATUS_OF_CODE}
 * that GraphQL carries as `extensions.code` and REST turns into its HTTP status. Anything else thrown is
 * unexpected: yoga masks it ("Unexpected error.") and REST answers 500. docs/api.md lists the codes.
 */
import { GraphQLError } from 'graphql';
import { maskError as defaultMaskError, type MaskError } from 'graphql-yoga';

/**
 * Every expected failure's code and the HTTP status REST answers it with. The first six are the public
 * contract's; `CONFLICT` says the thing was already done by someone else (a NEEDS_REVIEW call another
 * operator resolved first); the `UPSTREAM_*` codes say the model provider failed (nothing was charged):
 * - `UPSTREAM_TIMEOUT`: it did not answer (or a stream went quiet) in time;
 * - `UPSTREAM_UNAVAILABLE`: it could not be reached, dropped the connection or answered 5xx;
 * - `UPSTREAM_ERROR`: it refused the request, answered something that is not a completion, or generated
 *   nothing.
 * `SERVICE_UNAVAILABLE` is a temporary failure of ours that a retry may not meet (also what REST answers an
 * unreachable database with).
 */
export const HTTP_STATUS_OF_CODE = {
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  INSUFFICIENT_CREDITS: 402,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  UPSTREAM_ERROR: 502,
  UPSTREAM_UNAVAILABLE: 502,
  UPSTREAM_TIMEOUT: 504,
  SERVICE_UNAVAILABLE: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof HTTP_STATUS_OF_CODE;

export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS_OF_CODE[code];
}

/**
 * The base of every expected failure. A GraphQL error, so yoga sends it as is: its message and its
 * extensions (`code`, and whatever details the subclass adds, e.g. `field`).
 */
export class ExpectedError extends GraphQLError {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
    super(message, { extensions: { ...extensions, code } });
    this.code = code;
  }

  /** The HTTP status REST answers it with: its code's, unless the failure knows better. */
  get httpStatus(): number {
    return httpStatusOf(this.code);
  }
}

export const unauthenticated = (message = 'Sign in first: this needs a session or an API key') =>
  new ExpectedError('UNAUTHENTICATED', message);
export const forbidden = (message = 'Not allowed') => new ExpectedError('FORBIDDEN', message);
export const badInput = (message: string, field?: string) =>
  new ExpectedError('BAD_USER_INPUT', message, field ? { field } : {});
export const notFound = (message: string) => new ExpectedError('NOT_FOUND', message);
export const conflict = (message: string, extensions: Record<string, unknown> = {}) =>
  new ExpectedError('CONFLICT', message, extensions);

/** The code of an expected failure, or null for an unexpected one. */
export function expectedCodeOf(error: unknown): ErrorCode | null {
  return error instanceof ExpectedError ? error.code : null;
}

/** How any error answers over HTTP; `expected` is false for a failure the caller did not cause. */
export interface ErrorAnswer {
  status: number;
  code: ErrorCode | 'SERVICE_UNAVAILABLE' | 'INTERNAL_SERVER_ERROR';
  message: string;
  expected: boolean;
}

/**
 * Any error as an HTTP answer: an expected one with its code's status and its own message; the database
 * being unreachable as a 503 (temporary, retryable); anything else masked as a 500.
 * @example errorAnswerOf(badInput('no')) // { status: 400, code: 'BAD_USER_INPUT', message: 'no', expected: true }
 */
export function errorAnswerOf(error: unknown): ErrorAnswer {
  if (error instanceof ExpectedError) {
    return { status: error.httpStatus, code: error.code, message: error.message, expected: true };
  }
  if (isDatabaseUnavailable(error)) {
    return {
      status: 503,
      code: 'SERVICE_UNAVAILABLE',
      message: 'Service temporarily unavailable: the database cannot be reached. Retry shortly.',
      expected: false,
    };
  }
  return { status: 500, code: 'INTERNAL_SERVER_ERROR', message: 'Unexpected error.', expected: false };
}

/**
 * Yoga's error mask: expected failures are GraphQL errors and pass yoga's default as they are (code and
 * message); the database being unreachable is said plainly (still masked, no details); everything else
 * is masked by yoga's default.
 */
export const maskError: MaskError = (error, message, isDev) => {
  const original = error instanceof GraphQLError ? error.originalError : error;
  const location = {
    nodes: error instanceof GraphQLError ? error.nodes : undefined,
    path: error instanceof GraphQLError ? error.path : undefined,
  };
  if (isDatabaseUnavailable(original)) {
    return new GraphQLError(errorAnswerOf(original).message, {
      ...location,
      extensions: { code: 'INTERNAL_SERVER_ERROR', retryable: true },
    });
  }
  return defaultMaskError(error, message, isDev);
};

/** PostgreSQL gone or restarting: connection refused/reset, or its shutdown and start-up error codes. */
function isDatabaseUnavailable(error: unknown): boolean {
  for (
    let e = error as { code?: unknown; name?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth++
  ) {
    const code = String(e.code ?? '');
    if (['ECONNREFUSED', 'ECONNRESET', '57P01', '57P02', '57P03'].includes(code) || code.startsWith('08'))
      return true;
    if (e.name === 'ConnectionException') return true;
    e = e.cause as typeof e;
  }
  return false;
}
