/**
 * The devnet's smart-contract wallets (`contracts/SmartWallet.sol`): one owner key, EIP-1271
 * signatures, and a CREATE2 factory so that a wallet's address is known (and can sign, EIP-6492)
 * before it is deployed.
 */
import { readFileSync } from 'node:fs';
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
import { devAccounts } from './accounts.ts';

type Artifact = { abi: Abi; bytecode: Hex; deployedBytecode: Hex };

function artifact(name: string): Artifact {
  return JSON.parse(
    readFileSync(new URL(`../../contracts/${name}.json`, import.meta.url), 'utf8'),
  ) as Artifact;
}

const smartWalletArtifact = artifact('SmartWallet');

/** The wallet's own functions: `owner`, `isValidSignature` (EIP-1271) and `execute`. */
export const smartWalletAbi = [
  {
    type: 'function',
    name: 'owner',
    stateMutability: 'view',
    inputs: [],
    outputs: [{ name: '', type: 'address' }],
  },
  {
    type: 'function',
    name: 'isValidSignature',
    stateMutability: 'view',
    inputs: [
      { name: 'hash', type: 'bytes32' },
      { name: 'signature', type: 'bytes' },
    ],
    outputs: [{ name: '', type: 'bytes4' }],
  },
  {
    type: 'function',
    name: 'execute',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'target', type: 'address' },
      { name: 'value', type: 'uint256' },
      { name: 'data', type: 'bytes' },
    ],
    outputs: [{ name: '', type: 'bytes' }],
  },
] as const;

function clients(rpcUrl: string, account: Account) {
  return {
    wallet: createWalletClient({ account, transport: http(rpcUrl), pollingInterval: 50 }),
    public: createPublicClient({ transport: http(rpcUrl), pollingInterval: 50 }),
  };
}

async function deployed(rpcUrl: string, hash: Hash, what: string): Promise<Address> {
  const receipt = await createPublicClient({
    transport: http(rpcUrl),
    pollingInterval: 50,
  }).waitForTransactionReceipt({ hash, timeout: 30_000 });
  if (receipt.status !== 'success' || !receipt.contractAddress)
    throw new Error(`${what} deployment ${hash} failed`);
  return getAddress(receipt.contractAddress);
}

/**
 * Deploys a SmartWallet owned by `owner` (sent by the deployer account), resolved with its address.
 * The owner needs no ETH: signatures are all a wallet's owner ever gives in tests.
 */
export async function deploySmartWallet(rpcUrl: string, owner: Address): Promise<Address> {
  const hash = await clients(rpcUrl, devAccounts.deployer).wallet.deployContract({
    abi: smartWalletArtifact.abi,
    bytecode: smartWalletArtifact.bytecode,
    args: [owner],
    chain: null,
  });
  return deployed(rpcUrl, hash, 'SmartWallet');
}
