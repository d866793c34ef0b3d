/**
 * Display formatting for money and chain data. Exact string and bigint maths only (through
 * @chainmeter/schema): a balance is never turned into a float on its way to the screen.
 */
import { explorers, formatDecimal, type MicroUsd, parseCredits } from '@chainmeter/schema';

/** Groups the whole part of a decimal string in thousands: `"1234567.5"` -> `"1,234,567.5"`. */
export function groupThousands(decimal: string): string {
  const negative = decimal.startsWith('-');
  const [whole = '0', fraction] = (negative ? decimal.slice(1) : decimal).split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}${grouped}${fraction ? `.${fraction}` : ''}`;
}

/** A `Credits` scalar for display: `"1500.5"` -> `"1,500.5"`. */
export function displayCredits(credits: string): string {
  return groupThousands(credits);
}

/**
 * Micro-USD as dollars with at least two decimals and no rounding: `1500000n` -> `"$1.50"`,
 * `42n` -> `"$0.000042"`.
 */
export function displayUsd(amount: MicroUsd | bigint): string {
  const text = formatDecimal(amount, 6);
  const negative = text.startsWith('-');
  const [whole = '0', fraction = ''] = (negative ? text.slice(1) : text).split('.');
  return `${negative ? '-' : ''}$${groupThousands(whole)}.${fraction.padEnd(2, '0')}`;
}

/** The USD value of a `Credits` string (1 credit = $0.001). */
export function creditsToUsd(credits: string): string {
  return displayUsd(parseCredits(credits));
}

/** `0x1234…cdef` */
export function shortHex(value: string, head = 6, tail = 4): string {
  return value.length <= head + tail + 1 ? value : `${value.slice(0, head)}…${value.slice(-tail)}`;
}

/** The explorer page of a transaction, where the chain has an explorer. */
export function txUrl(chainId: number, txHash: string): string | null {
  const base = explorers[chainId];
  return base ? `${base}/tx/${txHash}` : null;
}

export function displayDateTime(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
