/**
 * Pricing of LLM calls in exact micro-USD. Every rounding goes up to the next micro-USD, so the platform
 * never charges less than the provider's cost, and the hold placed before a call bounds what it charges.
 */
import { readFile } from 'node:fs/promises';
import { divCeil, type MicroUsd, multiplyCeil, parseDecimal, type Ratio } from '@chainmeter/schema';
import { z } from 'zod';

/** Prices keep up to 12 fractional digits of USD per million tokens, exactly. */
const PRICE_DECIMALS = 12;
const PRICE_SCALE = 10n ** BigInt(PRICE_DECIMALS);

/**
 * Per-message and per-request token allowances of the hold: chat formats wrap each message in a few
 * special tokens (OpenAI counts about 3 per message plus 3 to prime the reply; the dev model 4 and 3).
 */
const HOLD_TOKENS_PER_MESSAGE = 8n;
const HOLD_TOKENS_PER_REQUEST = 8n;

/** Output tokens assumed (and then sent upstream as the limit) when a request sets none. */
export const DEFAULT_MAX_TOKENS = 4096;

/**
 * A model's price. `inputPerMTok` / `outputPerMTok` are USD per million tokens scaled by 10^12, which is
 * also micro-USD per token scaled by 10^12 (the two millions cancel).
 */
export interface ModelPrice {
  model: string;
  inputPerMTok: bigint;
  outputPerMTok: bigint;
}

export type PriceTable = ReadonlyMap<string, ModelPrice>;

export class PriceTableError extends Error {
  override name = 'PriceTableError';
}

const usdPerMTok = z
  .string({
    error: (issue) =>
      issue.input === undefined
        ? 'is required'
        : 'must be a decimal string such as "0.15" (numbers are refused: they are not exact)',
  })
  .regex(/^\d+(\.\d{1,12})?$/, 'must be a non-negative decimal string with at most 12 fractional digits');

const priceFile = z.record(
  z.string().min(1, 'model names must not be empty'),
  z.strictObject({ inputPerMTok: usdPerMTok, outputPerMTok: usdPerMTok }),
  { error: 'the price table must be a JSON object keyed by model name' },
);

/** Validates a price table in the `LLM_PRICES` JSON shape; every problem is listed with its model. */
export function parsePriceTable(json: unknown, source = 'price table'): PriceTable {
  const result = priceFile.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const [model, field] = issue.path;
      if (model === undefined) return issue.message;
      return `model "${String(model)}"${field === undefined ? '' : ` ${String(field)}`}: ${issue.message}`;
    });
    throw new PriceTableError(`invalid ${source}:\n  - ${problems.join('\n  - ')}`);
  }
  const table = new Map<string, ModelPrice>();
  for (const [model, price] of Object.entries(result.data)) {
    table.set(model, {
      model,
      inputPerMTok: parseDecimal(price.inputPerMTok, PRICE_DECIMALS),
      outputPerMTok: parseDecimal(price.outputPerMTok, PRICE_DECIMALS),
    });
  }
  return table;
}

/**
 * Loads an `LLM_PRICES` file (the JSON table). There is no default table: prices come from the upstream
 * (see `price-book.ts`), and this file only overrides them per model.
 * @example const overrides = await loadPriceTable(env.LLM_PRICES);
 */
export async function loadPriceTable(path: string): Promise<PriceTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new PriceTableError(`cannot read LLM_PRICES file ${path}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PriceTableError(`LLM_PRICES file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  return parsePriceTable(json, `LLM_PRICES file ${path}`);
}

export interface TokenUsage {
  promptTokens: number | bigint;
  completionTokens: number | bigint;
}

/**
 * Provider cost of a call from the price table, rounded up to the micro-USD (once, on the sum).
 * @example costFromUsage(devPrice, { promptTokens: 7, completionTokens: 0 }) // 2n: 7 x 0.15 = 1.05
 */
export function costFromUsage(price: ModelPrice, usage: TokenUsage): MicroUsd {
  const prompt = tokenCount(usage.promptTokens, 'promptTokens');
  const completion = tokenCount(usage.completionTokens, 'completionTokens');
  return divCeil(prompt * price.inputPerMTok + completion * price.outputPerMTok, PRICE_SCALE) as MicroUsd;
}

/** Decimal (optionally with an exponent, as Python prints small floats: "4.2e-05"). */
const DECIMAL_TEXT = /^\+?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$/;
/** A float has at most 17 significant digits, and the last one or two are binary noise. */
const FLOAT_SIGNIFICANT_DIGITS = 15;
/** 10^40 units is no real cost or price; the cap only keeps absurd exponents from building huge numbers. */
const MAX_RESULT_DIGITS = 40;

/**
 * `text` (a non-negative decimal, optionally with an exponent) x 10^shift, rounded up to an integer, exactly:
 * the digits are read from the text, never through a float. Upstreams written in Python print floats
 * (`str(float)`, `json.dumps`), so "4.2e-05" and "0.30000000000000004" occur: digits beyond the 15th
 * significant one are float noise and are rounded off (half up) before rounding up, so noise never adds a
 * unit. Anything else (empty, "None", "nan", negative, absurd) gives null, never NaN.
 * @example scaledDecimalCeil('1.5e-07', 18) // 150000000000n
 */
