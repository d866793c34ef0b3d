import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type MicroUsd, parseRatio } from '@chainmeter/schema';
import fc from 'fast-check';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_MODEL_PRICES } from '../../dev-model/dev-model.replies.ts';
import { type DevModelServer, startDevModelServer } from '../../dev-model/dev-model.server.ts';
import {
  costFromHeader,
  costFromUsage,
  DEFAULT_MAX_TOKENS,
  estimateHold,
  loadPriceTable,
  type ModelPrice,
  type PriceTable,
  parsePriceTable,
  priceFromUsdPerToken,
  promptTokensUpperBound,
  userPrice,
} from './pricing.ts';

let devTable: PriceTable;
let dev: ModelPrice;
let large: ModelPrice;
let tempDir: string;

beforeAll(async () => {
  devTable = parsePriceTable(DEV_MODEL_PRICES, 'the dev price table');
  dev = devTable.get('chainmeter-dev') as ModelPrice;
  large = devTable.get('chainmeter-dev-large') as ModelPrice;
  tempDir = await mkdtemp(join(tmpdir(), 'chainmeter-prices-'));
});
afterAll(() => rm(tempDir, { recursive: true, force: true }));

const micro = (value: bigint) => value as MicroUsd;

describe('loadPriceTable', () => {
  it('reads the dev model prices (decimal strings) exactly', () => {
    expect(dev).toEqual({
      model: 'chainmeter-dev',
      inputPerMTok: 150_000_000_000n,
      outputPerMTok: 600_000_000_000n,
    });
    expect(large.outputPerMTok).toBe(15_000_000_000_000n);
    expect(devTable.has('dev-no-cost')).toBe(true);
    expect(devTable.has('dev-unpriced')).toBe(false);
  });

  it('loads a JSON file of decimal strings', async () => {
    const path = join(tempDir, 'prices.json');
    await writeFile(
      path,
      JSON.stringify({ 'gpt-x': { inputPerMTok: '2.5', outputPerMTok: '10.000000000001' } }),
    );
    const table = await loadPriceTable(path);
    expect(table.get('gpt-x')).toEqual({
      model: 'gpt-x',
      inputPerMTok: 2_500_000_000_000n,
      outputPerMTok: 10_000_000_000_001n,
    });
  });

  it('reports every problem with its model, and refuses numbers', async () => {
    const path = join(tempDir, 'bad.json');
    await writeFile(
      path,
      JSON.stringify({
        'gpt-x': { inputPerMTok: 0.15, outputPerMTok: '1' },
        other: { inputPerMTok: '-1', outputPerMTok: '1.0000000000001' },
        partial: { inputPerMTok: '1' },
        extra: { inputPerMTok: '1', outputPerMTok: '1', cachedPerMTok: '1' },
      }),
    );
    const error = await loadPriceTable(path).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(path);
    expect(message).toMatch(/model "gpt-x" inputPerMTok: .*numbers are refused/);
    expect(message).toMatch(/model "other" inputPerMTok: must be a non-negative decimal/);
    expect(message).toMatch(/model "other" outputPerMTok: .*at most 12 fractional digits/);
    expect(message).toMatch(/model "partial" outputPerMTok: is required/);
    expect(message).toMatch(/model "extra": .*cachedPerMTok/);
  });

  it('explains unreadable and non-JSON files and a wrong top-level shape', async () => {
    await expect(loadPriceTable(join(tempDir, 'missing.json'))).rejects.toThrow(
      /cannot read LLM_PRICES file/,
    );
    const notJson = join(tempDir, 'not.json');
    await writeFile(notJson, '{ nope');
    await expect(loadPriceTable(notJson)).rejects.toThrow(/not valid JSON/);
    expect(() => parsePriceTable([1, 2])).toThrow(/JSON object keyed by model name/);
  });
});

describe('priceFromUsdPerToken', () => {
  it("reads LiteLLM's USD-per-token numbers from their text, exactly", () => {
    // $0.15 per million tokens = 1.5e-07 USD per token; stored as USD/MTok x 10^12 = 150,000,000,000.
    expect(priceFromUsdPerToken('1.5e-07')).toBe(150_000_000_000n);
    expect(priceFromUsdPerToken('1.5E-7')).toBe(150_000_000_000n);
    expect(priceFromUsdPerToken('0.00000015')).toBe(150_000_000_000n);
    // $15 per million = 1.5e-05 per token; $3 = 3e-06; free = 0.
    expect(priceFromUsdPerToken('1.5e-05')).toBe(15_000_000_000_000n);
    expect(priceFromUsdPerToken('3e-06')).toBe(3_000_000_000_000n);
    expect(priceFromUsdPerToken('0.0')).toBe(0n);
    // Float noise (digits past the 15th significant one) is dropped: 3.0000000000000004e-06 is $3/MTok.
    expect(priceFromUsdPerToken('3.0000000000000004e-06')).toBe(3_000_000_000_000n);
    // Finer than 10^-18 USD per token: rounded up, never below the upstream's price.
    expect(priceFromUsdPerToken('1e-19')).toBe(1n);
  });

  it('refuses what is not a non-negative number', () => {
    for (const text of ['', '-1e-06', 'nan', 'None', '1e-06x', '.']) {
      expect(priceFromUsdPerToken(text), text).toBeNull();
    }
  });
});

