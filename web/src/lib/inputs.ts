/**
 * What the forms check before they ask the API, so that a value the API would refuse gets a message that
 * names the field, not the GraphQL coercion error ("Variable "$input" got invalid value … at
 * "input.spendLimit"; …") the API answers for a value its scalar cannot hold.
 */
import { formatCredits, type MicroUsd, parseCredits } from '@chainmeter/schema';
import { groupThousands } from './format';

/** The API stores micro-USD in bigint columns: its `Credits` scalar refuses anything past 2^63 - 1 micro-USD. */
const MAX_CREDITS_MICRO_USD = 2n ** 63n - 1n;

export type CreditsInput = { ok: true; credits: string } | { ok: false; reason: string };

/**
 * A positive amount of credits typed in the field `what` names ("The spend limit"): at most 3 decimals,
 * more than zero, within what the API can hold. `credits` is the trimmed text, as the API takes it.
 *
 * @example readPositiveCredits(' 5 ', 'The threshold') // { ok: true, credits: '5' }
 */
export function readPositiveCredits(text: string, what: string): CreditsInput {
  const trimmed = text.trim();
  let amount: bigint;
  try {
    amount = parseCredits(trimmed);
  } catch {
    return { ok: false, reason: `${what} is a number of credits with at most 3 decimals.` };
  }
  if (amount <= 0n) return { ok: false, reason: `${what} must be more than zero.` };
  if (amount > MAX_CREDITS_MICRO_USD) {
    const most = groupThousands(formatCredits(MAX_CREDITS_MICRO_USD as MicroUsd));
    return { ok: false, reason: `${what} is too large: at most ${most} credits.` };
  }
  return { ok: true, credits: trimmed };
}

/**
 * Why `text` is longer than the `most` characters the API accepts for `what` ("The name"), or null. Said
 * instead of an input's `maxLength`, which cuts a pasted value silently: a webhook URL cut at its limit is
 * another URL, and would be saved as if it were the one pasted.
 */
export function tooLong(text: string, most: number, what: string): string | null {
  return text.length > most
    ? `${what} is at most ${groupThousands(String(most))} characters; this one has ${groupThousands(String(text.length))}.`
    : null;
}
