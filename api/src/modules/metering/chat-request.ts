/**
 * Validation of a chat completion request (REST body or GraphQL input) into what the gateway sends
 * upstream. A whitelist: fields the hold cannot bound are refused with a clear message (tools, more than
 * one choice, non-text content), unknown fields are dropped, and every mistake is a 400, never a 500.
 */
import { badInput } from '../../errors.ts';
import type { UpstreamChatRequest } from './llm.upstream.ts';
import { DEFAULT_MAX_TOKENS, type HoldMessage } from './pricing.ts';

/** The largest `max_tokens` accepted: far above any model's output window, small enough to hold. */
const MAX_OUTPUT_TOKENS = 1_000_000;
const MAX_MESSAGES = 2_000;
const MAX_MODEL_NAME = 256;
/**
 * How deep what is forwarded as the client sent it (content parts, `response_format`) may nest. JSON.parse
 * reads any depth, but what walks it recursively (the upstream request's JSON.stringify, the hold's count)
 * overflows the stack on a body of `[[[...]]]`: a 500, or a "RangeError" passed off as the upstream's.
 */
const MAX_NESTING = 64;

export interface ChatRequest {
  model: string;
  /** Sent upstream, with the output limit always set so the hold bounds the charge. */
  upstream: UpstreamChatRequest;
  stream: boolean;
  /** The client asked for the final usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  maxTokens: number;
  /** Text the hold's prompt bound counts: the messages plus any response format schema. */
  holdMessages: HoldMessage[];
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Whether `value` has objects or arrays more than `levels` deep; stops looking at that depth. */
function nestsDeeperThan(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (levels === 0) return true;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    if (nestsDeeperThan(item, levels - 1)) return true;
  }
  return false;
}

function refuseDeepNesting(value: unknown, field: string, param: string): void {
  if (nestsDeeperThan(value, MAX_NESTING)) {
    throw badInput(`${field} nests deeper than ${MAX_NESTING} levels`, param);
  }
}

function optionalNumber(body: Json, field: string, min: number, max: number): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw badInput(`'${field}' must be a number between ${min} and ${max}`, field);
  }
  return value;
}

function positiveInteger(value: unknown, field: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw badInput(`'${field}' must be an integer between 1 and ${max}`, field);
  }
  return value;
}

/** Text of a message's content: a string, null, or text parts only. */
function contentText(content: unknown, index: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    refuseDeepNesting(content, `messages[${index}].content`, 'messages');
    let text = '';
    for (const part of content) {
      if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
        throw badInput(
          `messages[${index}].content: only text parts are supported (images, audio and files are not metered yet)`,
          'messages',
        );
      }
      text += part.text;
    }
    return text;
  }
  throw badInput(`messages[${index}].content must be a string or an array of text parts`, 'messages');
}

/**
 * @example parseChatRequest({ model: 'chainmeter-dev', messages: [{ role: 'user', content: 'hi' }] })
 */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw badInput('The request body must be a JSON object');
  const model = body.model;
  // The model is recorded on the usage row: a NUL character would fail that write (PostgreSQL text).
  if (
    typeof model !== 'string' ||
    model.length === 0 ||
    model.length > MAX_MODEL_NAME ||
    model.includes('\u0000')
  ) {
    throw badInput("'model' is required: a model id from GET /v1/models", 'model');
  }
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_MESSAGES) {
    throw badInput(`'messages' must be a non-empty array of at most ${MAX_MESSAGES} messages`, 'messages');
  }
  const holdMessages: HoldMessage[] = [];
  const upstreamMessages: Json[] = [];
  messages.forEach((message: unknown, index) => {
    if (!isObject(message) || typeof message.role !== 'string' || message.role.length === 0) {
      throw badInput(`messages[${index}] needs a 'role' string`, 'messages');
    }
    if (
      message.tool_calls !== undefined ||
      message.function_call !== undefined ||
      message.audio !== undefined
    ) {
      throw badInput(
        `messages[${index}]: tool calls are not supported by the metered gateway yet`,
        'messages',
      );
    }
    const name = message.name;
    if (name !== undefined && typeof name !== 'string')
      throw badInput(`messages[${index}].name must be a string`);
    const text = contentText(message.content, index);
    holdMessages.push({ role: message.role, content: text, name });
    const forwarded: Json = { role: message.role, content: message.content ?? null };
    if (name !== undefined) forwarded.name = name;
    if (typeof message.tool_call_id === 'string') forwarded.tool_call_id = message.tool_call_id;
    upstreamMessages.push(forwarded);
  });
  for (const field of ['tools', 'functions', 'tool_choice', 'function_call', 'audio', 'modalities']) {
    if (body[field] !== undefined && body[field] !== null) {
      throw badInput(`'${field}' is not supported by the metered gateway yet`, field);
    }
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw badInput("'n' must be 1: one choice per metered request", 'n');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
    throw badInput("'stream' must be a boolean", 'stream');
  }
  const limitField = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens =
    body[limitField] == null
      ? DEFAULT_MAX_TOKENS
      : positiveInteger(body[limitField], limitField, MAX_OUTPUT_TOKENS);

  const upstream: Json = { model, messages: upstreamMessages, [limitField]: maxTokens };
  for (const [field, min, max] of [
    ['temperature', 0, 2],
    ['top_p', 0, 1],
    ['presence_penalty', -2, 2],
    ['frequency_penalty', -2, 2],
  ] as const) {
    const value = optionalNumber(body, field, min, max);
    if (value !== undefined) upstream[field] = value;
  }
  if (body.seed != null) {
    if (!Number.isSafeInteger(body.seed)) throw badInput("'seed' must be an integer", 'seed');
    upstream.seed = body.seed;
  }
  if (body.stop != null) {
    const stop = body.stop;
    const valid =
      typeof stop === 'string' ||
      (Array.isArray(stop) && stop.length <= 4 && stop.every((item) => typeof item === 'string'));
    if (!valid) throw badInput("'stop' must be a string or up to 4 strings", 'stop');
    upstream.stop = stop;
  }
  if (body.user != null) {
    if (typeof body.user !== 'string') throw badInput("'user' must be a string", 'user');
    upstream.user = body.user;
  }
  if (body.response_format != null) {
    if (!isObject(body.response_format) || typeof body.response_format.type !== 'string') {
      throw badInput("'response_format' must be an object with a 'type'", 'response_format');
    }
    refuseDeepNesting(body.response_format, "'response_format'", 'response_format');
    upstream.response_format = body.response_format;
    // A JSON schema is prompt text to the model: the hold counts its bytes too.
    holdMessages.push({ role: 'system', content: JSON.stringify(body.response_format) });
  }
  const streamOptions = body.stream_options;
  if (streamOptions != null && !isObject(streamOptions)) {
    throw badInput("'stream_options' must be an object", 'stream_options');
  }
  return {
    model,
    upstream: upstream as unknown as UpstreamChatRequest,
    stream: body.stream === true,
    includeUsage: isObject(streamOptions) && streamOptions.include_usage === true,
    maxTokens,
    holdMessages,
  };
}
