/**
 * The built-in dev model: a real OpenAI-compatible HTTP server on loopback. `npm start` uses it when
 * `LLM_BASE_URL` is unset, and every metering test uses it as the upstream, so the gateway is always
 * exercised over real HTTP with the official client's wire format.
 *
 * Routes: `GET /v1/models`, `POST /v1/chat/completions` (streaming included) and, like LiteLLM,
 * `GET /v1/model/info` (also `/model/info`): each model's `model_info.input_cost_per_token` and
 * `output_cost_per_token` in USD per token (JSON numbers), null for a model without a price. That is
 * where the API reads the dev model's prices, exactly as it reads a LiteLLM proxy's.
 *
 * Deterministic answers: the reply is `Echo: ` followed by the first 48 tokens of the last user
 * message, then 4 to 11 filler words picked by a hash of the request; the same request always gets
 * the same content and usage (ids and `created` differ per call).
 *
 * Tokenizer (documented so tests and the hold bound can rely on it): a token is up to 4 non-space
 * characters together with the whitespace before them; trailing whitespace is one more token. So every
 * token is at least one UTF-8 byte, and the pieces concatenate back to the text exactly.
 * `prompt_tokens` = 3 + sum over messages of (4 + tokens of its text); `completion_tokens` = tokens of
 * the reply. `max_completion_tokens` (or `max_tokens`) cuts the reply, with finish_reason "length".
 *
 * Cost: non-streaming answers carry `x-litellm-response-cost` (exact USD decimal, like LiteLLM) from
 * {@link DEV_MODEL_PRICES}. Streams carry no cost header (it is unknown when the headers are sent);
 * with `stream_options.include_usage` the last chunk before `[DONE]` has `choices: []` and `usage`.
 *
 * Test behaviours, chosen by model name so any client (the `openai` package included) can trigger them:
 * - `dev-error-500`: HTTP 500 with an OpenAI error body.
 * - `dev-slow`: answers after `x-dev-delay-ms` milliseconds (request header), default 5000.
 * - `dev-no-cost`: a normal answer without the cost header (priced in the dev table).
 * - `dev-empty`: a prompt-only answer: no content, 0 completion tokens, finish_reason "stop", a cost header
 *   for the prompt (so it is billed: the provider bills the prompt).
 * - `dev-unpriced`: no cost header, and no price in `/model/info` (so the API refuses to call it).
 * - `dev-reasoning`: a reasoning model that thinks until its output limit and never answers: all output in
 *   `reasoning_content` (streamed as `delta.reasoning_content`), `content` empty, finish_reason "length",
 *   `max_tokens` (64 when unset) completion tokens, all of them reasoning tokens.
 * - `dev-tool-call`: answers with one tool call and no content (finish_reason "tool_calls"); completion
 *   tokens = tokens of the function's name and arguments. Streamed as `delta.tool_calls` pieces.
 * - `dev-cut`: a stream that breaks off (connection closed mid-body) after 3 content chunks, without
 *   finish_reason, usage or `[DONE]`; non-streaming, the connection is destroyed before any answer.
 * Any stream may be slowed with the request header `x-dev-chunk-delay-ms` (between chunks), which is
 * how tests observe that generation stops when the client disconnects.
 *
 * Auth: started with `apiKey`, every request needs `Authorization: Bearer <apiKey>` (else 401).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatDecimal, parseDecimal } from '@chainmeter/schema';

/** USD per million tokens as decimal strings: the shape of an `LLM_PRICES` file. */
export type PriceTableJson = Record<string, { inputPerMTok: string; outputPerMTok: string }>;

export const DEV_MODEL = 'chainmeter-dev';
export const DEV_MODEL_LARGE = 'chainmeter-dev-large';

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

const SERVED_MODELS = [...Object.keys(DEV_MODEL_PRICES), 'dev-unpriced'];
const REASONING_DEFAULT_TOKENS = 64;
const NO_COST_HEADER = new Set(['dev-no-cost', 'dev-unpriced']);
const DEFAULT_SLOW_MS = 5_000;
const CUT_AFTER_CHUNKS = 3;
const ECHO_TOKENS = 48;
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const CREATED = Math.floor(Date.UTC(2025, 0, 1) / 1000);
const FILLER = ['alpha', 'bravo', 'metered', 'ledger', 'token', 'chain', 'credit', 'block', 'hold', 'usage'];

const TOKEN = /\s*\S{1,4}|\s+/gu;

