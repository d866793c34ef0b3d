/**
 * Gasless top-ups: the wallet signs an EIP-3009 TransferWithAuthorization to the treasury (typed data, no
 * transaction, so no ETH needed) and the API's relayer submits it (`relayPayment`). The EIP-712 domain is the
 * token's own `name()` and `version()`, read from the chain: signing with an assumed name would produce a
 * signature the token rejects.
 */
import { transferWithAuthorizationTypes, usdcAuthorizationAbi } from '@chainmeter/schema';
import { useCallback } from 'react';
import { useMutation } from 'urql';
import { type Address, type Hash, type Hex, toHex } from 'viem';
import { useAccount, useReadContracts, useSignTypedData } from 'wagmi';
import { graphql } from '../gql';
import { describeGraphqlError } from '../lib/errors';

const RelayPaymentMutation = graphql(`
  mutation RelayPayment($input: TransferAuthorizationInput!) {
    relayPayment(input: $input) {
      txHash
      amountToken
    }
  }
`);

/** How long a signed authorization stays valid: enough for the relayer, short enough not to linger. */
const VALID_FOR_SECONDS = 3_600n;

export interface GaslessTarget {
  chainId: number;
  token: Address;
  treasury: Address;
}

/** A refusal from the API (its message), kept apart from wallet errors so the page can say which. */
export class RelayRefused extends Error {
  override name = 'RelayRefused';
}

/**
 * `ready` once the token's EIP-712 domain is known; `pay(units)` asks the wallet to sign and the API to relay,
 * and resolves with the transaction hash (throws a wallet error, or `RelayRefused`).
 */
export function useGaslessTopUp(target: GaslessTarget) {
  const { address } = useAccount();
  const domain = useReadContracts({
    contracts: [
      { address: target.token, abi: usdcAuthorizationAbi, functionName: 'name', chainId: target.chainId },
      { address: target.token, abi: usdcAuthorizationAbi, functionName: 'version', chainId: target.chainId },
    ],
    allowFailure: false,
    query: { staleTime: Number.POSITIVE_INFINITY },
  });
  const { signTypedDataAsync, isPending: signing } = useSignTypedData();
  const [{ fetching: relaying }, relay] = useMutation(RelayPaymentMutation);

  const pay = useCallback(
    async (units: bigint): Promise<Hash> => {
      if (!address) throw new Error('Connect a wallet first.');
      if (!domain.data)
        throw new Error('The token’s signing domain is not known yet; try again in a moment.');
      const [name, version] = domain.data;
      const message = {
        from: address,
        to: target.treasury,
        value: units,
        validAfter: 0n,
        validBefore: BigInt(Math.floor(Date.now() / 1000)) + VALID_FOR_SECONDS,
        nonce: toHex(crypto.getRandomValues(new Uint8Array(32))) as Hex,
      };
      const signature = await signTypedDataAsync({
        domain: { name, version, chainId: target.chainId, verifyingContract: target.token },
        types: transferWithAuthorizationTypes,
        primaryType: 'TransferWithAuthorization',
        message,
      });
      const result = await relay({
        input: {
          from: message.from,
          to: message.to,
          value: message.value.toString(),
          validAfter: message.validAfter.toString(),
          validBefore: message.validBefore.toString(),
          nonce: message.nonce,
          signature,
        },
      });
      if (result.error || !result.data) {
        throw new RelayRefused(result.error ? describeGraphqlError(result.error) : 'The API gave no answer.');
      }
      return result.data.relayPayment.txHash;
    },
    [address, domain.data, relay, signTypedDataAsync, target.chainId, target.token, target.treasury],
  );

  return {
    ready: Boolean(domain.data),
    domainError: domain.error,
    busy: signing || relaying,
    signing,
    pay,
  };
}
