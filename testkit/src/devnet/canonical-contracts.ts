/**
 * Contracts that live at the same address on every chain that matters (Base included) and that anvil
 * lacks: Permit2, the x402 Permit2 proxies (`upto` and `exact`) and Multicall3. Every devnet places them
 * at start (`startAnvil` calls `placeCanonicalContracts`), so that x402 and viem find them where they
 * find them on Base.
 *
 * They are this repository's own contracts (`testkit/contracts/`), written from the public
 * specifications and ABIs to behave as the real ones do for what x402 and viem call; their runtime code
 * is set with `anvil_setCode`, so no constructor runs and none of them keeps constructor state. Placing
 * again (a restarted devnet) replaces the code and keeps the storage (Permit2's used nonces).
 */
import { readFileSync } from 'node:fs';
import {
  type Address,
  createPublicClient,
  createTestClient,
  getAddress,
  type Hex,
  http,
  parseAbi,
} from 'viem';

/** Uniswap's Permit2 (the SignatureTransfer half on the devnet). */
export const PERMIT2_ADDRESS: Address = '0x000000000022D473030F116dDEE9F6B43aC78BA3';
/** x402's `upto` proxy: the spender of an upto payer's Permit2 signature. */
export const X402_UPTO_PERMIT2_PROXY_ADDRESS: Address = '0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002';
/** x402's `exact` proxy, for `exact` payments by Permit2 (tokens without EIP-3009). */
export const X402_EXACT_PERMIT2_PROXY_ADDRESS: Address = '0x402085c248EeA27D92E8b30b2C58ed07f9E20001';
export const MULTICALL3_ADDRESS: Address = '0xcA11bde05977b3631167028862bE2a173976CA11';

function runtimeCode(contract: string): Hex {
  const artifact = JSON.parse(
    readFileSync(new URL(`../../contracts/${contract}.json`, import.meta.url), 'utf8'),
  ) as { deployedBytecode: Hex };
  return artifact.deployedBytecode;
}

/** What `placeCanonicalContracts` sets, address by address. */
export const canonicalContracts: readonly { name: string; address: Address; code: Hex }[] = [
  { name: 'Permit2', address: PERMIT2_ADDRESS, code: runtimeCode('Permit2') },
  {
    name: 'x402UptoPermit2Proxy',
    address: X402_UPTO_PERMIT2_PROXY_ADDRESS,
    code: runtimeCode('X402UptoPermit2Proxy'),
  },
  {
    name: 'x402ExactPermit2Proxy',
    address: X402_EXACT_PERMIT2_PROXY_ADDRESS,
    code: runtimeCode('X402ExactPermit2Proxy'),
  },
  { name: 'Multicall3', address: MULTICALL3_ADDRESS, code: runtimeCode('Multicall3') },
];

/** Sets the canonical contracts' code on an anvil node (`anvil_setCode`); no block is mined. */
export async function placeCanonicalContracts(rpcUrl: string): Promise<void> {
  const client = createTestClient({ mode: 'anvil', transport: http(rpcUrl) });
  for (const { address, code } of canonicalContracts) await client.setCode({ address, bytecode: code });
}

/** Whether every canonical contract is there with this checkout's code (e.g. on a restored devnet). */
export async function canonicalContractsPlaced(rpcUrl: string): Promise<boolean> {
  const client = createPublicClient({ transport: http(rpcUrl) });
  for (const { address, code } of canonicalContracts) {
    if ((await client.getCode({ address }))?.toLowerCase() !== code.toLowerCase()) return false;
  }
  return true;
}

/** Permit2's SignatureTransfer functions, events and errors, as the devnet's Permit2 has them. */
export const permit2Abi = parseAbi([
  'struct TokenPermissions { address token; uint256 amount; }',
  'struct PermitTransferFrom { TokenPermissions permitted; uint256 nonce; uint256 deadline; }',
  'struct SignatureTransferDetails { address to; uint256 requestedAmount; }',
  'function DOMAIN_SEPARATOR() view returns (bytes32)',
  'function nonceBitmap(address owner, uint256 wordPos) view returns (uint256)',
  'function invalidateUnorderedNonces(uint256 wordPos, uint256 mask)',
  'function permitTransferFrom(PermitTransferFrom permit, SignatureTransferDetails transferDetails, address owner, bytes signature)',
  'function permitWitnessTransferFrom(PermitTransferFrom permit, SignatureTransferDetails transferDetails, address owner, bytes32 witness, string witnessTypeString, bytes signature)',
  'event UnorderedNonceInvalidation(address indexed owner, uint256 word, uint256 mask)',
  'error SignatureExpired(uint256 signatureDeadline)',
  'error InvalidAmount(uint256 maxAmount)',
  'error InvalidNonce()',
  'error InvalidSignatureLength()',
  'error InvalidSignature()',
  'error InvalidSigner()',
  'error InvalidContractSignature()',
]);

/** Multicall3's functions (the canonical ABI). */
export const multicall3Abi = parseAbi([
  'struct Call { address target; bytes callData; }',
  'struct Call3 { address target; bool allowFailure; bytes callData; }',
  'struct Call3Value { address target; bool allowFailure; uint256 value; bytes callData; }',
  'struct Result { bool success; bytes returnData; }',
  'function aggregate(Call[] calls) payable returns (uint256 blockNumber, bytes[] returnData)',
  'function tryAggregate(bool requireSuccess, Call[] calls) payable returns (Result[] returnData)',
  'function tryBlockAndAggregate(bool requireSuccess, Call[] calls) payable returns (uint256 blockNumber, bytes32 blockHash, Result[] returnData)',
  'function blockAndAggregate(Call[] calls) payable returns (uint256 blockNumber, bytes32 blockHash, Result[] returnData)',
  'function aggregate3(Call3[] calls) payable returns (Result[] returnData)',
  'function aggregate3Value(Call3Value[] calls) payable returns (Result[] returnData)',
  'function getBlockHash(uint256 blockNumber) view returns (bytes32 blockHash)',
  'function getBlockNumber() view returns (uint256 blockNumber)',
  'function getCurrentBlockCoinbase() view returns (address coinbase)',
  'function getCurrentBlockDifficulty() view returns (uint256 difficulty)',
  'function getCurrentBlockGasLimit() view returns (uint256 gaslimit)',
  'function getCurrentBlockTimestamp() view returns (uint256 timestamp)',
  'function getEthBalance(address addr) view returns (uint256 balance)',
  'function getLastBlockHash() view returns (bytes32 blockHash)',
  'function getBasefee() view returns (uint256 basefee)',
  'function getChainId() view returns (uint256 chainid)',
]);

/**
 * Whether `owner`'s Permit2 nonce is used (or invalidated): bit `nonce & 255` of word `nonce >> 8` of
 * `nonceBitmap(owner, word)`.
 */
export async function permit2NonceUsed(rpcUrl: string, owner: Address, nonce: bigint): Promise<boolean> {
  const word = await createPublicClient({ transport: http(rpcUrl) }).readContract({
    address: PERMIT2_ADDRESS,
    abi: permit2Abi,
    functionName: 'nonceBitmap',
    args: [getAddress(owner), nonce >> 8n],
  });
  return ((word >> (nonce & 255n)) & 1n) === 1n;
}
