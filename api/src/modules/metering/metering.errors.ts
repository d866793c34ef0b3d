/**
 * The expected failures of a metered call, in the {@link ExpectedError} family: a model that cannot be
 * billed, a hold that does not fit, and the upstream failing (nothing charged), with a code per way it failed.
 */
import { formatCredits, type MicroUsd } from '@chainmeter/schema';
import { type ErrorCode, ExpectedError, httpStatusOf } from '../../errors.ts';
import type { UpstreamError, UpstreamErrorKind } from './upstream-error.ts';

/** `extensions.reason` of the BAD_USER_INPUT a model without a price is refused with (REST: its `code`). */
export const MODEL_NOT_PRICED = 'model_not_priced';

/** A call to a model that cannot be billed: refused before anything is held or sent upstream. */
export function modelNotPriced(model: string): ExpectedError {
  return new ExpectedError(
    'BAD_USER_INPUT',
    `The model ${model} has no price, so it cannot be billed: call one of GET /v1/models`,
    { field: 'model', reason: MODEL_NOT_PRICED },
  );
}

/**
 * A payment per request (x402) refused, or a settlement that failed: the 402's `error` (`reason`). Nothing was
 * served for it. Thrown by the x402 module (its checks, its settlement) and by metering (a payment whose signed
 * authorization pays for another call already, a payer that left a call unpaid).
 */
export class PaymentRefusedError extends Error {
  override name = 'PaymentRefusedError';
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
  }
}

/** The 402's code for a payment whose signed authorization pays for another call already. */
export const PAYMENT_ALREADY_USED = 'payment_already_used';
/** The 402's code for an `upto` payment from a wallet that left a served call unpaid (UNPAID). */
export const PAYER_HAS_UNPAID_CALLS = 'payer_has_unpaid_calls';
/** The 402's code for an `upto` payment whose maximum the wallet cannot cover beside its `upto` calls running. */
export const PAYER_FUNDS_IN_USE = 'payer_funds_in_use';
/** The refusals metering itself makes of a verified payment (the x402 module's own are counted there). */
export const METERING_PAYMENT_REFUSALS: ReadonlySet<string> = new Set([
  PAYMENT_ALREADY_USED,
  PAYER_HAS_UNPAID_CALLS,
  PAYER_FUNDS_IN_USE,
]);

const CODE_OF_UPSTREAM_FAILURE: Record<UpstreamErrorKind, ErrorCode> = {
  timeout: 'UPSTREAM_TIMEOUT',
  unavailable: 'UPSTREAM_UNAVAILABLE',
  rejected: 'UPSTREAM_ERROR',
  bad_response: 'UPSTREAM_ERROR',
  aborted: 'UPSTREAM_ERROR',
};

/** The upstream's own refusals of a request that pass through to the caller with their status. */
const CALLER_REQUEST_REFUSALS: ReadonlySet<number> = new Set([400, 404, 413, 422]);

/**
 * The upstream failed a held call: nothing was charged. Its code says how (`UPSTREAM_TIMEOUT`,
 * `UPSTREAM_UNAVAILABLE`, `UPSTREAM_ERROR`); `extensions.reason` keeps the finer kind
 * (`UPSTREAM_REJECTED`, `UPSTREAM_BAD_RESPONSE`...).
 */
export class CompletionFailedError extends ExpectedError {
  override name = 'CompletionFailedError';
  readonly upstream: UpstreamError;
  readonly requestId: string;
  constructor(upstream: UpstreamError, requestId: string) {
    super(CODE_OF_UPSTREAM_FAILURE[upstream.kind], `${upstream.message}; nothing was charged`, {
      reason: `UPSTREAM_${upstream.kind.toUpperCase()}`,
      requestId,
    });
    this.upstream = upstream;
    this.requestId = requestId;
  }

  /** The upstream's status when it refused the request itself as bad (400, 404, 413, 422); else the code's. */
  override get httpStatus(): number {
    const { kind, status } = this.upstream;
    return kind === 'rejected' && status !== null && CALLER_REQUEST_REFUSALS.has(status)
      ? status
      : httpStatusOf(this.code);
  }
}

/**
 * A completion whose record another process closed while it ran (its hold expired: this process's
 * heartbeat could not reach the database for a whole TTL, and a replica's sweep released it): its answer is
 * not sent, since nothing was charged for it.
 */
export class CallReleasedError extends ExpectedError {
  override name = 'CallReleasedError';
  constructor(requestId: string) {
    super(
      'SERVICE_UNAVAILABLE',
      'The call was released before it was answered (its hold expired); nothing was charged. Retry it.',
      { reason: 'HOLD_EXPIRED', requestId },
    );
  }
}

/** The upstream's model list could not be fetched. */
export class ModelListUnavailableError extends ExpectedError {
  override name = 'ModelListUnavailableError';
  constructor(upstream: UpstreamError) {
    super('UPSTREAM_UNAVAILABLE', upstream.message);
  }
}

/**
 * Whether a failed metered call got as far as its hold, which checks a key taken on trust is still live
 * in the same statement: the hold refused (insufficient credits) or the upstream failed after it. Any
 * other failure came before the key was checked.
 */
export function failedAfterKeyCheck(error: unknown): boolean {
  return error instanceof InsufficientCreditsError || error instanceof CompletionFailedError;
}

/** A call's hold could not be placed: the account's available balance or the key's limit is short. */
export class InsufficientCreditsError extends ExpectedError {
  override name = 'InsufficientCreditsError';
  readonly scope: 'account' | 'apiKey';
  constructor(scope: 'account' | 'apiKey', hold: bigint) {
    super(
      'INSUFFICIENT_CREDITS',
      scope === 'account'
        ? `Insufficient credits: this call may cost up to ${formatCredits(hold as MicroUsd)} credits, more than the available balance`
        : `Insufficient credits: this call may cost up to ${formatCredits(hold as MicroUsd)} credits, more than this API key's remaining spend limit`,
    );
    this.scope = scope;
  }
}
