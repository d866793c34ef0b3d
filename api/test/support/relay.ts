/** The gasless top-up (`relayPayment`) as tests send it. */
import type { TransferAuthorization } from '@chainmeter/testkit/eip3009';
import type { Hex } from 'viem';

export const RELAY_PAYMENT = `mutation($input: TransferAuthorizationInput!) { relayPayment(input: $input) { txHash amountToken } }`;

/** A signed authorization as `TransferAuthorizationInput` (bigints as the BigInt scalar's decimal strings). */
export function transferAuthorizationInput(authorization: TransferAuthorization, signature: Hex) {
  return {
    from: authorization.from,
    to: authorization.to,
    value: authorization.value.toString(),
    validAfter: authorization.validAfter.toString(),
    validBefore: authorization.validBefore.toString(),
    nonce: authorization.nonce,
    signature,
  };
}
