/**
 * The one adapter to an OpenAI-compatible upstream (LiteLLM in production, the dev model otherwise),
 * built on the official `openai` client. It never retries: a billed call runs at most once, and the
 * caller decides what a failure means for the user. Every failure is an {@link UpstreamError} whose
 * message never carries the API key.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
} from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { Model } from 'openai/resources/models';

export const COST_HEADER = 'x-litellm-response-cost';

/**
 * - `timeout`: no answer (or, streaming, no chunk) within `timeoutMs`.
 * - `unavailable`: no connection, a dropped connection, or an upstream 5xx (`status` set then).
 * - `rejected`: the upstream refused the request with a 4xx (`status` set): bad request, auth, rate limit.
 * - `bad_response`: an answer that is not a chat completion, or a stream that broke off mid-way.
 * - `aborted`: the caller's own signal (for instance its client disconnected); not the upstream's fault.
 */
export type UpstreamErrorKind = 'timeout' | 'unavailable' | 'rejected' | 'bad_response' | 'aborted';

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  readonly kind: UpstreamErrorKind;
  /** The upstream's HTTP status, when it answered with one. */
  readonly status: number | null;

  constructor(kind: UpstreamErrorKind, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.status = options.status ?? null;
  }
}

export interface LlmUpstreamOptions {
  /** The SDK's `baseURL`, e.g. `http://litellm:4000/v1`. */
  baseUrl: string;
  apiKey?: string;
  /** Until the response headers (and the whole body when not streaming); between chunks when streaming. */
  timeoutMs: number;
}

/** A chat request as the upstream receives it; streaming is chosen by calling `stream` instead. */
export type UpstreamChatRequest = Omit<ChatCompletionCreateParamsNonStreaming, 'stream' | 'stream_options'>;

export interface CallOptions {
  signal?: AbortSignal;
  /** Extra request headers, e.g. tracing or LiteLLM metadata. */
  headers?: Record<string, string>;
}

export interface UpstreamCompletion {
  completion: ChatCompletion;
  /** Raw `x-litellm-response-cost` header, to be parsed by `costFromHeader`. */
  costHeader: string | null;
  requestId: string | null;
  latencyMs: number;
}

export interface StreamOutcome {
  /**
   * `complete`: a finish_reason arrived and the stream ended cleanly. `incomplete`: it ended cleanly
   * without one. `aborted`: stopped by the caller (signal, `cancel()`, or leaving the loop early).
   * `failed`: broke off or timed out (`error` set).
   */
  status: 'complete' | 'incomplete' | 'aborted' | 'failed';
  /** From the final `include_usage` chunk; null when the stream ended before it. */
  usage: CompletionUsage | null;
  finishReason: string | null;
  /** The generated `content` text. */
  content: string;
  /**
   * UTF-8 bytes of everything generated (content, reasoning, refusal, tool calls: {@link outputBytes}), so
   * a stream without usage can still be bounded and billed.
   */
  generatedBytes: number;
  chunkCount: number;
  error: UpstreamError | null;
  /** From the call to the end of the stream. */
  latencyMs: number;
}

export interface UpstreamStream {
  /** Single use. Throws an {@link UpstreamError} when the stream fails (not when it is aborted). */
  chunks: AsyncIterable<ChatCompletionChunk>;
  costHeader: string | null;
  requestId: string | null;
  /** Resolves (never rejects) once `chunks` has ended, failed or been left; it waits for consumption. */
  outcome: Promise<StreamOutcome>;
  /** Stops the upstream generation, e.g. when the client disconnected. */
  cancel(): void;
  /**
   * UTF-8 bytes of output generated so far, every field counted (the heartbeat records it: see the
   * stream-progress migration).
   */
  generatedBytes(): number;
}

export interface LlmUpstream {
  complete(request: UpstreamChatRequest, options?: CallOptions): Promise<UpstreamCompletion>;
  stream(request: UpstreamChatRequest, options?: CallOptions): Promise<UpstreamStream>;
  listModels(options?: CallOptions): Promise<Model[]>;
  /**
   * The body of LiteLLM's `GET /model/info` (prices per model, see `price-book.ts`), or null when the
   * upstream has no such route (404, 405: not LiteLLM). Throws an {@link UpstreamError} when unreachable.
   */
  modelInfo(options?: CallOptions): Promise<string | null>;
}

/**
 * @example
 * const upstream = createLlmUpstream({ baseUrl: env.LLM_BASE_URL, apiKey: env.LLM_API_KEY, timeoutMs: 60_000 });
 * const { completion, costHeader } = await upstream.complete({ model, messages, max_tokens: 256 });
 */
