/**
 * EIP-3009 on USDC (and the devnet's TestUSDC, which matches it): the typed data a payer signs, the
 * ABI a relayer calls, and helpers to sign and submit. Works for any FiatToken v2 deployment: pass its
 * own EIP-712 name and version (Base's USDC is "USD Coin" / "2", Base Sepolia's "USDC" / "2").
 *
 * @example
 * const authorization = transferAuthorization({ from: payer.address, to: treasury, value: 1_000_000n });
 * const signature = await signTransferAuthorization(payer, { token, chainId: 31337 }, authorization);
 * await submitTransferWithAuthorization(rpcUrl, devAccounts.relayer, token, authorization, signature);
 */
import {
  cancelAuthorizationTypes,
  transferWithAuthorizationTypes,
  usdcAuthorizationAbi,
} from '@chainmeter/schema';
import {
  type Account,
  type Address,
  createPublicClient,
  createWalletClient,
  type Hash,
  type Hex,
  http,
  type LocalAccount,
  parseAbi,
  parseSignature,
  toHex,
} from 'viem';

/** The devnet token's EIP-712 domain name and version: those of Circle's USDC on Base. */
export const TEST_USDC_EIP712_NAME = 'USD Coin';
export const TEST_USDC_EIP712_VERSION = '2';

/** The EIP-3009 (and EIP-2612) surface of FiatToken v2.2, as viem wants it. */
export const eip3009Abi = [
  // What relaying needs, as the platform declares it (transferWithAuthorization and cancelAuthorization with
  // a bytes signature, authorizationState, name, version), then the rest of FiatToken v2's surface.
  ...usdcAuthorizationAbi,
  ...parseAbi([
    'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
    'function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
    'function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
    'function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
    'function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)',
    'function nonces(address owner) view returns (uint256)',
    'function DOMAIN_SEPARATOR() view returns (bytes32)',
    'event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)',
    'event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce)',
  ]),
] as const;

/** The EIP-712 types of each authorization FiatToken v2 accepts (the transfer's and the cancel's are the platform's own). */
export { cancelAuthorizationTypes, transferWithAuthorizationTypes };

export const receiveWithAuthorizationTypes = {
  ReceiveWithAuthorization: transferWithAuthorizationTypes.TransferWithAuthorization,
} as const;

export const permitTypes = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;

export type TokenDomain = {
  token: Address;
  chainId: number;
  /** Default "USD Coin" (Base's USDC and the devnet's TestUSDC). */
  name?: string;
  /** Default "2". */
  version?: string;
};

/** The token's EIP-712 domain, as FiatToken v2 builds it. */
export function usdcDomain(domain: TokenDomain) {
  return {
    name: domain.name ?? TEST_USDC_EIP712_NAME,
    version: domain.version ?? TEST_USDC_EIP712_VERSION,
    chainId: domain.chainId,
    verifyingContract: domain.token,
  } as const;
}

export type TransferAuthorization = {
  from: Address;
  to: Address;
  value: bigint;
  /** Unix seconds; the token requires `block.timestamp > validAfter`. */
  validAfter: bigint;
  /** Unix seconds; the token requires `block.timestamp < validBefore`. */
  validBefore: bigint;
  nonce: Hex;
};

