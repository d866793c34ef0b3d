/**
 * EIP-3009 on USDC (FiatToken v2) as the platform uses it: the API relays a payer's signed
 * `transferWithAuthorization` to the treasury, and the web client has the payer sign it. The EIP-712
 * domain is the token's own `name()` and `version()` (Base's USDC: "USD Coin" / "2"; the devnet's test
 * token the same), read from the chain, never assumed.
 */
import { parseAbi } from 'viem';

/**
 * The functions of FiatToken v2 that relaying an authorization needs, and `cancelAuthorization`, which the web
 * client sends to cancel the auto top-up authorizations it signed.
 */
export const usdcAuthorizationAbi = parseAbi([
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
  'function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature)',
  'function authorizationState(address authorizer, bytes32 nonce) view returns (bool)',
  'function name() view returns (string)',
  'function version() view returns (string)',
]);

/** The EIP-712 types of a TransferWithAuthorization (primary type `TransferWithAuthorization`). */
export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: 'from', type: 'address' },
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'validAfter', type: 'uint256' },
    { name: 'validBefore', type: 'uint256' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const;

/** The EIP-712 types of a CancelAuthorization (primary type `CancelAuthorization`). */
export const cancelAuthorizationTypes = {
  CancelAuthorization: [
    { name: 'authorizer', type: 'address' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const;
