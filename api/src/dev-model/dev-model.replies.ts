/**
 * What the dev model answers (see dev-model.server.ts for the behaviours): its models and prices, its
 * tokenizer, the request body it accepts, and the deterministic reply to a request.
 */
import { createHash } from 'node:crypto';
import { formatDecimal, parseDecimal } from '@chainmeter/schema';

/** USD per million tokens as decimal strings: the shape of an `LLM_PRICES` file. */
export type PriceTableJson = Record<string, { inputPerMTok: string; outputPerMTok: string }>;

const DEV_MODEL = 'chainmeter-dev';
const DEV_MODEL_LARGE = 'chainmeter-dev-large';

const devPrice = { inputPerMTok: '0.15', outputPerMTok: '0.60' };

/** The dev model's price table, also the default `LLM_PRICES` (`dev-unpriced` is left out on purpose). */
export const DEV_MODEL_PRICES: PriceTableJson = {
  [DEV_MODEL]: devPrice,
  [DEV_MODEL_LARGE]: { inputPerMTok: '3', outputPerMTok: '15' },
  'dev-error-500': devPrice,
  'dev-slow': devPrice,
  'dev-no-cost': devPrice,
  'dev-empty': devPrice,
  'dev-cut': devPrice,
  'dev-reasoning': devPrice,
  'dev-tool-call': devPrice,
};

export const SERVED_MODELS = [...Object.keys(DEV_MODEL_PRICES), 'dev-unpriced'];
const REASONING_DEFAULT_TOKENS = 64;
/** Models whose non-streaming answers carry no cost header. */
export const NO_COST_HEADER = new Set(['dev-no-cost', 'dev-unpriced']);
const ECHO_TOKENS = 48;
const FILLER = ['alpha', 'bravo', 'metered', 'ledger', 'token', 'chain', 'credit', 'block', 'hold', 'usage'];

const TOKEN = /\s*\S{1,4}|\s+/gu;

/** Splits text into the dev tokenizer's tokens (see the header comment); they concatenate to `text`. */
export function devTokens(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

export function countDevTokens(text: string): number {
  return devTokens(text).length;
}

export interface ChatBody {
  model: string;
  messages: Array<{ role: string; content: unknown }>;
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number | null;
}

export type Reply =
  | { kind: 'content' | 'reasoning'; tokens: string[]; finishReason: 'stop' | 'length' }
  | {
      kind: 'tool_call';
      /** Tokens of the name and the arguments: the completion tokens. */
      tokens: string[];
      finishReason: 'tool_calls';
      callId: string;
      name: string;
      arguments: string;
    };

export function replyMessage(reply: Reply): Record<string, unknown> {
  if (reply.kind === 'reasoning') {
    return { role: 'assistant', content: '', reasoning_content: reply.tokens.join(''), refusal: null };
  }
  if (reply.kind === 'tool_call') {
    return {
      role: 'assistant',
      content: null,
      refusal: null,
      tool_calls: [
        { id: reply.callId, type: 'function', function: { name: reply.name, arguments: reply.arguments } },
      ],
    };
  }
  return { role: 'assistant', content: reply.tokens.join(''), refusal: null };
}

export function generateReply(body: ChatBody): Reply {
  if (body.model === 'dev-empty') return { kind: 'content', tokens: [], finishReason: 'stop' };
  const answer = contentReply(body);
  if (body.model === 'dev-reasoning') {
    // Thinks (the echo reply, over and over) until its output limit, and never gets to answer.
    const limit = body.maxTokens ?? REASONING_DEFAULT_TOKENS;
    const tokens = Array.from({ length: limit }, (_, i) => answer.tokens[i % answer.tokens.length] ?? ' x');
    return { kind: 'reasoning', tokens, finishReason: 'length' };
  }
  if (body.model === 'dev-tool-call') {
    const name = 'lookup_balance';
    const args = JSON.stringify({ query: answer.tokens.join('').trim() });
    return {
      kind: 'tool_call',
      tokens: devTokens(name + args),
      finishReason: 'tool_calls',
      callId: `call_dev_${createHash('sha256').update(args).digest('hex').slice(0, 12)}`,
      name,
      arguments: args,
    };
  }
  return answer;
}

function contentReply(body: ChatBody): Reply & { kind: 'content' } {
  const lastUser = [...body.messages].reverse().find((message) => message.role === 'user');
  const echo = devTokens(lastUser ? messageText(lastUser.content) : '')
    .slice(0, ECHO_TOKENS)
    .join('')
    .trim();
  const digest = createHash('sha256')
    .update(JSON.stringify([body.model, body.messages]))
    .digest();
  const fillerCount = 4 + ((digest[0] ?? 0) % 8);
  const filler = Array.from({ length: fillerCount }, (_, i) => FILLER[(digest[i + 1] ?? 0) % FILLER.length]);
  const tokens = devTokens(`Echo: ${echo} ${filler.join(' ')}`.replace(/\s+/g, ' '));
  if (body.maxTokens !== null && tokens.length > body.maxTokens) {
    return { kind: 'content', tokens: tokens.slice(0, body.maxTokens), finishReason: 'length' };
  }
  return { kind: 'content', tokens, finishReason: 'stop' };
}

export function promptTokens(messages: ChatBody['messages']): number {
  return messages.reduce((sum, message) => sum + 4 + countDevTokens(messageText(message.content)), 3);
}

/** String content as is; content parts contribute their `text`. */
function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part: unknown) =>
        part && typeof part === 'object' && 'text' in part && typeof part.text === 'string' ? part.text : '',
      )
      .join('');
  }
  return '';
}