/** A random 32-byte authorization nonce (EIP-3009 nonces are unordered). */
export function randomAuthorizationNonce(): Hex {
  return toHex(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * An authorization with defaults: valid from the epoch, for `validForSeconds` (default 600) from now
 * by this machine's clock, with a random nonce.
 */
export function transferAuthorization(
  input: Pick<TransferAuthorization, 'from' | 'to' | 'value'> &
    Partial<TransferAuthorization> & { validForSeconds?: number },
): TransferAuthorization {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return {
    from: input.from,
    to: input.to,
    value: input.value,
    validAfter: input.validAfter ?? 0n,
    validBefore: input.validBefore ?? now + BigInt(input.validForSeconds ?? 600),
    nonce: input.nonce ?? randomAuthorizationNonce(),
  };
}

type Signer = Pick<LocalAccount, 'signTypedData'>;

/** `signer` signs a TransferWithAuthorization (the 65-byte signature; `splitSignature` gives v, r, s). */
export async function signTransferAuthorization(
  signer: Signer,
  domain: TokenDomain,
  authorization: TransferAuthorization,
): Promise<Hex> {
  return signer.signTypedData({
    domain: usdcDomain(domain),
    types: transferWithAuthorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message: authorization,
  });
}

/** `signer` signs a ReceiveWithAuthorization: only `authorization.to` may submit it. */
export async function signReceiveAuthorization(
  signer: Signer,
  domain: TokenDomain,
  authorization: TransferAuthorization,
): Promise<Hex> {
  return signer.signTypedData({
    domain: usdcDomain(domain),
    types: receiveWithAuthorizationTypes,
    primaryType: 'ReceiveWithAuthorization',
    message: authorization,
  });
}

/** `signer` signs the cancellation of its unused authorization `nonce`. */
export async function signCancelAuthorization(
  signer: Signer,
  domain: TokenDomain,
  cancellation: { authorizer: Address; nonce: Hex },
): Promise<Hex> {
  return signer.signTypedData({
    domain: usdcDomain(domain),
    types: cancelAuthorizationTypes,
    primaryType: 'CancelAuthorization',
    message: cancellation,
  });
}

/** `signer` signs an EIP-2612 permit; `nonce` is the token's `nonces(owner)`. */
export async function signPermit(
  signer: Signer,
  domain: TokenDomain,
  permit: { owner: Address; spender: Address; value: bigint; nonce: bigint; deadline: bigint },
): Promise<Hex> {
  return signer.signTypedData({
    domain: usdcDomain(domain),
    types: permitTypes,
    primaryType: 'Permit',
    message: permit,
  });
}

/** A 65-byte signature as the v, r, s the token's first overloads take. */
export function splitSignature(signature: Hex): { v: number; r: Hex; s: Hex } {
  const { v, yParity, r, s } = parseSignature(signature);
  return { v: Number(v ?? BigInt(27 + (yParity ?? 0))), r, s };
}

/**
 * `relayer` submits a signed TransferWithAuthorization and pays its gas; resolves with the hash once
 * mined (throws if it reverted). `signature` goes to the `bytes` overload unless `overload: 'vrs'`.
 */
export async function submitTransferWithAuthorization(
  rpcUrl: string,
  relayer: Account,
  token: Address,
  authorization: TransferAuthorization,
  signature: Hex,
  options: { overload?: 'bytes' | 'vrs' } = {},
): Promise<Hash> {
  const wallet = createWalletClient({ account: relayer, transport: http(rpcUrl), pollingInterval: 50 });
  const { from, to, value, validAfter, validBefore, nonce } = authorization;
  let hash: Hash;
  if (options.overload === 'vrs') {
    const { v, r, s } = splitSignature(signature);
    hash = await wallet.writeContract({
      address: token,
      abi: eip3009Abi,
      functionName: 'transferWithAuthorization',
      args: [from, to, value, validAfter, validBefore, nonce, v, r, s],
      chain: null,
    });
  } else {
    hash = await wallet.writeContract({
      address: token,
      abi: eip3009Abi,
      functionName: 'transferWithAuthorization',
      args: [from, to, value, validAfter, validBefore, nonce, signature],
      chain: null,
    });
  }
  const receipt = await createPublicClient({
    transport: http(rpcUrl),
    pollingInterval: 50,
  }).waitForTransactionReceipt({ hash, timeout: 30_000 });
  if (receipt.status !== 'success') throw new Error(`transferWithAuthorization ${hash} reverted`);
  return hash;
}

/** Whether `authorizer`'s authorization `nonce` was used or canceled. */
export async function authorizationState(
  rpcUrl: string,
  token: Address,
  authorizer: Address,
  nonce: Hex,
): Promise<boolean> {
  return createPublicClient({ transport: http(rpcUrl) }).readContract({
    address: token,
    abi: eip3009Abi,
    functionName: 'authorizationState',
    args: [authorizer, nonce],
  });
}
