/**
 * Money in ChainMeter is exact: a branded bigint of micro-USD (1 USDC base unit = 1 micro-USD).
 * Nothing in the money path uses `number`. Credits are a display unit: 1 credit = 1,000 micro-USD.
 */
declare const microUsdBrand: unique symbol;
export type MicroUsd = bigint & { readonly [microUsdBrand]: true };

export const MICRO_USD_PER_CREDIT = 1_000n;
export const MICRO_USD_PER_USD = 1_000_000n;
/** USDC has 6 decimals, so one base unit is exactly one micro-USD. */
export const USDC_DECIMALS = 6;

export class MoneyFormatError extends Error {
  override name = 'MoneyFormatError';
}

export function microUsd(value: bigint | number | string): MicroUsd {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new MoneyFormatError(`not an integer number of micro-USD: ${value}`);
  }
  return BigInt(value) as MicroUsd;
}

/** Token base units of a token with `decimals` decimals, as micro-USD (exact, or an error). */
export function tokenUnitsToMicroUsd(units: bigint, decimals: number = USDC_DECIMALS): MicroUsd {
  if (decimals === 6) return units as MicroUsd;
  if (decimals > 6) {
    const scale = 10n ** BigInt(decimals - 6);
    if (units % scale !== 0n) throw new MoneyFormatError(`${units} is not a whole number of micro-USD`);
    return (units / scale) as MicroUsd;
  }
  return (units * 10n ** BigInt(6 - decimals)) as MicroUsd;
}

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

/**
 * Parses a decimal string into an integer scaled by 10^scale, exactly.
 * Refuses more fractional digits than `scale` (no silent rounding).
 */
export function parseDecimal(text: string, scale: number): bigint {
  const match = DECIMAL.exec(text.trim());
  if (!match) throw new MoneyFormatError(`not a decimal number: "${text}"`);
  const [, sign, whole = '0', fraction = ''] = match;
  if (fraction.length > scale) {
    throw new MoneyFormatError(`"${text}" has more than ${scale} fractional digits`);
  }
  const scaled = BigInt(whole) * 10n ** BigInt(scale) + BigInt(fraction.padEnd(scale, '0') || '0');
  return sign ? -scaled : scaled;
}

/**
 * Formats an integer scaled by 10^scale as a decimal string without trailing zeros. Cut from the integer's
 * digits rather than divided: every amount of a ledger page goes through here (three per entry).
 */
export function formatDecimal(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString();
  const cut = digits.length - scale;
  const whole = cut > 0 ? digits.slice(0, cut) : '0';
  const fraction = (cut >= 0 ? digits.slice(cut) : digits.padStart(scale, '0')).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** `1500000n` -> `"1500"`, `42n` -> `"0.042"`, `-2500n` -> `"-2.5"`. */
export function formatCredits(amount: MicroUsd): string {
  return formatDecimal(amount, 3);
}

/** `"0.042"` -> `42n`. At most 3 fractional digits: a credit string is always exact. */
export function parseCredits(text: string): MicroUsd {
  return parseDecimal(text, 3) as MicroUsd;
}

/** `"1.5"` (USD) -> `1500000n`. */
export function parseUsd(text: string): MicroUsd {
  return parseDecimal(text, 6) as MicroUsd;
}

/** `1500000n` -> `"1.5"` (USD, exact). */
export function formatUsd(amount: MicroUsd): string {
  return formatDecimal(amount, 6);
}

/** Integer division rounding toward positive infinity, for non-negative numerators. */
export function divCeil(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError('denominator must be positive');
  if (numerator <= 0n) return -(-numerator / denominator);
  return (numerator + denominator - 1n) / denominator;
}

/** A decimal multiplier such as `PRICE_MARKUP` as an exact fraction. */
export interface Ratio {
  numerator: bigint;
  denominator: bigint;
}

export function parseRatio(text: string): Ratio {
  const fraction = text.split('.')[1] ?? '';
  const denominator = 10n ** BigInt(fraction.length);
  return { numerator: parseDecimal(text, fraction.length), denominator };
}

/** `amount x ratio`, rounded up to the micro-USD. */
export function multiplyCeil(amount: MicroUsd, ratio: Ratio): MicroUsd {
  return divCeil(amount * ratio.numerator, ratio.denominator) as MicroUsd;
}
