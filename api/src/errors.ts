/**
 * Expected failures: each carries one of the contract's `extensions.code` values and reaches the client
 * as-is. Anything else thrown in a resolver is unexpected and yoga masks it ("Unexpected error.").
 */
import { GraphQLError } from 'graphql';

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
