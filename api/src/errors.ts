/**
 * Expected failures: each carries one of the `extensions.code` values of docs/api.md and reaches the client
 * as-is. Anything else thrown in a resolver is unexpected and yoga masks it ("Unexpected error.").
 */
import { GraphQLError } from 'graphql';
import { maskError as defaultMaskError, type MaskError } from 'graphql-yoga';

export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'BAD_USER_INPUT'
  | 'INSUFFICIENT_CREDITS'
  | 'RATE_LIMITED'
  | 'NOT_FOUND';

export class ExpectedError extends GraphQLError {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
    super(message, { extensions: { ...extensions, code } });
    this.code = code;
  }
}

export const unauthenticated = (message = 'Sign in first: this needs a session or an API key') =>
  new ExpectedError('UNAUTHENTICATED', message);
export const forbidden = (message = 'Not allowed') => new ExpectedError('FORBIDDEN', message);
export const badInput = (message: string, field?: string) =>
  new ExpectedError('BAD_USER_INPUT', message, field ? { field } : {});
export const notFound = (message: string) => new ExpectedError('NOT_FOUND', message);

const EXPECTED_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'INSUFFICIENT_CREDITS',
  'RATE_LIMITED',
  'NOT_FOUND',
]);

/**
 * Yoga's error mask, taught our domain errors: services throw plain errors that carry a documented `code`
 * (an invalid cursor, an insufficient balance...) without knowing about GraphQL; they reach the client
 * with that code and their message. Everything else is masked by yoga's default.
 */
export const maskError: MaskError = (error, message, isDev) => {
  const original = error instanceof GraphQLError ? error.originalError : error;
  const code = (original as { code?: unknown } | undefined)?.code;
  if (
    original instanceof Error &&
    !(original instanceof GraphQLError) &&
    typeof code === 'string' &&
    EXPECTED_CODES.has(code)
  ) {
    return new GraphQLError(original.message, {
      nodes: error instanceof GraphQLError ? error.nodes : undefined,
      path: error instanceof GraphQLError ? error.path : undefined,
      extensions: { code },
    });
  }
  // Not the caller's mistake and not a bug: say plainly that it is temporary (still masked, no details).
  if (isDatabaseUnavailable(original)) {
    return new GraphQLError(
      'Service temporarily unavailable: the database cannot be reached. Retry shortly.',
      {
        nodes: error instanceof GraphQLError ? error.nodes : undefined,
        path: error instanceof GraphQLError ? error.path : undefined,
        extensions: { code: 'INTERNAL_SERVER_ERROR', retryable: true },
      },
    );
  }
  return defaultMaskError(error, message, isDev);
};

/** PostgreSQL gone or restarting: connection refused/reset, or its shutdown and start-up error codes. */
export function isDatabaseUnavailable(error: unknown): boolean {
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
