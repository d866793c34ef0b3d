import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  badInput,
  type ErrorCode,
  ExpectedError,
  errorAnswerOf,
  HTTP_STATUS_OF_CODE,
  httpStatusOf,
  maskError,
} from './errors.ts';
import {
  CompletionFailedError,
  failedAfterKeyCheck,
  InsufficientCreditsError,
  modelNotPriced,
} from './modules/metering/metering.errors.ts';
import { UpstreamError } from './modules/metering/upstream-error.ts';

describe('the error family', () => {
  it('gives each code one HTTP status', () => {
    expect(HTTP_STATUS_OF_CODE).toEqual({
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
    });
    expect(httpStatusOf('RATE_LIMITED')).toBe(429);
  });

  it('answers an expected error with its code, status and message; anything else masked', () => {
    expect(errorAnswerOf(badInput('no', 'model'))).toEqual({
      status: 400,
      code: 'BAD_USER_INPUT',
      message: 'no',
      expected: true,
    });
    expect(errorAnswerOf(new InsufficientCreditsError('account', 1500n))).toMatchObject({
      status: 402,
      code: 'INSUFFICIENT_CREDITS',
      expected: true,
    });
    expect(errorAnswerOf(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }))).toMatchObject({
      status: 503,
      code: 'SERVICE_UNAVAILABLE',
      expected: false,
    });
    expect(errorAnswerOf(new Error('secret detail'))).toEqual({
      status: 500,
      code: 'INTERNAL_SERVER_ERROR',
      message: 'Unexpected error.',
      expected: false,
    });
    // A plain error that merely carries a code-like field is not one of ours.
    expect(errorAnswerOf(Object.assign(new Error('x'), { code: 'NOT_FOUND' })).status).toBe(500);
  });

  it('codes upstream failures by how they failed; a request the upstream refused as bad keeps its status', () => {
    const failed = (kind: UpstreamError['kind'], status?: number) =>
      new CompletionFailedError(new UpstreamError(kind, 'upstream said no', { status }), 'req_1');
    const cases: [CompletionFailedError, ErrorCode, number][] = [
      [failed('timeout'), 'UPSTREAM_TIMEOUT', 504],
      [failed('unavailable', 503), 'UPSTREAM_UNAVAILABLE', 502],
      [failed('bad_response'), 'UPSTREAM_ERROR', 502],
      [failed('rejected', 401), 'UPSTREAM_ERROR', 502],
      [failed('rejected', 404), 'UPSTREAM_ERROR', 404],
      [failed('rejected', 422), 'UPSTREAM_ERROR', 422],
    ];
    for (const [error, code, status] of cases) {
      expect(error).toBeInstanceOf(ExpectedError);
      expect(errorAnswerOf(error)).toMatchObject({ code, status });
      expect(error.extensions).toMatchObject({ code, requestId: 'req_1' });
    }
    expect(failed('rejected', 400).extensions.reason).toBe('UPSTREAM_REJECTED');
  });

  it('tells whether a failed call got as far as the hold that checks a key taken on trust', () => {
    expect(failedAfterKeyCheck(new InsufficientCreditsError('apiKey', 1n))).toBe(true);
    expect(failedAfterKeyCheck(new CompletionFailedError(new UpstreamError('timeout', 't'), 'r'))).toBe(true);
    expect(failedAfterKeyCheck(modelNotPriced('m'))).toBe(false);
    expect(failedAfterKeyCheck(new Error('database down'))).toBe(false);
  });

  it('masks what is not expected, and passes expected failures with their code', () => {
    const located = (original: Error) =>
      new GraphQLError(original.message, { originalError: original, path: ['createCompletion'] });
    const insufficient = maskError(
      located(new InsufficientCreditsError('account', 1n)),
      'Unexpected error.',
      false,
    );
    expect((insufficient as GraphQLError).extensions.code).toBe('INSUFFICIENT_CREDITS');
    const bug = maskError(located(new Error('secret detail')), 'Unexpected error.', false);
    expect((bug as GraphQLError).message).toBe('Unexpected error.');
  });
});