/** Exact USD: tokens x USD-per-million-tokens / 10^6, as a plain decimal string (no rounding). */
export function devCostUsd(
  price: PriceTableJson[string] | undefined,
  usage: { prompt_tokens: number; completion_tokens: number },
): string {
  if (!price) return '0';
  const scale = 12;
  const perMTok =
    BigInt(usage.prompt_tokens) * parseDecimal(price.inputPerMTok, scale) +
    BigInt(usage.completion_tokens) * parseDecimal(price.outputPerMTok, scale);
  return formatDecimal(perMTok, scale + 6);
}

/**
 * LiteLLM's `/model/info` answer for the served models: USD per token as JSON numbers (as LiteLLM writes
 * them, e.g. 1.5e-07), null without a price. Prices of at most 15 significant digits print exactly.
 */
export function modelInfoJson(prices: PriceTableJson): string {
  const perToken = (perMTok: string) => Number(formatDecimal(parseDecimal(perMTok, 12), 18));
  return JSON.stringify({
    data: SERVED_MODELS.map((model) => {
      const price = prices[model];
      return {
        model_name: model,
        litellm_params: { model: `chainmeter/${model}` },
        model_info: {
          id: `dev-${model}`,
          mode: 'chat',
          litellm_provider: 'chainmeter',
          input_cost_per_token: price ? perToken(price.inputPerMTok) : null,
          output_cost_per_token: price ? perToken(price.outputPerMTok) : null,
        },
      };
    }),
  });
}

export function parseChatBody(raw: string): ChatBody | string {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return 'request body is not valid JSON';
  }
  if (!json || typeof json !== 'object') return 'request body must be a JSON object';
  const body = json as Record<string, unknown>;
  if (typeof body.model !== 'string') return "'model' is required";
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    return "'messages' must be a non-empty array";
  for (const message of body.messages as unknown[]) {
    if (!message || typeof message !== 'object' || typeof (message as { role?: unknown }).role !== 'string') {
      return "each message needs a 'role'";
    }
  }
  const limit = body.max_completion_tokens ?? body.max_tokens ?? null;
  if (limit !== null && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)) {
    return "'max_tokens' must be a positive integer";
  }
  const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
  return {
    model: body.model,
    messages: body.messages as ChatBody['messages'],
    stream: body.stream === true,
    includeUsage: body.stream === true && streamOptions?.include_usage === true,
    maxTokens: limit as number | null,
  };
}
