import { createServer } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectElapsedAtLeast } from '../../../test/support/elapsed.ts';
import { waitFor } from '../../../test/support/wait-for.ts';
import { countDevTokens } from '../../dev-model/dev-model.replies.ts';
import { type DevModelServer, startDevModelServer } from '../../dev-model/dev-model.server.ts';
import { createLlmUpstream, type LlmUpstream } from './llm.upstream.ts';
import { costFromHeader } from './pricing.ts';
import { UpstreamError } from './upstream-error.ts';

const API_KEY = 'sk-upstream-secret-1234567890';
/** Never reached on loopback, however loaded the machine: only the timeout tests set a short one. */
const PATIENT_MS = 30_000;
/**
 * What `x-dev-delay-ms` / `x-dev-chunk-delay-ms` ask of the dev model where only a timeout, an abort or a
 * client leaving may end the wait: far beyond any bound these tests wait with.
 */
const FOREVER_MS = '60000';
/**
 * Between the chunks of a stream that the client stops: the ~50 chunks it would still send take over
 * 12 s, longer than `STOPPED_WITHIN_MS`, so a dev model that kept generating fails the wait for it.
 */
const PACED_CHUNK_MS = '250';
const STOPPED_WITHIN_MS = 8_000;
let dev: DevModelServer;
let upstream: LlmUpstream;

beforeAll(async () => {
  dev = await startDevModelServer({ apiKey: API_KEY });
  upstream = createLlmUpstream({ baseUrl: dev.baseUrl, apiKey: API_KEY, timeoutMs: PATIENT_MS });
});
afterAll(() => dev.stop());

const hello = [{ role: 'user' as const, content: 'Hello there, how are you?' }];

