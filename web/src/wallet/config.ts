/**
 * The one wagmi config, built at runtime from the API's `paymentConfig`: the chain, token and treasury
 * are never baked into the bundle. Injected wallets (MetaMask, the Coinbase Wallet extension, any
 * EIP-6963 wallet) always; the dev wallet only on the local chain.
 */
import { DEVNET_CHAIN_ID, DEVNET_RPC_URL } from '@chainmeter/schema';
import { type Chain, defineChain } from 'viem';
import { base, baseSepolia, foundry } from 'viem/chains';
import { type Config, createConfig, http } from 'wagmi';
import { injected } from 'wagmi/connectors';

// The devnet keeps anvil's chain but gets a name people recognise.
const devnet = { ...foundry, name: 'the local devnet (anvil)' } as const satisfies Chain;
const KNOWN_CHAINS: readonly Chain[] = [base, baseSepolia, devnet];
const rpcOverrideKey = (chainId: number) => `chainmeter.rpcUrl.${chainId}`;

/**
 * The RPC the page reads the chain through (and the dev wallet sends through). On the devnet that is
 * anvil, by default the `npm start` one; `?rpc=<url>` points the page at another (remembered).
 */
export function chainRpcUrl(chain: Chain): string {
  const fromQuery = new URLSearchParams(globalThis.location?.search ?? '').get('rpc');
  if (fromQuery && /^https?:\/\//.test(fromQuery)) {
    globalThis.localStorage?.setItem(rpcOverrideKey(chain.id), fromQuery);
    return fromQuery;
  }
  const remembered = globalThis.localStorage?.getItem(rpcOverrideKey(chain.id));
  if (remembered) return remembered;
  return chain.rpcUrls.default.http[0] ?? DEVNET_RPC_URL;
}

export function chainFor(chainId: number): Chain {
  return (
    KNOWN_CHAINS.find((chain) => chain.id === chainId) ??
    defineChain({
      id: chainId,
      name: `Chain ${chainId}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [DEVNET_RPC_URL] } },
    })
  );
}

export async function createWagmiConfig(chainId: number): Promise<Config> {
  const chain = chainFor(chainId);
  const rpcUrl = chainRpcUrl(chain);
  const connectors = [injected({ shimDisconnect: true })];
  if (chainId === DEVNET_CHAIN_ID) {
    const { devWallet } = await import('./dev-wallet.ts');
    connectors.push(devWallet({ chain, rpcUrl }) as unknown as (typeof connectors)[number]);
  }
  return createConfig({
    chains: [chain],
    connectors,
    transports: { [chain.id]: http(rpcUrl) },
    multiInjectedProviderDiscovery: true,
  });
}
