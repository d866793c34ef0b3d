export const DEVNET_CHAIN_ID = 31337;
export const BASE_CHAIN_ID = 8453;
/** Circle's USDC on Base mainnet. */
export const BASE_USDC_ADDRESS = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
export const DEVNET_RPC_URL = 'http://127.0.0.1:8545';

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
