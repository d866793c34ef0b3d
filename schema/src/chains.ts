export const DEVNET_CHAIN_ID = 31337;
export const BASE_CHAIN_ID = 8453;
/** Circle's USDC on Base mainnet. */
export const BASE_USDC_ADDRESS = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
export const DEVNET_RPC_URL = 'http://127.0.0.1:8545';

/**
 * The public RPC endpoints the web client reads each chain through (viem's defaults for these chains).
 * The API's own `RPC_URL` may carry a provider key and is never handed to browsers; the API's
 * Content-Security-Policy allows exactly these (see api/src/http/security-headers.ts).
 */
const BROWSER_RPC_URLS: Record<number, string> = {
  [BASE_CHAIN_ID]: 'https://mainnet.base.org',
  84532: 'https://sepolia.base.org',
  [DEVNET_CHAIN_ID]: DEVNET_RPC_URL,
};

/** The RPC the web client uses for `chainId` by default; a chain it does not know falls back to a local node. */
export function browserRpcUrl(chainId: number): string {
  return BROWSER_RPC_URLS[chainId] ?? DEVNET_RPC_URL;
}

/**
 * Ponder treats blocks deeper than 30 as final on chains it has no entry for (anvil and Base
 * included), so a deposit must be credited inside that window: CONFIRMATIONS stays below it.
 */
export const PONDER_FINALITY_BLOCKS = 30;

export function defaultConfirmations(chainId: number): number {
  return chainId === DEVNET_CHAIN_ID ? 2 : 10;
}

/** Block explorers for links in the web client; none for the devnet. */
export const explorers: Record<number, string> = {
  [BASE_CHAIN_ID]: 'https://basescan.org',
  84532: 'https://sepolia.basescan.org',
};
