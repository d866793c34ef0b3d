/**
 * The one wagmi config, built at runtime from the API's `paymentConfig`: the chain, token and treasury
 * are never baked into the bundle. Injected wallets (MetaMask, any EIP-6963 wallet) always; Coinbase Wallet
 * (its extension, its app, and its smart wallet, which signs in through EIP-1271/6492) always, and
 * WalletConnect when the build had `WALLETCONNECT_PROJECT_ID`, both loading their SDKs only once chosen
 * (`lazy-connector.ts`); the dev wallet only on the local chain.
 */
import { browserRpcUrl, DEVNET_CHAIN_ID } from '@chainmeter/schema';
import { type Chain, defineChain } from 'viem';
import { base, baseSepolia, foundry } from 'viem/chains';
import { type Config, createConfig, http } from 'wagmi';
import { injected } from 'wagmi/connectors';
import { lazyConnector } from './lazy-connector.ts';

// The devnet keeps anvil's chain but gets a name people recognise.
const devnet = { ...foundry, name: 'the local devnet (anvil)' } as const satisfies Chain;
const KNOWN_CHAINS: readonly Chain[] = [base, baseSepolia, devnet];
const rpcOverrideKey = (chainId: number) => `chainmeter.rpcUrl.${chainId}`;

/** The part of `localStorage` the RPC choice uses. */
export type RpcOverrideStore = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export interface RpcChoice {
  /** The RPC the page reads the chain through (and the dev wallet sends through). */
  url: string;
  /** Why an override (a `?rpc=`, or one remembered on a real chain) was ignored, to say so; else null. */
  refusal: string | null;
}

/**
 * Picks the RPC for `chainId`. Only the local devnet (chain 31337, no real money) lets `?rpc=<url>` point
 * the page at another node, remembered per chain: tests and `npm start` setups run anvil on other ports.
 * On every other chain a link's `?rpc=` is refused, and so is one remembered before this rule existed,
 * which is also forgotten: a phishing link must not make the page read balances, confirmations or
 * transaction receipts from a hostile RPC.
 *
 * @example
 * chooseRpcUrl(8453, '?rpc=https://evil.example', localStorage)
 * // { url: 'https://mainnet.base.org', refusal: 'ignored the RPC override "https://evil.example": ...' }
 */
export function chooseRpcUrl(
  chainId: number,
  search: string,
  store: RpcOverrideStore | undefined,
): RpcChoice {
  const fromQuery = new URLSearchParams(search).get('rpc');
  const key = rpcOverrideKey(chainId);
  const fallback = browserRpcUrl(chainId);
  if (chainId !== DEVNET_CHAIN_ID) {
    const remembered = store?.getItem(key) ?? null;
    if (remembered !== null) store?.removeItem(key);
    const override = fromQuery ?? remembered;
    return {
      url: fallback,
      refusal:
        override === null
          ? null
          : `ignored the RPC override "${override}": only the local devnet (chain ${DEVNET_CHAIN_ID}) may be read through another RPC; chain ${chainId} is read through ${fallback}`,
    };
  }
  if (fromQuery && /^https?:\/\//.test(fromQuery)) {
    store?.setItem(key, fromQuery);
    return { url: fromQuery, refusal: null };
  }
  const url = store?.getItem(key) || fallback;
  return {
    url,
    refusal:
      fromQuery === null ? null : `ignored ?rpc="${fromQuery}": not an http(s) URL; reading through ${url}`,
  };
}

/** `chooseRpcUrl` for this page's address and storage; a refused override is reported in the console. */
function chainRpcUrl(chain: Chain): string {
  const choice = chooseRpcUrl(chain.id, globalThis.location?.search ?? '', globalThis.localStorage);
  if (choice.refusal !== null) console.warn(`ChainMeter: ${choice.refusal}`);
  return choice.url;
}

export function chainFor(chainId: number): Chain {
  return (
    KNOWN_CHAINS.find((chain) => chain.id === chainId) ??
    defineChain({
      id: chainId,
      name: `Chain ${chainId}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [browserRpcUrl(chainId)] } },
    })
  );
}

/**
 * WalletConnect's project id, from the build's environment (`WALLETCONNECT_PROJECT_ID`, see vite.config.ts).
 * A build without one has no WalletConnect code at all: the loader below is dead code and dropped.
 */
const BUILD_WALLETCONNECT_PROJECT_ID: string = import.meta.env.WALLETCONNECT_PROJECT_ID ?? '';
const loadWalletConnect = import.meta.env.WALLETCONNECT_PROJECT_ID
  ? async () => (await import('wagmi/connectors/walletConnect')).walletConnect
  : null;

const APP_NAME = 'ChainMeter';

export interface WalletConnectorOptions {
  /** Empty: no WalletConnect. */
  walletConnectProjectId: string;
  /** Imports wagmi's WalletConnect connector; null when this build has none. */
  loadWalletConnect?: (() => Promise<typeof import('wagmi/connectors/walletConnect').walletConnect>) | null;
}

/** The wallets people hold, besides the dev wallet: none of them loads an SDK before it is chosen. */
export function walletConnectors(options: WalletConnectorOptions) {
  const connectors = [
    injected({ shimDisconnect: true }),
    lazyConnector({
      id: 'coinbaseWalletSDK',
      name: 'Coinbase Wallet',
      type: 'coinbaseWallet',
      rdns: 'com.coinbase.wallet',
      load: async () => {
        const { coinbaseWallet } = await import('wagmi/connectors/coinbaseWallet');
        // 'all': the extension, the mobile app, or a smart wallet (passkey), whichever the person has.
        return coinbaseWallet({ appName: APP_NAME, preference: { options: 'all' } });
      },
    }),
  ];
  const projectId = options.walletConnectProjectId;
  const load = options.loadWalletConnect ?? loadWalletConnect;
  if (projectId && load) {
    connectors.push(
      lazyConnector({
        id: 'walletConnect',
        name: 'WalletConnect',
        type: 'walletConnect',
        load: async () =>
          (await load())({
            projectId,
            showQrModal: true,
            metadata: {
              name: APP_NAME,
              description: 'Pay for AI with USDC',
              url: globalThis.location?.origin ?? 'http://localhost',
              icons: [],
            },
          }),
      }),
    );
  }
  return connectors;
}

export async function createWagmiConfig(
  chainId: number,
  options: { walletConnectProjectId?: string } = {},
): Promise<Config> {
  const chain = chainFor(chainId);
  const rpcUrl = chainRpcUrl(chain);
  const connectors = walletConnectors({
    walletConnectProjectId: options.walletConnectProjectId ?? BUILD_WALLETCONNECT_PROJECT_ID,
  });
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
