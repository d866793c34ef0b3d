/**
 * The prices calls are held and billed by (README "Metered LLM calls", Prices): the upstream's own,
 * read from LiteLLM's `GET /model/info` (`input_cost_per_token`, `output_cost_per_token`, USD per token)
 * at start and every `LLM_PRICES_REFRESH_MS`, with the `LLM_PRICES` table overriding them per model.
 * A model priced by neither cannot be called (`model_not_priced`, refused before the hold). There is no
 * default table: the built-in dev model publishes its prices through `/model/info` as LiteLLM does, and
 * an upstream that publishes none, without `LLM_PRICES`, refuses to start.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { ConfigError } from '../../env.ts';
import { type ModelPrice, type PriceTable, priceFromUsdPerToken } from './pricing.ts';

export interface PriceBook {
  /** The price `model` is billed at, or undefined when it cannot be billed. */
  get(model: string): ModelPrice | undefined;
  /** Reads the upstream's prices again; keeps the last ones known when that fails. */
  refresh(): Promise<void>;
  /** Refreshes every `refreshMs` until `stop`. */
  start(): void;
  stop(): Promise<void>;
}

export interface LoadPriceBookParameters {
  /** The body of the upstream's `GET /model/info`, or null when it has none (404); throws when unreachable. */
  fetchModelInfo(): Promise<string | null>;
  /** `LLM_PRICES` (empty when unset): wins over the upstream's price of the same model. */
  overrides: PriceTable;
  /** What the upstream is, for messages: its URL, or "the built-in dev model". */
  upstreamName: string;
  refreshMs: number;
  logger: Logger;
}

/** What LiteLLM's `/model/info` says, read into prices. */
export interface ModelInfoPrices {
  prices: Map<string, ModelPrice>;
  /** Models it serves without a complete price (billable only through `LLM_PRICES`). */
  unpriced: string[];
}

const COST_FIELDS = new Set(['input_cost_per_token', 'output_cost_per_token']);

const modelInfoAnswer = z.object({
  data: z.array(
    z.object({
      model_name: z.string().min(1),
      model_info: z
        .object({
          input_cost_per_token: z.string().nullish(),
          output_cost_per_token: z.string().nullish(),
        })
        .nullish(),
    }),
  ),
});

/**
 * Reads LiteLLM's `GET /model/info` answer (`{ data: [{ model_name, model_info: { input_cost_per_token,
 * output_cost_per_token } }] }`) into exact prices: each cost is taken from the JSON number's own text,
 * never through a float. A model served by several deployments is priced at the highest rate of each
 * (the most a call can cost), and counts as unpriced if any of them has no price. Null when the answer
 * is not in that shape (an upstream that is not LiteLLM).
 * @example parseModelInfo('{"data":[{"model_name":"m","model_info":{"input_cost_per_token":1.5e-07,"output_cost_per_token":6e-07}}]}')
 */
export function parseModelInfo(text: string): ModelInfoPrices | null {
  let json: unknown;
  try {
    json = JSON.parse(text, (key, value: unknown, context?: { source?: string }) =>
      COST_FIELDS.has(key) && typeof value === 'number' ? (context?.source ?? String(value)) : value,
    );
  } catch {
    return null;
  }
  const parsed = modelInfoAnswer.safeParse(json);
  if (!parsed.success) return null;
  const prices = new Map<string, ModelPrice>();
  const unpriced = new Set<string>();
  for (const { model_name: model, model_info: info } of parsed.data.data) {
    const input = info?.input_cost_per_token == null ? null : priceFromUsdPerToken(info.input_cost_per_token);
    const output =
      info?.output_cost_per_token == null ? null : priceFromUsdPerToken(info.output_cost_per_token);
    if (input === null || output === null || unpriced.has(model)) {
      unpriced.add(model);
      prices.delete(model);
      continue;
    }
    const known = prices.get(model);
    prices.set(model, {
      model,
      inputPerMTok: known && known.inputPerMTok > input ? known.inputPerMTok : input,
      outputPerMTok: known && known.outputPerMTok > output ? known.outputPerMTok : output,
    });
  }
  return { prices, unpriced: [...unpriced] };
}

/**
 * Reads the upstream's prices and returns the book, or refuses (a {@link ConfigError}) when the upstream
 * publishes no prices (no `/model/info`, or not LiteLLM's) or cannot be reached, and `LLM_PRICES` is not
 * set. With `LLM_PRICES`, an upstream that cannot be reached yet is read again at each refresh.
 * @example const prices = await loadPriceBook({ fetchModelInfo: () => upstream.modelInfo(), overrides, ... });
 */
export async function loadPriceBook(params: LoadPriceBookParameters): Promise<PriceBook> {
  const { overrides, logger, upstreamName } = params;
  let upstreamPrices: ReadonlyMap<string, ModelPrice> = new Map();
  /** False once the upstream has shown it publishes no prices: nothing to refresh then. */
  let publishes = true;

  /** One read: true when prices were read, false when the upstream has none; throws when unreachable. */
  async function read(): Promise<boolean> {
    const text = await params.fetchModelInfo();
    const info = text === null ? null : parseModelInfo(text);
    if (!info) return false;
    upstreamPrices = info.prices;
    const unpriced = info.unpriced.filter((model) => !overrides.has(model));
    if (unpriced.length > 0) {
      logger.warn(
        { models: unpriced },
        'the upstream serves models without a price: they are refused (model_not_priced) until priced in LLM_PRICES',
      );
    }
    return true;
  }

  try {
    publishes = await read();
  } catch (error) {
    if (overrides.size === 0) {
      throw new ConfigError([
        `LLM_BASE_URL: cannot read the prices of ${upstreamName} (GET /model/info): ${(error as Error).message}; set LLM_PRICES to a price table, or start it first`,
      ]);
    }
    logger.warn({ err: error }, 'cannot read the upstream prices yet: billing by LLM_PRICES meanwhile');
  }
  if (!publishes && overrides.size === 0) {
    throw new ConfigError([
      `LLM_PRICES: required, because ${upstreamName} publishes no prices (no LiteLLM GET /model/info): set LLM_PRICES to a JSON price table of the models it serves, e.g. { "<model>": { "inputPerMTok": "0.15", "outputPerMTok": "0.60" } }`,
    ]);
  }

  let timer: NodeJS.Timeout | undefined;
  let refreshing: Promise<void> | null = null;
  const refresh = (): Promise<void> => {
    refreshing ??= read()
      .then((read) => {
        if (!read)
          logger.warn('the upstream answered GET /model/info without prices: keeping the last known');
      })
      .catch((error: unknown) => {
        logger.warn({ err: error }, 'could not refresh the upstream prices: keeping the last known');
      })
      .finally(() => {
        refreshing = null;
      });
    return refreshing;
  };

  return {
    get: (model) => overrides.get(model) ?? upstreamPrices.get(model),
    refresh,
    start() {
      if (timer || !publishes) return;
      timer = setInterval(() => void refresh(), params.refreshMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await refreshing;
    },
  };
}