describe('costFromUsage', () => {
  it('is exact and rounds the sum up once', () => {
    // 7 x 0.15 = 1.05 micro-USD
    expect(costFromUsage(dev, { promptTokens: 7, completionTokens: 0 })).toBe(2n);
    expect(costFromUsage(dev, { promptTokens: 1, completionTokens: 0 })).toBe(1n);
    expect(costFromUsage(dev, { promptTokens: 0, completionTokens: 0 })).toBe(0n);
    // 20 x 0.15 = 3 exactly; 5 x 0.15 + 5 x 0.6 = 3.75
    expect(costFromUsage(dev, { promptTokens: 20, completionTokens: 0 })).toBe(3n);
    expect(costFromUsage(dev, { promptTokens: 5, completionTokens: 5 })).toBe(4n);
    expect(costFromUsage(dev, { promptTokens: 1_000_000, completionTokens: 1_000_000 })).toBe(750_000n);
    expect(costFromUsage(large, { promptTokens: 14, completionTokens: 2 })).toBe(72n);
  });

  it('stays exact for huge token counts', () => {
    // 9007199254740991 x 0.6 = 5404319552844594.6
    expect(costFromUsage(dev, { promptTokens: 0, completionTokens: Number.MAX_SAFE_INTEGER })).toBe(
      5_404_319_552_844_595n,
    );
    expect(costFromUsage(dev, { promptTokens: 10n ** 30n, completionTokens: 10n ** 30n + 1n })).toBe(
      15n * 10n ** 28n + 6n * 10n ** 29n + 1n,
    );
  });

  it('keeps a price of 10^-12 USD per million tokens', () => {
    const tiny = parsePriceTable({ t: { inputPerMTok: '0.000000000001', outputPerMTok: '0' } }).get('t');
    expect(costFromUsage(tiny as ModelPrice, { promptTokens: 1, completionTokens: 5 })).toBe(1n);
    expect(costFromUsage(tiny as ModelPrice, { promptTokens: 10n ** 12n, completionTokens: 0 })).toBe(1n);
    expect(costFromUsage(tiny as ModelPrice, { promptTokens: 10n ** 12n + 1n, completionTokens: 0 })).toBe(
      2n,
    );
  });

  it('refuses token counts that are not whole and non-negative', () => {
    expect(() => costFromUsage(dev, { promptTokens: 1.5, completionTokens: 0 })).toThrow(/promptTokens/);
    expect(() => costFromUsage(dev, { promptTokens: 0, completionTokens: -1 })).toThrow(/completionTokens/);
    expect(() => costFromUsage(dev, { promptTokens: Number.NaN, completionTokens: 0 })).toThrow(RangeError);
  });
});

describe('costFromHeader', () => {
  it.each([
    ['0.000042', 42n],
    ['0.0000421', 43n],
    ['0.00000105', 2n],
    ['4.2e-05', 42n],
    ['4.2E-5', 42n],
    ['1e-7', 1n],
    ['5e-324', 1n],
    ['1.0500000000000001e-06', 2n],
    ['0.30000000000000004', 300_000n],
    ['0.1', 100_000n],
    ['12.5', 12_500_000n],
    ['1', 1_000_000n],
    ['+1.5', 1_500_000n],
    ['.5', 500_000n],
    ['0', 0n],
    ['0.0', 0n],
    ['0e5', 0n],
    [' 0.000042 ', 42n],
    ['1e3', 1_000_000_000n],
  ])('%s USD -> %s micro-USD', (header, expected) => {
    expect(costFromHeader(header)).toBe(expected);
  });

  it.each([
    'None',
    '',
    ' ',
    'nan',
    'NaN',
    'inf',
    'Infinity',
    '-0.000042',
    '-1e-5',
    'abc',
    '0x10',
    '1,5',
    '1.2.3',
    '--1',
    '.',
    'e5',
    '1e',
    '1e999',
    '1e35',
  ])('%j -> null', (header) => {
    expect(costFromHeader(header)).toBeNull();
  });

  it('treats a missing header as null', () => {
    expect(costFromHeader(null)).toBeNull();
    expect(costFromHeader(undefined)).toBeNull();
  });
});

