/**
 * An official x402 client (`@x402/core`'s `x402Client` with an `@x402/evm` scheme) paying from `payer` on the
 * devnet: the scheme registered for the chain's network, and spend controls naming the assets it may pay.
 * The client pays only the assets it knows unless told, and the devnet's token is not one (DESIGN.md).
 *
 * @example
 * const paying = wrapFetchWithPayment(fetch, devnetX402Client(payer, { rpcUrl, assets: [token] }));
 */

import { DEVNET_CHAIN_ID } from '@chainmeter/schema/chains';
import { x402Client } from '@x402/core/client';
import { toClientEvmSigner } from '@x402/evm';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import { UptoEvmScheme } from '@x402/evm/upto/client';
import { type Address, createPublicClient, http } from 'viem';

export interface DevnetX402ClientOptions {
  rpcUrl: string;
  /** The tokens it may pay (the devnet's USDC, usually alone). */
  assets: readonly Address[];
  /** `exact` (EIP-3009, the default) or `upto` (Permit2). */
  scheme?: 'exact' | 'upto';
  chainId?: number;
}

export function devnetX402Client(
  payer: Parameters<typeof toClientEvmSigner>[0],
  options: DevnetX402ClientOptions,
): x402Client {
  const network = `eip155:${options.chainId ?? DEVNET_CHAIN_ID}` as const;
  const signer = toClientEvmSigner(payer, createPublicClient({ transport: http(options.rpcUrl) }));
  return new x402Client()
    .register(network, options.scheme === 'upto' ? new UptoEvmScheme(signer) : new ExactEvmScheme(signer))
    .setSpendControls({ allowedAssets: options.assets.map((asset) => ({ network, asset })) });
}
