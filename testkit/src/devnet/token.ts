import { readFileSync } from 'node:fs';
import { usdcAbi } from '@chainmeter/schema';
import {
  type Abi,
  type Account,
  type Address,
  createPublicClient,
  createWalletClient,
  getAddress,
  type Hash,
  type Hex,
  http,
} from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { devAccounts } from './accounts.ts';

/** Compiled by `compile-contracts.ts` and checked in: starting a devnet never runs a compiler. */
const testUsdcArtifact = JSON.parse(
  readFileSync(new URL('../../contracts/TestUSDC.json', import.meta.url), 'utf8'),
) as { abi: Abi; bytecode: Hex; deployedBytecode: Hex };

/** TestUSDC's full ABI (ERC-20, open mint, EIP-3009, EIP-2612); `eip3009Abi` is a typed subset. */
export const testUsdcAbi: Abi = testUsdcArtifact.abi;
/** TestUSDC's runtime code: what a deployment leaves at its address (it has no immutables). */
export const testUsdcRuntimeCode: Hex = testUsdcArtifact.deployedBytecode;

// A local node answers at once: poll receipts fast instead of viem's 4 s default for HTTP.
const POLLING_INTERVAL_MS = 50;

function publicClient(rpcUrl: string) {
  return createPublicClient({ transport: http(rpcUrl), pollingInterval: POLLING_INTERVAL_MS });
}

function walletClient(rpcUrl: string, account: Account) {
  return createWalletClient({ account, transport: http(rpcUrl), pollingInterval: POLLING_INTERVAL_MS });
}

export type MinedTransaction = { txHash: Hash; blockNumber: bigint };

/** Waits until `hash` is mined; throws when it reverted. */
export async function waitMined(rpcUrl: string, hash: Hash): Promise<MinedTransaction> {
  const receipt = await publicClient(rpcUrl).waitForTransactionReceipt({ hash, timeout: 30_000 });
  if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`);
  return { txHash: hash, blockNumber: receipt.blockNumber };
}

/** Deploys TestUSDC from the deployer account and returns its (checksummed) address once mined. */
export async function deployTestUsdc(rpcUrl: string): Promise<Address> {
  const hash = await walletClient(rpcUrl, devAccounts.deployer).deployContract({
    abi: testUsdcArtifact.abi,
    bytecode: testUsdcArtifact.bytecode,
    chain: null,
  });
  const receipt = await publicClient(rpcUrl).waitForTransactionReceipt({ hash, timeout: 30_000 });
  if (receipt.status !== 'success' || !receipt.contractAddress) {
    throw new Error(`TestUSDC deployment ${hash} failed`);
  }
  return getAddress(receipt.contractAddress);
}

/** Open devnet mint (sent by the deployer): `amount` in base units (6 decimals). */
export async function mintUsdc(
  rpcUrl: string,
  token: Address,
  to: Address,
  amount: bigint,
): Promise<MinedTransaction> {
  return waitMined(rpcUrl, await submitUsdcMint(rpcUrl, token, to, amount));
}

/**
 * Sends an open mint without waiting for it to be mined: several sent one after another (each takes the
 * deployer's next pending nonce) land in the same block, where `mintUsdc` each time waits for a block of
 * its own (up to a second on an interval-mining devnet).
 */
export async function submitUsdcMint(
  rpcUrl: string,
  token: Address,
  to: Address,
  amount: bigint,
): Promise<Hash> {
  return walletClient(rpcUrl, devAccounts.deployer).writeContract({
    address: token,
    abi: usdcAbi,
    functionName: 'mint',
    args: [to, amount],
    chain: null,
  });
}

/** Sends an ERC-20 `transfer` without waiting for it to be mined (for several in one block). */
export async function submitUsdcTransfer(
  rpcUrl: string,
  token: Address,
  fromAccount: Account,
  to: Address,
  amount: bigint,
): Promise<Hash> {
  return walletClient(rpcUrl, fromAccount).writeContract({
    address: token,
    abi: usdcAbi,
    functionName: 'transfer',
    args: [to, amount],
    chain: null,
  });
}

/**
 * An ERC-20 `transfer` from `fromAccount`, resolved once mined. With automine off this waits for a
 * block, so mine one (or use interval mining).
 */
export async function transferUsdc(
  rpcUrl: string,
  token: Address,
  fromAccount: Account,
  to: Address,
  amount: bigint,
): Promise<MinedTransaction> {
  return waitMined(rpcUrl, await submitUsdcTransfer(rpcUrl, token, fromAccount, to, amount));
}

export async function usdcBalance(rpcUrl: string, token: Address, owner: Address): Promise<bigint> {
  return publicClient(rpcUrl).readContract({
    address: token,
    abi: usdcAbi,
    functionName: 'balanceOf',
    args: [owner],
  });
}

export type GaslessPayer = PrivateKeyAccount & { privateKey: Hex };

/**
 * A brand-new wallet (random key) holding `usdc` base units of the token and no ETH at all: it can
 * only pay by signing (EIP-3009, Permit2 with a sponsored approval), never by sending a transaction.
 */
export async function createGaslessPayer(
  rpcUrl: string,
  token: Address,
  usdc: bigint,
): Promise<GaslessPayer> {
  const privateKey = generatePrivateKey();
  const account = Object.assign(privateKeyToAccount(privateKey), { privateKey });
  if (usdc > 0n) await mintUsdc(rpcUrl, token, account.address, usdc);
  return account;
}
