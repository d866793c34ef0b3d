/**
 * What a purchase of `usd` dollars sends and buys, exactly: token base units and credits.
 */
import { formatCredits, type MicroUsd, MoneyFormatError, parseCredits, parseUsd } from '@chainmeter/schema';

export interface Purchase {
  /** Token base units to transfer. */
  units: bigint;
  /** Credits the transfer buys, as a `Credits` string. */
  credits: string;
  microUsd: MicroUsd;
}

export type PurchaseResult = { ok: true; purchase: Purchase } | { ok: false; reason: string };

const MAX_PURCHASE_USD = 1_000_000n;

export function quotePurchase(usd: string, tokenDecimals: number, creditsPerToken: string): PurchaseResult {
  const text = usd.trim().replace(/^\$/, '');
  if (text === '') return { ok: false, reason: 'Enter an amount.' };
  let microUsd: MicroUsd;
  try {
    microUsd = parseUsd(text);
  } catch (error) {
    if (error instanceof MoneyFormatError && /fractional/.test(error.message)) {
      return { ok: false, reason: 'Use at most 6 decimals (USDC has 6).' };
    }
    return { ok: false, reason: 'Enter a dollar amount such as 10 or 12.50.' };
  }
  if (microUsd <= 0n) return { ok: false, reason: 'The amount must be more than zero.' };
  if (microUsd > MAX_PURCHASE_USD * 1_000_000n) return { ok: false, reason: 'At most $1,000,000 at once.' };
  let units: bigint;
  if (tokenDecimals >= 6) {
    units = microUsd * 10n ** BigInt(tokenDecimals - 6);
  } else {
    const scale = 10n ** BigInt(6 - tokenDecimals);
    if (microUsd % scale !== 0n)
      return { ok: false, reason: `The token has only ${tokenDecimals} decimals.` };
    units = microUsd / scale;
  }
  // creditsPerToken credits per whole token; Credits carry 3 decimals.
  const milliCredits = (parseCredits(creditsPerToken) * units) / 10n ** BigInt(tokenDecimals);
  return { ok: true, purchase: { units, credits: formatCredits(milliCredits as MicroUsd), microUsd } };
}
