/**
 * Which treasury transfers credit an account: the crediting worker and the audit apply the same rule.
 * A zero-value transfer credits nothing (and is a spam vector); a transfer from the zero address is a
 * mint, not a payment from a wallet, so there is no account to credit.
 */
const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000';

export function isCreditableTransfer(transfer: { from: string; value: bigint }): boolean {
  return transfer.value > 0n && transfer.from.toLowerCase() !== ZERO_ADDRESS;
}
