/**
 * Which treasury transfers credit an account: the crediting worker and the audit apply the same rule.
 * A zero-value transfer credits nothing (and is a spam vector); a transfer from the zero address is a
 * mint, not a payment from a wallet, so there is no account to credit; a transfer whose sender is its
 * recipient (the treasury paying itself) brings no money in, so crediting it would mint credits from nothing.
 */
const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000';

export function isCreditableTransfer(transfer: { from: string; to: string; value: bigint }): boolean {
  const from = transfer.from.toLowerCase();
  return transfer.value > 0n && from !== ZERO_ADDRESS && from !== transfer.to.toLowerCase();
}
