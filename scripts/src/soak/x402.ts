/**
 * Pay-per-request calls for the soak: the official x402 client (`@x402/fetch` around `@x402/core`'s client with
 * `@x402/evm`'s exact scheme), paying from wallets that sign EIP-3009 authorizations for the platform's relayer
 * to settle. Each paid call is a transfer to the treasury, which PAYMENT-RESPONSE names.
 */

import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import { decodePaymentResponseHeader } from '@x402/core/http';
import { wrapFetchWithPayment } from '@x402/fetch';
import type { Address, PrivateKeyAccount } from 'viem';
import { CHAIN_ID } from './stack.ts';

/** A `fetch` that pays each 402 from the payers in turn (the devnet's token allowed by name: DESIGN.md). */
export function payingFetch(
  rpcUrl: string,
  token: Address,
  payers: readonly PrivateKeyAccount[],
): typeof fetch {
  const fetches = payers.map((payer) =>
    wrapFetchWithPayment(fetch, devnetX402Client(payer, { rpcUrl, assets: [token], chainId: CHAIN_ID })),
  );
  let next = 0;
  return ((input: RequestInfo | URL, init?: RequestInit) =>
    (fetches[next++ % fetches.length] as typeof fetch)(input, init)) as typeof fetch;
}

/** The settlement transaction PAYMENT-RESPONSE names, if the answer has one. */
export function settlementOf(headers: Headers): string | undefined {
  const header = headers.get('PAYMENT-RESPONSE');
  if (!header) return undefined;
  try {
    return decodePaymentResponseHeader(header).transaction || undefined;
  } catch {
    return undefined;
  }
}
