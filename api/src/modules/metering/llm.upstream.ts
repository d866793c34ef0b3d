/**
 * The one adapter to an OpenAI-compatible upstream (LiteLLM in production, the dev model otherwise).
 * It never retries: a billed call runs at most once, and the caller decides what a failure means for the
 * user. Every failure is an {@link UpstreamError} whose message never carries the API key.
 * Non-streaming calls go through a plain keep-alive HTTP client (upstream-http.ts); streams and model
 * lists through the official `openai` client (its SSE parser), watched by upstream-stream.ts.
 */
import OpenAI from 'openai';
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
} from 'openai/resources/chat/completions';
import type { Model } from 'openai/resources/models';
import {
  answerTimedOut,
  errorBodyMessage,
  statusError,
  toUpstreamError,
  UpstreamError,
} from './upstream-error.ts';
import { authorizationHeader, COST_HEADER, firstHeaderValue, REQUEST_ID_HEADER } from './upstream-headers.ts';
import { createJsonPoster } from './upstream-http.ts';
import { openWatchedStream, type UpstreamStream } from './upstream-stream.ts';

export interface LlmUpstreamOptions {
  /** The SDK's `baseURL`, e.g. `http://litellm:4000/v1`. */
  baseUrl: string;
  apiKey?: string;
  /** Until the response headers (and the whole body when not streaming); between chunks when streaming. */
  timeoutMs: number;
}

/** A chat request as the upstream receives it; streaming is chosen by calling `stream` instead. */
export type UpstreamChatRequest = Omit<ChatCompletionCreateParamsNonStreaming, 'stream' | 'stream_options'>;

/** Per-call options of an upstream request. */
export interface UpstreamCallOptions {
  signal?: AbortSignal;
  /** Extra request headers, e.g. tracing or LiteLLM metadata. */
  headers?: Record<string, string>;
  /**
   * A stream as a whole lasts at most `timeoutMs` (a non-streamed call's bound), then is ended as one the
   * upstream broke off: for a call whose payment settles after it, within the payment's validity (x402 `upto`).
   */
  timeLimited?: boolean;
}

export interface UpstreamCompletion {
  completion: ChatCompletion;
  /** Raw `x-litellm-response-cost` header, to be parsed by `costFromHeader`. */
  costHeader: string | null;
  requestId: string | null;
  latencyMs: number;
}

export interface LlmUpstream {
  complete(request: UpstreamChatRequest, options?: UpstreamCallOptions): Promise<UpstreamCompletion>;
  stream(request: UpstreamChatRequest, options?: UpstreamCallOptions): Promise<UpstreamStream>;
  listModels(options?: UpstreamCallOptions): Promise<Model[]>;
  /**
   * The body of LiteLLM's `GET /model/info` (prices per model, see `price-book.ts`), or null when the
   * upstream has no such route (404, 405: not LiteLLM). Throws an {@link UpstreamError} when unreachable.
   */
  modelInfo(options?: UpstreamCallOptions): Promise<string | null>;
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
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const completionsUrl = new URL(`${baseUrl}/chat/completions`);
  const poster = createJsonPoster({
    protocol: completionsUrl.protocol,
    timeoutMs: options.timeoutMs,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      ...authorizationHeader(apiKey),
    },
  });

  return {
    async complete(request, callOptions = {}) {
      const started = performance.now();
      const answer = await poster.post(completionsUrl, { ...request, stream: false }, callOptions);
      if (answer.status >= 400) {
        const retryAfter = firstHeaderValue(answer.headers['retry-after']);
        throw statusError(answer.status, errorBodyMessage(answer.body), apiKey, retryAfter);
      }
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
        costHeader: firstHeaderValue(answer.headers[COST_HEADER]),
        requestId: firstHeaderValue(answer.headers[REQUEST_ID_HEADER]),
        latencyMs: performance.now() - started,
      };
    },

    stream(request, { signal, headers, timeLimited } = {}) {
      return openWatchedStream(
        (stop) =>
          client.chat.completions
            .create(
              { ...request, stream: true, stream_options: { include_usage: true } },
              { signal: stop, headers },
            )
            .withResponse(),
        {
          signal,
          timeoutMs: options.timeoutMs,
          limitMs: timeLimited ? options.timeoutMs : undefined,
          toUpstreamError: fail,
        },
      );
    },

    async modelInfo({ signal } = {}) {
      // LiteLLM serves it beside /v1/models (and at the root): the SDK's baseURL + /model/info.
      const timeout = AbortSignal.timeout(options.timeoutMs);
      let response: Response;
      let body: string;
      try {
        response = await fetch(`${baseUrl}/model/info`, {
          headers: { accept: 'application/json', ...authorizationHeader(apiKey) },
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
        body = await response.text();
      } catch (error) {
        if (timeout.aborted) throw answerTimedOut();
        const code = (error as { cause?: { code?: unknown } }).cause?.code;
        throw new UpstreamError(
          'unavailable',
          `upstream unreachable: ${typeof code === 'string' ? code : 'connection failed'}`,
          { cause: error },
        );
      }
      if (response.status === 404 || response.status === 405) return null;
      if (response.status >= 400) throw statusError(response.status, errorBodyMessage(body), apiKey);
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

function isChatCompletion(data: unknown): data is ChatCompletion {
  return typeof data === 'object' && data !== null && Array.isArray((data as ChatCompletion).choices);
}