describe('userPrice', () => {
  it('multiplies by the markup and rounds up', () => {
    expect(userPrice(micro(21n), parseRatio('2.0'))).toBe(42n);
    expect(userPrice(micro(1n), parseRatio('1.5'))).toBe(2n);
    expect(userPrice(micro(3n), parseRatio('1.333'))).toBe(4n);
    expect(userPrice(micro(7n), parseRatio('1'))).toBe(7n);
    expect(userPrice(micro(0n), parseRatio('2'))).toBe(0n);
    expect(userPrice(micro(10n ** 30n + 1n), parseRatio('1.1'))).toBe(11n * 10n ** 29n + 2n);
  });

  it('refuses a markup below 1, so the user never pays less than the provider', () => {
    expect(() => userPrice(micro(10n), parseRatio('0.99'))).toThrow(/at least 1/);
    expect(() => userPrice(micro(-1n), parseRatio('2'))).toThrow(/negative/);
  });

  it('is never below the provider cost', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 20n }),
        fc.integer({ min: 1000, max: 100_000 }),
        (cost, permille) => {
          const markup = { numerator: BigInt(permille), denominator: 1000n };
          expect(userPrice(micro(cost), markup)).toBeGreaterThanOrEqual(cost);
        },
      ),
    );
  });
});

describe('estimateHold', () => {
  const markup = parseRatio('2.0');

  it('bounds input by UTF-8 bytes plus the per-message overheads', () => {
    // 8 per request + (8 + 4 bytes "user" + 2 bytes "hi")
    expect(promptTokensUpperBound([{ role: 'user', content: 'hi' }])).toBe(22n);
    // "é" is 2 bytes, "🌍" 4; a name counts too
    expect(promptTokensUpperBound([{ role: 'user', content: 'é🌍', name: 'ann' }])).toBe(
      8n + 8n + 4n + 6n + 3n,
    );
    expect(promptTokensUpperBound([{ role: 'assistant', content: null }])).toBe(25n);
    // 22 x 0.15 + 10 x 0.6 = 9.3 -> 10, x 2 = 20
    expect(estimateHold(dev, [{ role: 'user', content: 'hi' }], 10, markup)).toBe(20n);
  });

  it('uses DEFAULT_MAX_TOKENS as the caller passes it', () => {
    // 45 x 0.15 + 4096 x 0.6 = 2464.35 -> 2465, x 2 = 4930
    const messages = [{ role: 'user', content: 'Hello there, how are you?' }];
    expect(DEFAULT_MAX_TOKENS).toBe(4096);
    expect(estimateHold(dev, messages, DEFAULT_MAX_TOKENS, markup)).toBe(4930n);
  });

  it('refuses a missing or silly maxTokens', () => {
    expect(() => estimateHold(dev, [], 0, markup)).toThrow(/maxTokens/);
    expect(() => estimateHold(dev, [], 1.5, markup)).toThrow(/maxTokens/);
  });
});

describe('the hold bounds the real charge (property, against the dev model server)', () => {
  let server: DevModelServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await startDevModelServer();
    client = new OpenAI({ baseURL: server.baseUrl, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(() => server.stop());

  it('costFromUsage(actual usage) x markup <= estimateHold, and the cost header agrees with the table', async () => {
    const message = fc.record({
      role: fc.constantFrom('system', 'user', 'assistant'),
      content: fc.oneof(
        fc.string({ unit: 'grapheme', maxLength: 200 }),
        fc.string({ unit: 'binary', maxLength: 400 }),
      ),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(message, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 120 }),
        fc.constantFrom('chainmeter-dev', 'chainmeter-dev-large'),
        fc.constantFrom('1', '1.5', '2.0', '3.333'),
        async (messages, maxTokens, model, markupText) => {
          const price = devTable.get(model) as ModelPrice;
          const markup = parseRatio(markupText);
          const { data, response } = await client.chat.completions
            .create({
              model,
              messages: messages as OpenAI.ChatCompletionMessageParam[],
              max_tokens: maxTokens,
            })
            .withResponse();
          const usage = {
            promptTokens: data.usage?.prompt_tokens ?? -1,
            completionTokens: data.usage?.completion_tokens ?? -1,
          };
          // the token bounds themselves, which the money comparison below could hide behind rounding
          expect(BigInt(usage.promptTokens)).toBeLessThanOrEqual(promptTokensUpperBound(messages));
          expect(usage.completionTokens).toBeLessThanOrEqual(maxTokens);
          const cost = costFromUsage(price, usage);
          expect(costFromHeader(response.headers.get('x-litellm-response-cost'))).toBe(cost);
          expect(userPrice(cost, markup)).toBeLessThanOrEqual(
            estimateHold(price, messages, maxTokens, markup),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
