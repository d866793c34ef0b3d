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
  concat,
  createPublicClient,
  createWalletClient,
  encodeAbiParameters,
  encodeFunctionData,
  getAddress,
  getContractAddress,
  type Hash,
  type Hex,
  http,
  type LocalAccount,
  pad,
  parseAbi,
  type SignableMessage,
  serializeErc6492Signature,
  type TypedDataDefinition,
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
export const smartWalletAbi = parseAbi([
  'function owner() view returns (address)',
  'function isValidSignature(bytes32 hash, bytes signature) view returns (bytes4)',
  'function execute(address target, uint256 value, bytes data) returns (bytes)',
]);

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

const factoryArtifact = artifact('SmartWalletFactory');

/** The factory's functions: `createWallet(owner, salt)` (CREATE2) and `walletAddress(owner, salt)`. */
export const smartWalletFactoryAbi = parseAbi([
  'function createWallet(address owner, bytes32 salt) returns (address wallet)',
  'function walletAddress(address owner, bytes32 salt) view returns (address)',
]);

/** SmartWallet's creation code (constructor included), as the factory deploys it with CREATE2. */
export const smartWalletCreationCode: Hex = smartWalletArtifact.bytecode;

/** Deploys a SmartWalletFactory (sent by the deployer account), resolved with its address. */
export async function deploySmartWalletFactory(rpcUrl: string): Promise<Address> {
  const hash = await clients(rpcUrl, devAccounts.deployer).wallet.deployContract({
    abi: factoryArtifact.abi,
    bytecode: factoryArtifact.bytecode,
    chain: null,
  });
  return deployed(rpcUrl, hash, 'SmartWalletFactory');
}

export type CounterfactualWallet = {
  /** Where the wallet will be once deployed (CREATE2 from the factory, the owner and the salt). */
  address: Address;
  factory: Address;
  /** The call to `factory` that deploys it: `createWallet(owner, salt)`. */
  factoryData: Hex;
  owner: LocalAccount;
  salt: Hex;
  /** The owner signs `message` (EIP-191) and the signature is wrapped for EIP-6492. */
  signMessage(parameters: { message: SignableMessage }): Promise<Hex>;
  /** The owner signs typed data and the signature is wrapped for EIP-6492. */
  signTypedData(parameters: TypedDataDefinition): Promise<Hex>;
  /** Wraps any signature with this wallet's deployment (EIP-6492). */
  wrap(signature: Hex): Hex;
  /** Deploys it (sent by the deployer account); harmless when it already exists. */
  deploy(): Promise<Address>;
};

/**
 * A SmartWallet of `owner` that is not deployed (until `deploy()`), yet can sign: its signatures carry
 * the factory call that would create it (EIP-6492), which verifiers such as viem's `verifyHash` and
 * `verifySiweMessage` simulate before asking the wallet (EIP-1271).
 *
 * @example
 * const factory = await deploySmartWalletFactory(rpcUrl);
 * const wallet = counterfactualWallet(rpcUrl, { factory, owner: privateKeyToAccount(generatePrivateKey()) });
 * const signature = await wallet.signMessage({ message });  // sign in as wallet.address
 */
export function counterfactualWallet(
  rpcUrl: string,
  parameters: {
    factory: Address;
    owner: LocalAccount;
    /** Default zero: one wallet per owner and factory. */
    salt?: Hex;
  },
): CounterfactualWallet {
  const { factory, owner } = parameters;
  const salt = parameters.salt ?? pad('0x00', { size: 32 });
  const address = getContractAddress({
    opcode: 'CREATE2',
    from: factory,
    salt,
    bytecode: concat([smartWalletCreationCode, encodeAbiParameters([{ type: 'address' }], [owner.address])]),
  });
  const factoryData = encodeFunctionData({
    abi: smartWalletFactoryAbi,
    functionName: 'createWallet',
    args: [owner.address, salt],
  });
  const wrap = (signature: Hex) =>
    serializeErc6492Signature({ address: factory, data: factoryData, signature });
  return {
    address,
    factory,
    factoryData,
    owner,
    salt,
    wrap,
    signMessage: async ({ message }) => wrap(await owner.signMessage({ message })),
    signTypedData: async (typedData) => wrap(await owner.signTypedData(typedData)),
    deploy: async () => {
      const hash = await clients(rpcUrl, devAccounts.deployer).wallet.writeContract({
        address: factory,
        abi: smartWalletFactoryAbi,
        functionName: 'createWallet',
        args: [owner.address, salt],
        chain: null,
      });
      const receipt = await clients(rpcUrl, devAccounts.deployer).public.waitForTransactionReceipt({
        hash,
        timeout: 30_000,
      });
      if (receipt.status !== 'success') throw new Error(`createWallet ${hash} reverted`);
      return address;
    },
  };
}
