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
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ChatBody,
  DEV_MODEL_PRICES,
  devCostUsd,
  devTokens,
  generateReply,
  modelInfoJson,
  NO_COST_HEADER,
  type PriceTableJson,
  parseChatBody,
  promptTokens,
  type Reply,
  replyMessage,
  SERVED_MODELS,
} from './dev-model.replies.ts';
import {
  authorized,
  headerNumber,
  readBody,
  send,
  sendError,
  sendJson,
  sendRaw,
  waitUnlessClosed,
} from './http-io.ts';

const DEFAULT_SLOW_MS = 5_000;
const CUT_AFTER_CHUNKS = 3;
const CREATED = Math.floor(Date.UTC(2025, 0, 1) / 1000);

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
