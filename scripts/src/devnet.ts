/**
 * `npm run devnet`: a local chain for trying payments by hand. anvil on 127.0.0.1:8545 (chain
 * 31337), the test USDC deployed (EIP-3009, EIP-712 "USD Coin" / "2"), 10,000 USDC minted to each payer,
 * Permit2, the x402 Permit2 proxies and Multicall3 at their canonical addresses, a relayer account with
 * ETH for gas. Ctrl-C stops it.
 * (`npm start` runs the whole platform and reuses these functions.)
 */
import { DEVNET_CHAIN_ID } from '@chainmeter/schema';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { startAnvil } from '@chainmeter/testkit/anvil';
import { canonicalContracts } from '@chainmeter/testkit/canonical-contracts';
import { deployTestUsdc, mintUsdc } from '@chainmeter/testkit/token';

const FUNDING = 10_000n * 1_000_000n; // 10,000 USDC in base units (6 decimals)

const anvil = await startAnvil({ port: 8545, chainId: DEVNET_CHAIN_ID });
let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  await anvil.stop();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

try {
  const usdc = await deployTestUsdc(anvil.rpcUrl);
  for (const payer of devAccounts.payers) await mintUsdc(anvil.rpcUrl, usdc, payer.address, FUNDING);
  console.log(`rpc       ${anvil.rpcUrl} (chain ${DEVNET_CHAIN_ID})`);
  console.log(`usdc      ${usdc}`);
  console.log(`treasury  ${devAccounts.treasury.address}`);
  for (const { name, address } of canonicalContracts) console.log(`${name.padEnd(22)} ${address}`);
  console.log(
    `relayer   ${devAccounts.relayer.address}  key ${devAccounts.relayer.privateKey}  (ETH for gas)`,
  );
  for (const payer of devAccounts.payers) {
    console.log(`payer     ${payer.address}  key ${payer.privateKey}  10000 USDC`);
  }
  console.log('ready (Ctrl-C stops)');
} catch (error) {
  console.error(error);
  await anvil.stop();
  process.exit(1);
}