function scaledDecimalCeil(text: string, shift: number): bigint | null {
  const match = DECIMAL_TEXT.exec(text.trim());
  if (!match) return null;
  const [, whole = '', fraction = '', exponentText = '0'] = match;
  if (whole === '' && fraction === '') return null;
  const exponent = Number(exponentText);

  // value = digits x 10^(exponent - fraction.length)
  let digits = (whole + fraction).replace(/^0+/, '');
  let power = exponent - fraction.length;
  if (digits.length > FLOAT_SIGNIFICANT_DIGITS) {
    const drop = digits.length - FLOAT_SIGNIFICANT_DIGITS;
    const kept = BigInt(digits.slice(0, FLOAT_SIGNIFICANT_DIGITS));
    const roundUp = (digits[FLOAT_SIGNIFICANT_DIGITS] ?? '0') >= '5';
    digits = (kept + (roundUp ? 1n : 0n)).toString();
    power += drop;
  }
  const value = BigInt(digits || '0');
  // result = value x 10^(power + shift)
  const scale = power + shift;
  if (value !== 0n && scale + digits.length > MAX_RESULT_DIGITS) return null;
  return scale >= 0 ? value * 10n ** BigInt(scale) : divCeil(value, 10n ** BigInt(-scale));
}

/**
 * Provider cost from the `x-litellm-response-cost` header (USD), rounded up to the micro-USD; float noise
 * is dropped first (see {@link scaledDecimalCeil}). Missing or not a number: null.
 * @example costFromHeader('0.000042') // 42n
 */
export function costFromHeader(header: string | null | undefined): MicroUsd | null {
  if (header == null) return null;
  return scaledDecimalCeil(header, 6) as MicroUsd | null;
}

/**
 * A price in USD per token (LiteLLM's `input_cost_per_token`, as the JSON number's text) in the
 * {@link ModelPrice} scale: USD per million tokens x 10^12 = USD per token x 10^18. Exact for any price
 * with at most 18 decimals (every real one); finer ones round up, so a price is never below the upstream's.
 * @example priceFromUsdPerToken('1.5e-07') // 150000000000n, i.e. $0.15 per million tokens
 */
export function priceFromUsdPerToken(text: string): bigint | null {
  return scaledDecimalCeil(text, PRICE_DECIMALS + 6);
}

/**
 * What the user pays: provider cost x markup, rounded up. A markup below 1 is refused, so the user
 * price is never below the provider cost.
 * @example userPrice(21n, parseRatio('2.0')) // 42n
 */
export function userPrice(providerCost: MicroUsd, markup: Ratio): MicroUsd {
  if (providerCost < 0n) throw new RangeError(`provider cost must not be negative: ${providerCost}`);
  if (markup.denominator <= 0n || markup.numerator < markup.denominator) {
    throw new RangeError(`markup must be at least 1 (got ${markup.numerator}/${markup.denominator})`);
  }
  return multiplyCeil(providerCost, markup);
}

export interface HoldMessage {
  role: string;
  content: string | null;
  name?: string;
}

/**
 * The most a call can cost the user: the hold placed before calling the upstream.
 *
 * Why it is an upper bound: every tokenizer in use (byte-level BPE and the dev model's) makes each token
 * at least one UTF-8 byte, so a message has at most as many tokens as bytes; the role, the name and the
 * chat format's wrapping are covered by their bytes plus {@link HOLD_TOKENS_PER_MESSAGE}, and the reply
 * priming by {@link HOLD_TOKENS_PER_REQUEST}. The upstream stops at `maxTokens` output tokens (the
 * caller must send it, {@link DEFAULT_MAX_TOKENS} when the request had none). The cost and the markup
 * are monotonic in the token counts, so the real charge from the real usage cannot exceed this.
 * It holds for text content only: images, audio and tools must be refused or bounded by the caller.
 * @example estimateHold(price, [{ role: 'user', content: 'hi' }], DEFAULT_MAX_TOKENS, markup)
 */
export function estimateHold(
  price: ModelPrice,
  messages: readonly HoldMessage[],
  maxTokens: number,
  markup: Ratio,
): MicroUsd {
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) {
    throw new RangeError(`maxTokens must be a positive integer (got ${maxTokens})`);
  }
  return userPrice(
    costFromUsage(price, { promptTokens: promptTokensUpperBound(messages), completionTokens: maxTokens }),
    markup,
  );
}

/** At least the prompt tokens of `messages` under any byte-level tokenizer (see {@link estimateHold}). */
export function promptTokensUpperBound(messages: readonly HoldMessage[]): bigint {
  let tokens = HOLD_TOKENS_PER_REQUEST;
  for (const message of messages) {
    tokens +=
      HOLD_TOKENS_PER_MESSAGE +
      BigInt(
        Buffer.byteLength(message.role) +
          Buffer.byteLength(message.content ?? '') +
          Buffer.byteLength(message.name ?? ''),
      );
  }
  return tokens;
}

function tokenCount(value: number | bigint, name: string): bigint {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new RangeError(`${name} must be an integer (got ${value})`);
  }
  const count = BigInt(value);
  if (count < 0n) throw new RangeError(`${name} must not be negative (got ${count})`);
  return count;
}