async function upstreamError(promise: Promise<unknown>): Promise<UpstreamError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the upstream call to fail');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  const upstreamError = error as UpstreamError;
  // The key must not leak through the message, the string form or a logged inspection.
  expect(upstreamError.message).not.toContain(API_KEY);
  expect(String(upstreamError)).not.toContain(API_KEY);
  expect(inspect(upstreamError, { depth: 10 })).not.toContain(API_KEY);
  return upstreamError;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('complete', () => {
  it('returns the completion, the cost header and the latency', async () => {
    const result = await upstream.complete({ model: 'chainmeter-dev', messages: hello });
    const content = result.completion.choices[0]?.message.content ?? '';
    expect(content).toMatch(/^Echo: Hello there/);
    expect(result.completion.usage?.prompt_tokens).toBe(14);
    expect(result.requestId).toMatch(/^req-dev-/);
    expect(result.latencyMs).toBeGreaterThan(0);
    // 14 x 0.15 + n x 0.60 micro-USD, rounded up
    const completionTokens = BigInt(countDevTokens(content));
    expect(costFromHeader(result.costHeader)).toBe((14n * 15n + completionTokens * 60n + 99n) / 100n);
  });

  it('gives a null cost header when the upstream sends none', async () => {
    const result = await upstream.complete({ model: 'dev-no-cost', messages: hello });
    expect(result.costHeader).toBeNull();
  });

  it('maps an upstream 500 to unavailable with the status', async () => {
    const error = await upstreamError(upstream.complete({ model: 'dev-error-500', messages: hello }));
    expect(error.kind).toBe('unavailable');
    expect(error.status).toBe(500);
    expect(error.message).toMatch(/HTTP 500.*dev-error-500/);
  });

  it('maps a 4xx to rejected with the status', async () => {
    const error = await upstreamError(upstream.complete({ model: 'no-such-model', messages: hello }));
    expect(error.kind).toBe('rejected');
    expect(error.status).toBe(404);
  });

  it('maps a wrong key to rejected 401 without echoing either key', async () => {
    const wrongKey = 'sk-wrong-key-abcdefgh';
    const wrong = createLlmUpstream({ baseUrl: dev.baseUrl, apiKey: wrongKey, timeoutMs: PATIENT_MS });
    const error = await upstreamError(wrong.complete({ model: 'chainmeter-dev', messages: hello }));
    expect(error.kind).toBe('rejected');
    expect(error.status).toBe(401);
    expect(inspect(error, { depth: 10 })).not.toContain(wrongKey);
  });

  it('times out on a slow upstream after timeoutMs, without retrying', async () => {
    const timeoutMs = 300;
    const impatient = createLlmUpstream({ baseUrl: dev.baseUrl, apiKey: API_KEY, timeoutMs });
    const before = dev.requestCount();
    const started = performance.now();
    // The answer would take a minute: only the timeout can end this call.
    const error = await upstreamError(
      impatient.complete(
        { model: 'dev-slow', messages: hello },
        { headers: { 'x-dev-delay-ms': FOREVER_MS } },
      ),
    );
    expect(error.kind).toBe('timeout');
    expectElapsedAtLeast(started, timeoutMs);
    // Never retried: one request reached the upstream (none, if a starved event loop ran the timer before
    // the server read it; a retry would make two).
    expect(dev.requestCount() - before).toBeLessThanOrEqual(1);
  });

  it('maps a refused connection to unavailable', async () => {
    const port = await freePort();
    const nowhere = createLlmUpstream({
      baseUrl: `http://127.0.0.1:${port}/v1`,
      apiKey: API_KEY,
      timeoutMs: PATIENT_MS,
    });
    const error = await upstreamError(nowhere.complete({ model: 'chainmeter-dev', messages: hello }));
    expect(error.kind).toBe('unavailable');
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('maps a connection dropped before the answer to unavailable', async () => {
    const error = await upstreamError(upstream.complete({ model: 'dev-cut', messages: hello }));
    expect(error.kind).toBe('unavailable');
  });

  it('reports the caller aborting as aborted', async () => {
    const controller = new AbortController();
    const before = dev.requestCount();
    const call = upstream.complete(
      { model: 'dev-slow', messages: hello },
      { signal: controller.signal, headers: { 'x-dev-delay-ms': FOREVER_MS } },
    );
    await waitFor('the upstream to receive the call', () => dev.requestCount() > before);
    controller.abort();
    const error = await upstreamError(call);
    expect(error.kind).toBe('aborted');
  });

  it('sends no Authorization header when it has no key', async () => {
    const open = await startDevModelServer();
    const guarded = await startDevModelServer({ apiKey: 'needed' });
    try {
      const keyless = createLlmUpstream({ baseUrl: open.baseUrl, timeoutMs: PATIENT_MS });
      await expect(keyless.complete({ model: 'chainmeter-dev', messages: hello })).resolves.toBeDefined();
      const refused = createLlmUpstream({ baseUrl: guarded.baseUrl, timeoutMs: PATIENT_MS });
      expect((await upstreamError(refused.listModels())).status).toBe(401);
    } finally {
      await Promise.all([open.stop(), guarded.stop()]);
    }
  });
});

describe('stream', () => {
  it('yields the chunks and ends with the final usage', async () => {
    const whole = await upstream.complete({ model: 'chainmeter-dev', messages: hello });
    const stream = await upstream.stream({ model: 'chainmeter-dev', messages: hello });
    let content = '';
    for await (const chunk of stream.chunks) content += chunk.choices[0]?.delta.content ?? '';
    const outcome = await stream.outcome;
    expect(content).toBe(whole.completion.choices[0]?.message.content);
    expect(outcome).toMatchObject({ status: 'complete', finishReason: 'stop', content, error: null });
    // always asked for: include_usage
    expect(outcome.usage).toEqual(whole.completion.usage);
    expect(stream.costHeader).toBeNull();
  });

  it('reports a stream that breaks off as failed, with what was generated', async () => {
    const stream = await upstream.stream({ model: 'dev-cut', messages: hello });
    const received: string[] = [];
    const error = await (async () => {
      for await (const chunk of stream.chunks) received.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).kind).toBe('bad_response');
    const outcome = await stream.outcome;
    expect(outcome.status).toBe('failed');
    expect(outcome.usage).toBeNull();
    expect(outcome.content).toBe('Echo: Hell');
    expect(received.join('')).toBe('Echo: Hell');
  });

  it('stops the upstream when the caller aborts mid-stream', async () => {
    const controller = new AbortController();
    const longMessage = [{ role: 'user' as const, content: 'word '.repeat(200) }];
    const stream = await upstream.stream(
      { model: 'chainmeter-dev', messages: longMessage },
      { signal: controller.signal, headers: { 'x-dev-chunk-delay-ms': PACED_CHUNK_MS } },
    );
    let chunks = 0;
    for await (const _ of stream.chunks) {
      chunks += 1;
      if (chunks === 3) controller.abort();
    }
    const outcome = await stream.outcome;
    expect(outcome.status).toBe('aborted');
    expect(outcome.chunkCount).toBe(3);
    expect(outcome.usage).toBeNull();
    expect(outcome.content).toBe('Echo:'); // the role chunk, "Echo", ":"
    await waitFor('the dev server to stop generating', () => dev.activeStreams() === 0, STOPPED_WITHIN_MS);
  });

  it('stops the upstream when the consumer leaves the loop', async () => {
    const longMessage = [{ role: 'user' as const, content: 'word '.repeat(200) }];
    const stream = await upstream.stream(
      { model: 'chainmeter-dev', messages: longMessage },
      { headers: { 'x-dev-chunk-delay-ms': PACED_CHUNK_MS } },
    );
    for await (const _ of stream.chunks) break;
    expect((await stream.outcome).status).toBe('aborted');
    await waitFor('the dev server to stop generating', () => dev.activeStreams() === 0, STOPPED_WITHIN_MS);
  });

  it('times out a stream whose headers do not come within timeoutMs', async () => {
    const timeoutMs = 150;
    const impatient = createLlmUpstream({ baseUrl: dev.baseUrl, apiKey: API_KEY, timeoutMs });
    const started = performance.now();
    const error = await upstreamError(
      impatient.stream({ model: 'dev-slow', messages: hello }, { headers: { 'x-dev-delay-ms': FOREVER_MS } }),
    );
    expect(error.kind).toBe('timeout');
    expectElapsedAtLeast(started, timeoutMs);
  });

  it('times out a stream that goes quiet for timeoutMs between chunks', async () => {
    // Long enough for the headers and the first chunk to come on a loaded machine; the next chunk never does.
    const timeoutMs = 1_000;
    const impatient = createLlmUpstream({ baseUrl: dev.baseUrl, apiKey: API_KEY, timeoutMs });
    const stream = await impatient.stream(
      { model: 'chainmeter-dev', messages: hello },
      { headers: { 'x-dev-chunk-delay-ms': FOREVER_MS } },
    );
    const error = await upstreamError(
      (async () => {
        for await (const _ of stream.chunks);
      })(),
    );
    expect(error.kind).toBe('timeout');
    const outcome = await stream.outcome;
    expect(outcome).toMatchObject({ status: 'failed', chunkCount: 1, content: '' });
    expect(outcome.latencyMs).toBeGreaterThan(timeoutMs - 1);
    await waitFor('the dev server to stop generating', () => dev.activeStreams() === 0);
  });

  it('does not count a slow consumer against the upstream timeout', async () => {
    const timeoutMs = 1_000;
    const impatient = createLlmUpstream({ baseUrl: dev.baseUrl, apiKey: API_KEY, timeoutMs });
    const stream = await impatient.stream({ model: 'chainmeter-dev', messages: hello, max_tokens: 3 });
    let first = true;
    for await (const _ of stream.chunks) {
      // A client reading slowly: passing the first chunk on takes longer than the upstream timeout (the
      // rest of the answer waits meanwhile, already sent).
      if (first) await new Promise((resolve) => setTimeout(resolve, timeoutMs * 1.5));
      first = false;
    }
    expect(await stream.outcome).toMatchObject({ status: 'complete', finishReason: 'length', error: null });
  });

  it('maps stream failures before the first chunk like complete does', async () => {
    const error = await upstreamError(upstream.stream({ model: 'dev-error-500', messages: hello }));
    expect(error.kind).toBe('unavailable');
    expect(error.status).toBe(500);
  });
});

describe('listModels', () => {
  it('lists the upstream models', async () => {
    const models = await upstream.listModels();
    expect(models.map((model) => model.id)).toContain('chainmeter-dev');
  });
});