export function createLlmUpstream(options: LlmUpstreamOptions): LlmUpstream {
  const apiKey = options.apiKey || undefined;
  const client = new OpenAI({
    baseURL: options.baseUrl,
    // Without a key the Authorization header is removed below; the placeholder only satisfies the SDK,
    // and keeps it from picking up OPENAI_API_KEY (or other OPENAI_* settings) from the environment.
    apiKey: apiKey ?? 'none',
    organization: null,
    project: null,
    adminAPIKey: null,
    webhookSecret: null,
    defaultHeaders: apiKey ? undefined : { authorization: null },
    timeout: options.timeoutMs,
    maxRetries: 0,
    logLevel: 'off',
  });
  const fail = (error: unknown) => toUpstreamError(error, apiKey);

  // Non-streaming calls skip the SDK: a plain keep-alive `node:http` request measured 0.2 ms where the
  // SDK took 0.7 ms (headers, retry and parse layers over undici's fetch) on the development machine,
  // paid on every metered call. Streams and model lists stay on the SDK (its SSE parser).
  const completionsUrl = new URL(`${options.baseUrl.replace(/\/+$/, '')}/chat/completions`);
  const transport = completionsUrl.protocol === 'https:' ? https : http;
  // An idle socket is closed after 4 s, or 1 s before the server's `Keep-Alive: timeout=` hint (as undici
  // does), so a request is never sent on a socket the upstream is closing (ECONNRESET, a failed call).
  // This timeout only applies to idle sockets: a call in progress is bounded by `timeoutMs` below.
  const agent = new transport.Agent({ keepAlive: true, timeout: 4_000 });
  const baseHeaders: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
    ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
  };

  interface RawAnswer {
    status: number;
    headers: IncomingHttpHeaders;
    body: string;
  }

  /** One POST, never retried; the whole exchange (headers and body) within `timeoutMs`. */
  function postJson(url: URL, payload: unknown, { signal, headers }: CallOptions): Promise<RawAnswer> {
    const body = JSON.stringify(payload);
    return new Promise<RawAnswer>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new UpstreamError('aborted', 'upstream call aborted by the caller'));
        return;
      }
      let failure: UpstreamError | null = null;
      const request = transport.request(url, {
        method: 'POST',
        agent,
        headers: { ...baseHeaders, ...headers, 'content-length': Buffer.byteLength(body) },
      });
      const stop = (error: UpstreamError) => {
        failure ??= error;
        request.destroy(error);
      };
      const timer = setTimeout(
        () => stop(new UpstreamError('timeout', 'upstream did not answer in time')),
        options.timeoutMs,
      );
      const onAbort = () => stop(new UpstreamError('aborted', 'upstream call aborted by the caller'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      request.on('error', (error: NodeJS.ErrnoException) => {
        done();
        reject(
          failure ??
            new UpstreamError('unavailable', `upstream unreachable: ${error.code ?? 'connection failed'}`, {
              cause: error,
            }),
        );
      });
      request.on('response', (response) => {
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('error', () => {}); // reported through 'close' below
        response.on('close', () => {
          done();
          if (!response.complete) {
            reject(failure ?? new UpstreamError('bad_response', 'upstream connection closed mid-answer'));
            return;
          }
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(parts).toString('utf8'),
          });
        });
      });
      request.end(body);
    });
  }

  return {
    async complete(request, callOptions = {}) {
      const started = performance.now();
      const answer = await postJson(completionsUrl, { ...request, stream: false }, callOptions);
      if (answer.status >= 400) throw statusError(answer.status, answer.body, apiKey);
      let data: unknown;
      try {
        data = JSON.parse(answer.body);
      } catch {
        throw new UpstreamError('bad_response', 'upstream answer is not valid JSON');
      }
      if (!isChatCompletion(data)) {
        throw new UpstreamError(
          'bad_response',
          'upstream answered with something that is not a chat completion',
        );
      }
      return {
        completion: data,
        costHeader: headerValue(answer.headers[COST_HEADER]),
        requestId: headerValue(answer.headers['x-request-id']),
        latencyMs: performance.now() - started,
      };
    },

    async stream(request, { signal, headers } = {}) {
      const started = performance.now();
      const stop = new AbortController();
      let idleTimedOut = false;
      let idleTimer: NodeJS.Timeout | undefined;
      const armIdleTimer = () => {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => {
          idleTimedOut = true;
          stop.abort();
        }, options.timeoutMs);
      };
      const combined = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;

      const openStream = () =>
        client.chat.completions
          .create(
            { ...request, stream: true, stream_options: { include_usage: true } },
            { signal: combined, headers },
          )
          .withResponse();
      let opened: Awaited<ReturnType<typeof openStream>>;
      try {
        opened = await openStream();
      } catch (error) {
        throw fail(error);
      }

      let settle: (outcome: StreamOutcome) => void = () => {};
      const outcome = new Promise<StreamOutcome>((resolve) => {
        settle = resolve;
      });
      const state: Omit<StreamOutcome, 'status' | 'error' | 'latencyMs'> = {
        usage: null,
        finishReason: null,
        content: '',
        generatedBytes: 0,
        chunkCount: 0,
      };
      const finish = (status: StreamOutcome['status'], error: UpstreamError | null) => {
        clearTimeout(idleTimer);
        settle({ ...state, status, error, latencyMs: performance.now() - started });
      };

      async function* chunks(): AsyncGenerator<ChatCompletionChunk> {
        let ended = false;
        armIdleTimer();
        try {
          for await (const chunk of opened.data) {
            // Only the upstream's silence counts: a slow consumer (a slow client) must not time it out.
            clearTimeout(idleTimer);
            state.chunkCount += 1;
            if (chunk.usage) state.usage = chunk.usage;
            const choice = chunk.choices?.[0];
            if (choice?.delta) {
              if (typeof choice.delta.content === 'string') state.content += choice.delta.content;
              state.generatedBytes += outputBytes(choice.delta);
            }
            if (choice?.finish_reason) state.finishReason = choice.finish_reason;
            yield chunk;
            armIdleTimer();
          }
          ended = true;
        } catch (error) {
          ended = true;
          const failure = idleTimedOut
            ? new UpstreamError('timeout', `upstream stream sent nothing for ${options.timeoutMs} ms`)
            : fail(error);
          if (failure.kind === 'aborted') {
            finish('aborted', null);
            return;
          }
          finish('failed', failure);
          throw failure;
        } finally {
          if (!ended) {
            // The consumer left the loop early: stop generating upstream.
            stop.abort();
            finish('aborted', null);
          }
        }
        // The SDK ends quietly when its signal aborts, so the reason is read from the signals.
        if (idleTimedOut) {
          const failure = new UpstreamError(
            'timeout',
            `upstream stream sent nothing for ${options.timeoutMs} ms`,
          );
          finish('failed', failure);
          throw failure;
        }
        if (combined.aborted) finish('aborted', null);
        else finish(state.finishReason ? 'complete' : 'incomplete', null);
      }

      return {
        chunks: chunks(),
        costHeader: opened.response.headers.get(COST_HEADER),
        requestId: opened.response.headers.get('x-request-id'),
        outcome,
        cancel: () => stop.abort(),
        generatedBytes: () => state.generatedBytes,
      };
    },

    async modelInfo({ signal } = {}) {
      // LiteLLM serves it beside /v1/models (and at the root): the SDK's baseURL + /model/info.
      const url = `${options.baseUrl.replace(/\/+$/, '')}/model/info`;
      const timeout = AbortSignal.timeout(options.timeoutMs);
      let response: Response;
      let body: string;
      try {
        response = await fetch(url, {
          headers: { accept: 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
        body = await response.text();
      } catch (error) {
        if (timeout.aborted) throw new UpstreamError('timeout', 'upstream did not answer in time');
        const code = (error as { cause?: { code?: unknown } }).cause?.code;
        throw new UpstreamError(
          'unavailable',
          `upstream unreachable: ${typeof code === 'string' ? code : 'connection failed'}`,
          { cause: error },
        );
      }
      if (response.status === 404 || response.status === 405) return null;
      if (response.status >= 400) throw statusError(response.status, body, apiKey);
      return body;
    },

    async listModels({ signal } = {}) {
      try {
        const models: Model[] = [];
        for await (const model of client.models.list({ signal })) models.push(model);
        return models;
      } catch (error) {
        throw fail(error);
      }
    },
  };
}

/**
 * UTF-8 bytes of everything a message (or a stream's delta) generated: content, reasoning
 * (`reasoning_content` as DeepSeek and LiteLLM name it, `reasoning` as OpenRouter and vLLM do), refusal,
 * tool and function calls (names and arguments) and audio transcripts. Billing counts all of it as
 * generated output (billing.ts): a reasoning model's answer with empty `content` is not empty.
 * @example outputBytes({ content: '', reasoning_content: 'hmm' }) // 3
 */
export function outputBytes(part: unknown): number {
  if (!part || typeof part !== 'object') return 0;
  const fields = part as Record<string, unknown>;
  let bytes = 0;
  for (const field of ['content', 'reasoning_content', 'reasoning', 'refusal'])
    bytes += textBytes(fields[field]);
  if (Array.isArray(fields.tool_calls)) {
    for (const call of fields.tool_calls)
      bytes += functionBytes((call as { function?: unknown } | null)?.function);
  }
  bytes += functionBytes(fields.function_call);
  bytes += textBytes((fields.audio as { transcript?: unknown } | null | undefined)?.transcript);
  return bytes;
}

function textBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (Array.isArray(value)) {
    return value.reduce<number>((sum, part) => sum + textBytes((part as { text?: unknown } | null)?.text), 0);
  }
  return 0;
}

