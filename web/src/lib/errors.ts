/**
 * Messages people can act on, from wallet, chain and GraphQL errors.
 */

import type { CombinedError } from 'urql';
import { BaseError, UserRejectedRequestError } from 'viem';

export function describeWalletError(error: unknown): string {
  if (error instanceof BaseError) {
    if (
      error.walk((cause) => cause instanceof UserRejectedRequestError) ||
      /reject|denied/i.test(error.message)
    ) {
      return 'You rejected the request in your wallet. Nothing was sent.';
    }
    if (/exceeds balance|insufficient funds/i.test(error.message)) {
      return /insufficient funds/i.test(error.message)
        ? 'Your wallet has too little ETH to pay the network fee.'
        : 'Your wallet has too little USDC for this amount.';
    }
    if (/fetch|HTTP request failed|network|timed? ?out/i.test(error.message)) {
      return `The chain's RPC did not answer (${error.shortMessage}). Check your connection or wallet network and try again.`;
    }
    return error.shortMessage;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

export function describeGraphqlError(error: CombinedError): string {
  if (error.networkError) return 'The ChainMeter API could not be reached. Check your connection and retry.';
  const first = error.graphQLErrors[0];
  if (!first) return error.message;
  switch (first.extensions?.code) {
    case 'UNAUTHENTICATED':
      return 'Your session has ended. Please sign in again.';
    case 'INSUFFICIENT_CREDITS':
      return 'Not enough credits for this request. Buy credits and try again.';
    case 'RATE_LIMITED':
      return 'Too many requests. Wait a moment and try again.';
    default:
      return first.message;
  }
}
