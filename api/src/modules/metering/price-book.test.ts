import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../env.ts';
import { loadPriceBook, parseModelInfo } from './price-book.ts';
import type { ModelPrice } from './pricing.ts';

const logger = pino({ level: 'silent' });

/** A LiteLLM `/model/info` answer, written as LiteLLM (Python's json) writes floats. */
const modelInfo = (entries: string[]) => `{"data": [${entries.join(', ')}]}`;
const entry = (model: string, input: string, output: string) =>
  `{"model_name": "${model}", "litellm_params": {"model": "openai/${model}"}, "model_info": {"id": "x", "input_cost_per_token": ${input}, "output_cost_per_token": ${output}}}`;

describe('parseModelInfo', () => {
  it("reads each model's USD-per-token prices from the JSON numbers' text", () => {
    const info = parseModelInfo(
      modelInfo([entry('gpt-4o-mini', '1.5e-07', '6e-07'), entry('claude', '3e-06', '1.5e-05')]),
    );
    expect(info?.prices.get('gpt-4o-mini')).toEqual({
      model: 'gpt-4o-mini',
      inputPerMTok: 150_000_000_000n, // $0.15 per million tokens, x 10^12
      outputPerMTok: 600_000_000_000n, // $0.60
    } satisfies ModelPrice);
    expect(info?.prices.get('claude')).toMatchObject({
      inputPerMTok: 3_000_000_000_000n,
      outputPerMTok: 15_000_000_000_000n,
    });
    expect(info?.unpriced).toEqual([]);
  });

  it('leaves a model without a full price unpriced, and prices several deployments at their highest', () => {
    const info = parseModelInfo(
      modelInfo([
        entry('no-price', 'null', 'null'),
        entry('half', '1e-06', 'null'),
        entry('two', '1e-06', '4e-06'),
        entry('two', '2e-06', '3e-06'),
        entry('mixed', '1e-06', '1e-06'),
        entry('mixed', 'null', 'null'),
        '{"model_name": "bare"}',
      ]),
    );
    expect([...(info?.prices.keys() ?? [])]).toEqual(['two']);
    expect(info?.prices.get('two')).toMatchObject({
      inputPerMTok: 2_000_000_000_000n,
      outputPerMTok: 4_000_000_000_000n,
    });
    expect(info?.unpriced.sort()).toEqual(['bare', 'half', 'mixed', 'no-price']);
  });

  it('is null for an answer that is not LiteLLM-shaped', () => {
    for (const text of ['<html>not found</html>', '{"object": "list", "data": [{"id": "m"}]}', '[]', '']) {
      expect(parseModelInfo(text), text).toBeNull();
    }
  });
});

describe('loadPriceBook', () => {
  const load = (fetchModelInfo: () => Promise<string | null>, overrides = new Map<string, ModelPrice>()) =>
    loadPriceBook({
      fetchModelInfo,
      overrides,
      upstreamName: 'the upstream http://x/v1',
      refreshMs: 60_000,
      logger,
    });
  const override: ModelPrice = { model: 'gpt-4o-mini', inputPerMTok: 1n, outputPerMTok: 2n };

  it('refuses an upstream that publishes no prices, without LLM_PRICES', async () => {
    for (const answer of [null, '<html></html>']) {
      const error = await load(async () => answer).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([
        expect.stringMatching(
          /^LLM_PRICES: required, because the upstream http:\/\/x\/v1 publishes no prices/,
        ),
      ]);
    }
    const unreachable = await load(async () => {
      throw new Error('upstream unreachable: ECONNREFUSED');
    }).catch((e: unknown) => e);
    expect((unreachable as ConfigError).problems).toEqual([
      expect.stringMatching(/cannot read the prices of the upstream http:\/\/x\/v1 .*ECONNREFUSED/),
    ]);
  });

  it('lets LLM_PRICES override the upstream per model, and refreshes the rest', async () => {
    let published = modelInfo([entry('gpt-4o-mini', '1.5e-07', '6e-07'), entry('other', '1e-06', '1e-06')]);
    const book = await load(async () => published, new Map([['gpt-4o-mini', override]]));
    expect(book.get('gpt-4o-mini')).toBe(override);
    expect(book.get('other')?.inputPerMTok).toBe(1_000_000_000_000n);
    expect(book.get('new')).toBeUndefined();
    published = modelInfo([entry('new', '2e-06', '2e-06')]);
    await book.refresh();
    expect(book.get('new')?.inputPerMTok).toBe(2_000_000_000_000n);
    expect(book.get('other')).toBeUndefined();
    expect(book.get('gpt-4o-mini')).toBe(override);
  });

  it('keeps the last prices known when a refresh fails, and bills by LLM_PRICES while the upstream is down', async () => {
    let up = true;
    const book = await load(async () => {
      if (!up) throw new Error('upstream unreachable: ECONNREFUSED');
      return modelInfo([entry('other', '1e-06', '1e-06')]);
    });
    up = false;
    await book.refresh();
    expect(book.get('other')?.inputPerMTok).toBe(1_000_000_000_000n);
    const down = await load(
      async () => {
        throw new Error('upstream unreachable: ECONNREFUSED');
      },
      new Map([['gpt-4o-mini', override]]),
    );
    expect(down.get('gpt-4o-mini')).toBe(override);
  });
});