/** Splits text into the dev tokenizer's tokens (see the header comment); they concatenate to `text`. */
export function devTokens(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

export function countDevTokens(text: string): number {
  return devTokens(text).length;
}

export interface DevModelServerOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  apiKey?: string;
  /**
   * Delay between stream chunks when a request has no `x-dev-chunk-delay-ms` header: lets tests pace
   * streams that reach it through a gateway (which does not forward test headers). Default 0.
   */
  chunkDelayMs?: number;
  /** The prices it publishes (`/model/info`) and bills (cost header); default {@link DEV_MODEL_PRICES}. */
  prices?: PriceTableJson;
  /** False: no `/model/info` (404), like an OpenAI-compatible upstream that is not LiteLLM. Default true. */
  modelInfo?: boolean;
}

export interface DevModelServer {
  /** Ends with `/v1`: the OpenAI SDK's `baseURL`. */
  baseUrl: string;
  port: number;
  stop(): Promise<void>;
  /** Every HTTP request received, whatever its route or outcome. */
  requestCount(): number;
  /** Streams still generating: drops to 0 soon after their clients disconnect. */
  activeStreams(): number;
  /** Publishes another price table from now on (`/model/info` and the cost header), as a LiteLLM edit would. */
  publishPrices(prices: PriceTableJson): void;
}

interface ChatBody {
  model: string;
  messages: Array<{ role: string; content: unknown }>;
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number | null;
}

/**
 * Starts the dev model server on loopback.
 * @example
 * const dev = await startDevModelServer();
 * const client = new OpenAI({ baseURL: dev.baseUrl, apiKey: 'unused' });
 */