function functionBytes(call: unknown): number {
  if (!call || typeof call !== 'object') return 0;
  const { name, arguments: args } = call as { name?: unknown; arguments?: unknown };
  return textBytes(name) + textBytes(args);
}

function headerValue(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

/** An HTTP error answer, worded like the SDK's errors are mapped in {@link toUpstreamError}. */
function statusError(status: number, body: string, apiKey: string | undefined): UpstreamError {
  let text = '';
  try {
    const message = (JSON.parse(body) as { error?: { message?: unknown } }).error?.message;
    if (typeof message === 'string') text = message;
  } catch {
    // not JSON: no detail
  }
  if (text.length > MAX_UPSTREAM_MESSAGE) text = `${text.slice(0, MAX_UPSTREAM_MESSAGE)}...`;
  const detail = redact(text, apiKey);
  const kind = status >= 500 ? 'unavailable' : 'rejected';
  const verb = kind === 'rejected' ? 'rejected the request' : 'failed';
  return new UpstreamError(kind, `upstream ${verb} (HTTP ${status})${detail ? `: ${detail}` : ''}`, {
    status,
  });
}

function isChatCompletion(data: unknown): data is ChatCompletion {
  return typeof data === 'object' && data !== null && Array.isArray((data as ChatCompletion).choices);
}

const MAX_UPSTREAM_MESSAGE = 200;
const SECRET_LIKE = /\b(?:sk|cm)[-_][\w*-]{4,}/g;

/** Maps whatever the SDK threw to an {@link UpstreamError}; the API key never reaches the message. */
export function toUpstreamError(error: unknown, apiKey?: string): UpstreamError {
  if (error instanceof UpstreamError) return error;
  if (error instanceof APIUserAbortError)
    return new UpstreamError('aborted', 'upstream call aborted by the caller');
  if (error instanceof APIConnectionTimeoutError)
    return new UpstreamError('timeout', 'upstream did not answer in time');
  if (error instanceof APIConnectionError) {
    // The cause is the transport's error (ECONNREFUSED, socket closed): useful, and it holds no secret.
    return new UpstreamError('unavailable', `upstream unreachable: ${connectionReason(error)}`, {
      cause: error.cause,
    });
  }
  if (error instanceof APIError && typeof error.status === 'number') {
    const detail = redact(upstreamMessage(error), apiKey);
    const kind = error.status >= 500 ? 'unavailable' : 'rejected';
    const verb = kind === 'rejected' ? 'rejected the request' : 'failed';
    return new UpstreamError(kind, `upstream ${verb} (HTTP ${error.status})${detail ? `: ${detail}` : ''}`, {
      status: error.status,
    });
  }
  if (error instanceof APIError) {
    // An error event inside a stream: the upstream gave up mid-answer.
    return new UpstreamError(
      'bad_response',
      `upstream stream reported an error: ${redact(upstreamMessage(error), apiKey)}`,
    );
  }
  if (error instanceof SyntaxError) {
    return new UpstreamError('bad_response', 'upstream answer is not valid JSON');
  }
  if (error instanceof TypeError && error.message === 'terminated') {
    // undici's word for a response body cut off by the peer.
    return new UpstreamError('bad_response', 'upstream connection closed mid-answer', { cause: error.cause });
  }
  if (error instanceof Error && error.name === 'AbortError') {
    return new UpstreamError('aborted', 'upstream call aborted by the caller');
  }
  return new UpstreamError('bad_response', `upstream call failed: ${redact(String(error), apiKey)}`);
}

function upstreamMessage(error: APIError): string {
  const body = error.error as { message?: unknown } | undefined;
  const text = typeof body?.message === 'string' ? body.message : '';
  return text.length > MAX_UPSTREAM_MESSAGE ? `${text.slice(0, MAX_UPSTREAM_MESSAGE)}...` : text;
}

function connectionReason(error: APIConnectionError): string {
  const cause = error.cause as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = cause?.code ?? cause?.cause?.code;
  return typeof code === 'string' ? code : 'connection failed';
}

function redact(text: string, apiKey: string | undefined): string {
  const withoutKey = apiKey ? text.split(apiKey).join('[redacted]') : text;
  return withoutKey.replace(SECRET_LIKE, '[redacted]');
}
