/**
 * A hostile LLM upstream: a real loopback HTTP server speaking OpenAI's chat-completions protocol (JSON and
 * server-sent events), which answers each request the way the test scripted it for that request's marker
 * (the text of its last message): wrong or missing usage, extra choices, junk chunks, encoded bodies, cost
 * headers, answers held back until the test lets them go, streams left open. It publishes its prices at
 * `/model/info` like LiteLLM, so the API reads them as it reads a real proxy's.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';

/** The one model it serves, and its price: USD per token (1 and 2 micro-USD a token). */
export const HOSTILE_MODEL = 'hostile';
export const HOSTILE_PRICE = { input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 };

export interface Scenario {
  /** Default 200. */
  status?: number;
  headers?: Record<string, string>;
  /** A non-streamed answer: an object (sent as JSON) or raw text. */
  body?: unknown;
  /** Encodes the non-streamed body and says so in `content-encoding`, whatever the request accepted. */
  encoding?: 'gzip' | 'deflate' | 'br';
  /** Sent instead of `body`, as it is (already encoded by the test: a decompression bomb, say). */
  encodedBody?: Buffer;
  /** A streamed answer: each event's data, an object (sent as JSON) or raw text; a promise is waited for. */
  events?: unknown[];
  /** Sends `data: [DONE]` after the events (default true). */
  done?: boolean;
  /** Leaves the response open after the last event instead of ending it. */
  keepOpen?: boolean;
  /** Answers only once this resolves (the request is recorded as soon as it arrives). */
  gate?: Promise<void>;
}

export interface ReceivedRequest {
  marker: string;
  body: Record<string, unknown>;
  /** The answer was written to the end. */
  answered: boolean;
  /** The caller closed the connection before the answer was written to the end. */
  closedEarly: boolean;
}

export interface HostileUpstream {
  /** The `LLM_BASE_URL` to give the API (ends in `/v1`). */
  baseUrl: string;
  /** How to answer requests whose last message is `marker`. */
  script(marker: string, scenario: Scenario): void;
  /** The requests received so far, oldest first. */
  received(marker: string): ReceivedRequest[];
  stop(): Promise<void>;
}

export async function startHostileUpstream(): Promise<HostileUpstream> {
  const scenarios = new Map<string, Scenario>();
  const requests: ReceivedRequest[] = [];
  const open = new Set<ServerResponse>();

  async function chat(res: ServerResponse, raw: string): Promise<void> {
    const body = JSON.parse(raw) as Record<string, unknown>;
    const messages = body.messages as { content?: unknown }[];
    const marker = String(messages.at(-1)?.content ?? '');
    const received: ReceivedRequest = { marker, body, answered: false, closedEarly: false };
    requests.push(received);
    res.on('close', () => {
      if (!res.writableFinished) received.closedEarly = true;
    });
    const scenario = scenarios.get(marker);
    if (!scenario) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no scenario for ${marker}` } }));
      return;
    }
    await scenario.gate;
    if (res.destroyed) return;
    if (body.stream === true) {
      res.writeHead(scenario.status ?? 200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        ...scenario.headers,
      });
      for (const event of scenario.events ?? []) {
        if (event instanceof Promise) {
          await event;
          continue;
        }
        res.write(`data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`);
      }
      if (scenario.done !== false) res.write('data: [DONE]\n\n');
      if (scenario.keepOpen) {
        received.answered = true;
        return;
      }
      res.end(() => {
        received.answered = true;
      });
      return;
    }
    const text = typeof scenario.body === 'string' ? scenario.body : JSON.stringify(scenario.body);
    const encoded = scenario.encodedBody ?? encode(Buffer.from(text), scenario.encoding);
    res.writeHead(scenario.status ?? 200, {
      'content-type': 'application/json',
      'content-length': String(encoded.length),
      ...(scenario.encoding ? { 'content-encoding': scenario.encoding } : {}),
      ...scenario.headers,
    });
    res.end(encoded, () => {
      received.answered = true;
    });
  }

  const server = createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://upstream').pathname;
      if (req.method === 'GET' && path.endsWith('/model/info')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ data: [{ model_name: HOSTILE_MODEL, model_info: HOSTILE_PRICE }] }));
        return;
      }
      if (req.method === 'GET' && path === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            object: 'list',
            data: [{ id: HOSTILE_MODEL, object: 'model', created: 0, owned_by: 'test' }],
          }),
        );
        return;
      }
      if (req.method === 'POST' && path === '/v1/chat/completions') {
        chat(res, Buffer.concat(parts).toString('utf8')).catch((error: unknown) => {
          res.destroy(error as Error);
        });
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    script(marker, scenario) {
      scenarios.set(marker, scenario);
    },
    received: (marker) => requests.filter((request) => request.marker === marker),
    async stop() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function encode(body: Buffer, encoding: Scenario['encoding']): Buffer {
  if (encoding === 'gzip') return gzipSync(body);
  if (encoding === 'deflate') return deflateSync(body);
  if (encoding === 'br') return brotliCompressSync(body);
  return body;
}

/** A chat completion with one choice per entry of `choices` (content and finish reason), and `extra` fields. */
export function completion(
  choices: { content?: string | null; reasoning_content?: string; finish_reason?: string | null }[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: 'chatcmpl-hostile',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: HOSTILE_MODEL,
    choices: choices.map((choice, index) => ({
      index,
      message: {
        role: 'assistant',
        content: choice.content ?? null,
        ...(choice.reasoning_content === undefined ? {} : { reasoning_content: choice.reasoning_content }),
      },
      finish_reason: choice.finish_reason === undefined ? 'stop' : choice.finish_reason,
    })),
    ...extra,
  };
}

/** One stream chunk: a delta for choice `index` (0 by default), or exactly `extra` when `delta` is null. */
export function chunk(
  delta: Record<string, unknown> | null,
  options: { index?: number; finish_reason?: string | null; extra?: Record<string, unknown> } = {},
): Record<string, unknown> {
  const base = { id: 'chatcmpl-hostile', object: 'chat.completion.chunk', created: 1, model: HOSTILE_MODEL };
  if (delta === null) return { ...base, ...options.extra };
  return {
    ...base,
    choices: [{ index: options.index ?? 0, delta, finish_reason: options.finish_reason ?? null }],
    ...options.extra,
  };
}