export async function startDevModelServer(options: DevModelServerOptions = {}): Promise<DevModelServer> {
  const host = options.host ?? '127.0.0.1';
  const expectedAuth = options.apiKey === undefined ? null : Buffer.from(`Bearer ${options.apiKey}`);
  let requests = 0;
  let streaming = 0;
  let sequence = 0;
  let prices = options.prices ?? DEV_MODEL_PRICES;

  const server = createServer((req, res) => {
    requests += 1;
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, `dev model failed: ${String(error)}`, 'server_error');
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (expectedAuth && !authorized(req.headers.authorization, expectedAuth)) {
      sendError(res, 401, 'Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/v1/models') {
      sendJson(res, 200, {
        object: 'list',
        data: SERVED_MODELS.map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'chainmeter' })),
      });
      return;
    }
    if (
      req.method === 'GET' &&
      (path === '/v1/model/info' || path === '/model/info') &&
      options.modelInfo !== false
    ) {
      sendRaw(res, 200, modelInfoJson(prices));
      return;
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') {
      const raw = await readBody(req);
      if (raw === null) {
        sendError(res, 413, 'request body too large', 'invalid_request_error');
        return;
      }
      const body = parseChatBody(raw);
      if (typeof body === 'string') {
        sendError(res, 400, body, 'invalid_request_error');
        return;
      }
      await chatCompletion(req, res, body);
      return;
    }
    sendError(res, 404, `no route ${req.method} ${path}`, 'invalid_request_error', 'not_found');
  }

  async function chatCompletion(req: IncomingMessage, res: ServerResponse, body: ChatBody): Promise<void> {
    if (!SERVED_MODELS.includes(body.model)) {
      sendError(
        res,
        404,
        `The model \`${body.model}\` does not exist.`,
        'invalid_request_error',
        'model_not_found',
      );
      return;
    }
    if (body.model === 'dev-error-500') {
      sendError(res, 500, 'The dev model failed on purpose (dev-error-500).', 'server_error');
      return;
    }
    if (body.model === 'dev-slow') {
      const delay = headerNumber(req, 'x-dev-delay-ms') ?? DEFAULT_SLOW_MS;
      if (!(await waitUnlessClosed(res, delay))) return;
    }
    if (body.model === 'dev-cut' && !body.stream) {
      res.destroy();
      return;
    }

    sequence += 1;
    const id = `chatcmpl-dev-${sequence}`;
    const created = Math.floor(Date.now() / 1000);
    const reply = generateReply(body);
    const usage = {
      prompt_tokens: promptTokens(body.messages),
      completion_tokens: reply.tokens.length,
      total_tokens: promptTokens(body.messages) + reply.tokens.length,
      ...(reply.kind === 'reasoning'
        ? { completion_tokens_details: { reasoning_tokens: reply.tokens.length } }
        : {}),
    };
    const headers: Record<string, string> = { 'x-request-id': `req-dev-${sequence}` };

    if (!body.stream) {
      if (!NO_COST_HEADER.has(body.model)) {
        headers['x-litellm-response-cost'] = devCostUsd(prices[body.model], usage);
      }
      sendJson(
        res,
        200,
        {
          id,
          object: 'chat.completion',
          created,
          model: body.model,
          choices: [
            {
              index: 0,
              message: replyMessage(reply),
              logprobs: null,
              finish_reason: reply.finishReason,
            },
          ],
          usage,
        },
        headers,
      );
      return;
    }

    streaming += 1;
    try {
      await streamReply(req, res, body, { id, created, reply, usage, headers });
    } finally {
      streaming -= 1;
    }
  }

  async function streamReply(
    req: IncomingMessage,
    res: ServerResponse,
    body: ChatBody,
    answer: {
      id: string;
      created: number;
      reply: Reply;
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
      headers: Record<string, string>;
    },
  ): Promise<void> {
    const delay = headerNumber(req, 'x-dev-chunk-delay-ms') ?? options.chunkDelayMs ?? 0;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      ...answer.headers,
    });
    const chunk = (choices: unknown[], usage: unknown = null) =>
      `data: ${JSON.stringify({
        id: answer.id,
        object: 'chat.completion.chunk',
        created: answer.created,
        model: body.model,
        choices,
        ...(body.includeUsage ? { usage } : {}),
      })}\n\n`;
    const delta = (content: Record<string, unknown>, finishReason: string | null = null) => ({
      index: 0,
      delta: content,
      logprobs: null,
      finish_reason: finishReason,
    });

    if (!(await send(res, chunk([delta({ role: 'assistant', content: '' })])))) return;
    let sent = 0;
    const { reply } = answer;
    if (reply.kind === 'tool_call') {
      const start = {
        index: 0,
        id: reply.callId,
        type: 'function',
        function: { name: reply.name, arguments: '' },
      };
      if (!(await send(res, chunk([delta({ tool_calls: [start] })])))) return;
    }
    const piece = (text: string): Record<string, unknown> =>
      reply.kind === 'reasoning'
        ? { reasoning_content: text }
        : reply.kind === 'tool_call'
          ? { tool_calls: [{ index: 0, function: { arguments: text } }] }
          : { content: text };
    for (const token of reply.kind === 'tool_call' ? devTokens(reply.arguments) : reply.tokens) {
      if (!(await waitUnlessClosed(res, delay))) return;
      if (!(await send(res, chunk([delta(piece(token))])))) return;
      sent += 1;
      if (body.model === 'dev-cut' && sent >= CUT_AFTER_CHUNKS) {
        // Closing the socket (not the response) flushes what was written, then ends mid-body.
        res.socket?.end();
        return;
      }
    }
    if (!(await send(res, chunk([delta({}, answer.reply.finishReason)])))) return;
    if (body.includeUsage && !(await send(res, chunk([], answer.usage)))) return;
    res.end('data: [DONE]\n\n');
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    baseUrl: `http://${urlHost}:${port}/v1`,
    port,
    requestCount: () => requests,
    activeStreams: () => streaming,
    publishPrices: (table) => {
      prices = table;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

type Reply =
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

function replyMessage(reply: Reply): Record<string, unknown> {
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

function generateReply(body: ChatBody): Reply {
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

function promptTokens(messages: ChatBody['messages']): number {
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
function devCostUsd(
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
function modelInfoJson(prices: PriceTableJson): string {
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

function parseChatBody(raw: string): ChatBody | string {
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

function authorized(header: string | undefined, expected: Buffer): boolean {
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function headerNumber(req: IncomingMessage, name: string): number | null {
  const value = Number(req.headers[name]);
  return req.headers[name] !== undefined && Number.isFinite(value) && value >= 0 ? value : null;
}

async function readBody(req: IncomingMessage): Promise<string | null> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > MAX_BODY_BYTES) return null;
    parts.push(part);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Resolves true after `ms`, or false as soon as the client has gone (so no work is done for nobody). */
function waitUnlessClosed(res: ServerResponse, ms: number): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (ms <= 0) return new Promise((resolve) => setImmediate(() => resolve(!res.destroyed)));
  return new Promise((resolve) => {
    const onClose = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(!res.destroyed);
    }, ms);
    res.once('close', onClose);
  });
}

/** Writes with backpressure; false when the client has disconnected. */
function send(res: ServerResponse, data: string): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(data)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendRaw(res, status, JSON.stringify(body), headers);
}

function sendRaw(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  code: string | null = null,
) {
  sendJson(res, status, { error: { message, type, param: null, code } });
}
