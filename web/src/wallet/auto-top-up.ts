/**
 * Auto top-up in the wallet: signing N EIP-3009 authorizations to the treasury (typed data, no transaction),
 * each with a fresh random nonce, in the token's own EIP-712 domain read from the chain; and, after the
 * platform's copies are deleted, cancelling them on chain (`cancelAuthorization`, a transaction the wallet
 * pays for) so no copy anywhere can ever be used.
 */
import {
  cancelAuthorizationTypes,
  transferWithAuthorizationTypes,
  usdcAuthorizationAbi,
} from '@chainmeter/schema';
import { useCallback } from 'react';
import { type Address, type Hex, toHex } from 'viem';
import { useAccount, useConfig, useReadContracts, useSignTypedData, useWriteContract } from 'wagmi';
import { waitForTransactionReceipt } from 'wagmi/actions';

export interface AutoTopUpTarget {
  chainId: number;
  token: Address;
  treasury: Address;
}

export interface SignedAuthorization {
  from: Address;
  to: Address;
  value: string;
  validAfter: string;
  validBefore: string;
  nonce: Hex;
  signature: Hex;
}

export function useAutoTopUpSigner(target: AutoTopUpTarget) {
  const { address } = useAccount();
  const domain = useReadContracts({
    contracts: [
      { address: target.token, abi: usdcAuthorizationAbi, functionName: 'name', chainId: target.chainId },
      { address: target.token, abi: usdcAuthorizationAbi, functionName: 'version', chainId: target.chainId },
    ],
    allowFailure: false,
    query: { staleTime: Number.POSITIVE_INFINITY },
  });
  const { signTypedDataAsync } = useSignTypedData();
  const { writeContractAsync } = useWriteContract();
  const config = useConfig();

  const eip712 = useCallback(() => {
    if (!domain.data) throw new Error('The token’s signing domain is not known yet; try again in a moment.');
    const [name, version] = domain.data;
    return { name, version, chainId: target.chainId, verifyingContract: target.token };
  }, [domain.data, target.chainId, target.token]);

  /** Asks the wallet to sign `count` authorizations of `units` each, valid until `validBefore` (unix s). */
  const sign = useCallback(
    async (
      count: number,
      units: bigint,
      validBefore: bigint,
      onSigned: (done: number) => void,
    ): Promise<SignedAuthorization[]> => {
      if (!address) throw new Error('Connect a wallet first.');
      const signed: SignedAuthorization[] = [];
      for (let i = 0; i < count; i++) {
        const message = {
          from: address,
          to: target.treasury,
          value: units,
          validAfter: 0n,
          validBefore,
          nonce: toHex(crypto.getRandomValues(new Uint8Array(32))) as Hex,
        };
        const signature = await signTypedDataAsync({
          domain: eip712(),
          types: transferWithAuthorizationTypes,
          primaryType: 'TransferWithAuthorization',
          message,
        });
        signed.push({
          ...message,
          value: message.value.toString(),
          validAfter: '0',
          validBefore: validBefore.toString(),
          signature,
        });
        onSigned(i + 1);
      }
      return signed;
    },
    [address, eip712, signTypedDataAsync, target.treasury],
  );

  /** Cancels each nonce on chain (the wallet signs and sends one transaction per nonce). */
  const cancelOnChain = useCallback(
    async (nonces: readonly Hex[], onCancelled: (done: number) => void): Promise<void> => {
      if (!address) throw new Error('Connect a wallet first.');
      for (const [i, nonce] of nonces.entries()) {
        const signature = await signTypedDataAsync({
          domain: eip712(),
          types: cancelAuthorizationTypes,
          primaryType: 'CancelAuthorization',
          message: { authorizer: address, nonce },
        });
        const hash = await writeContractAsync({
          address: target.token,
          abi: usdcAuthorizationAbi,
          functionName: 'cancelAuthorization',
          args: [address, nonce, signature],
          chainId: target.chainId,
        });
        await waitForTransactionReceipt(config, { hash, chainId: target.chainId });
        onCancelled(i + 1);
      }
    },
    [address, config, eip712, signTypedDataAsync, target.chainId, target.token, writeContractAsync],
  );

  return { ready: Boolean(domain.data), domainError: domain.error, sign, cancelOnChain };
}
