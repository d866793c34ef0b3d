import { formatCredits, type MicroUsd } from '@chainmeter/schema';
import { ExpectedError } from '../../errors.ts';

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
