/**
 * The configuration of an API that a test starts in-process: what every such test shares, so that each file
 * lists only what it is about.
 */
import { DEVNET_CHAIN_ID } from '@chainmeter/schema';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type ApiConfig, loadConfig } from '../../src/env.ts';

/** The test USDC's address on a fresh devnet: the first contract anvil's account 0 deploys. */
export const DEVNET_USDC_ADDRESS = '0x5FbDB2315678afecb367f032d93F642f64180aa3';

/**
 * The devnet's chain and addresses, silent logs (unless the environment's LOG_LEVEL says otherwise), and an RPC on a closed port (wallet signatures are checked
 * locally; a test that needs the chain passes its anvil's `RPC_URL`), then `overrides`. `DATABASE_URL` is
 * the test's own database.
 */
export function testApiConfig(
  overrides: Record<string, string | undefined> & { DATABASE_URL: string },
): ApiConfig {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    PUBLIC_ORIGIN: 'http://localhost:4000',
    RPC_URL: 'http://127.0.0.1:9',
    CHAIN_ID: String(DEVNET_CHAIN_ID),
    USDC_ADDRESS: DEVNET_USDC_ADDRESS,
    TREASURY_ADDRESS: devAccounts.treasury.address,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    ...overrides,
  });
}
