/**
 * A real OpenAI-speaking upstream on loopback whose answers wait at a gate the test opens: a test can have
 * calls in flight at the upstream, exactly as many as it wants, for as long as it wants (no timing). It
 * serves one model, `gated-model`, priced like LiteLLM (`GET /v1/model/info`): 1 micro-USD per prompt token
 * and 10 per completion token, and every answer reports the same usage (3 prompt and 2 completion tokens,
 * no cost header), so each answered call costs 3 x 1 + 2 x 10 = 23 micro-USD, JSON or streamed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const GATED_MODEL = 'gated-model';
/** The usage every answer reports. */
export const GATED_USAGE = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };

interface Waiting {
  streamed: boolean;
  response: ServerResponse;
}

export interface GatedUpstream {
  /** The OpenAI SDK's `baseURL` (`.../v1`), for `LLM_BASE_URL`. */
  baseUrl: string;
  /** Chat completions received so far (answered or waiting). */
  received(): number;
  /** Chat completions waiting at the gate. */
  waiting(): number;
  /** Answers the `count` oldest waiting calls (all of them by default); resolves once they are written. */
  release(count?: number): Promise<void>;
  /** Opens the gate for good (every call waiting now and later is answered), or closes it again. */
  setOpen(open: boolean): Promise<void>;
  close(): Promise<void>;
}

const MODEL_INFO = JSON.stringify({
  data: [
    {
      model_name: GATED_MODEL,
      litellm_params: { model: `test/${GATED_MODEL}` },
      model_info: { mode: 'chat', input_cost_per_token: 0.000001, output_cost_per_token: 0.00001 },
    },
  ],
});

function chunk(id: string, delta: object, finishReason: string | null, usage?: object): string {
  const choices = usage ? [] : [{ index: 0, delta, finish_reason: finishReason }];
  return `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 0, model: GATED_MODEL, choices, ...(usage ? { usage } : {}) })}\n\n`;
}

/** Writes the whole answer; resolves once it has left (or the connection is gone). */
function answer({ streamed, response }: Waiting, id: string): Promise<void> {
  return new Promise((resolve) => {
    response.once('close', () => resolve());
    if (response.destroyed || response.writableEnded) {
      resolve();
      return;
    }
    response.on('error', () => resolve());
    if (!streamed) {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created: 0,
          model: GATED_MODEL,
          choices: [
            { index: 0, message: { role: 'assistant', content: 'Gated answer.' }, finish_reason: 'stop' },
          ],
          usage: GATED_USAGE,
        }),
        () => resolve(),
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.write(chunk(id, { role: 'assistant', content: '' }, null));
    response.write(chunk(id, { content: 'Gated answer.' }, null));
    response.write(chunk(id, {}, 'stop'));
    response.write(chunk(id, {}, null, GATED_USAGE));
    response.end('data: [DONE]\n\n', () => resolve());
  });
}

export async function startGatedUpstream(): Promise<GatedUpstream> {
  const waiting: Waiting[] = [];
  let received = 0;
  let open = false;
  let answered = 0;

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const url = request.url ?? '';
    if (request.method === 'GET' && (url === '/v1/model/info' || url === '/model/info')) {
      response.writeHead(200, { 'content-type': 'application/json' }).end(MODEL_INFO);
      return;
    }
    if (request.method === 'GET' && url === '/v1/models') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          object: 'list',
          data: [{ id: GATED_MODEL, object: 'model', created: 0, owned_by: 'test' }],
        }),
      );
      return;
    }
    if (request.method !== 'POST' || url !== '/v1/chat/completions') {
      response.writeHead(404).end();
      return;
    }
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (part: string) => {
      body += part;
    });
    request.on('end', () => {
      received++;
      const streamed = (JSON.parse(body) as { stream?: boolean }).stream === true;
      const call = { streamed, response };
      if (open) {
        void answer(call, `gated-${++answered}`);
        return;
      }
      waiting.push(call);
      // A caller that gave up (or died) is no longer waiting: a release answers the living ones.
      response.once('close', () => {
        const index = waiting.indexOf(call);
        if (index >= 0) waiting.splice(index, 1);
      });
    });
  });
  const port = await new Promise<number>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });

  async function release(count = waiting.length): Promise<void> {
    const calls = waiting.splice(0, count);
    await Promise.all(calls.map((call) => answer(call, `gated-${++answered}`)));
  }

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    received: () => received,
    waiting: () => waiting.length,
    release,
    async setOpen(value) {
      open = value;
      if (open) await release();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const call of waiting.splice(0)) call.response.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
