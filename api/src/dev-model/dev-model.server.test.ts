import OpenAI, { APIConnectionError, AuthenticationError, InternalServerError, NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectElapsedAtLeast } from '../../test/support/elapsed.ts';
import { waitFor } from '../../test/support/wait-for.ts';
import { countDevTokens, DEV_MODEL_PRICES, devTokens } from './dev-model.replies.ts';
import { type DevModelServer, startDevModelServer } from './dev-model.server.ts';

let dev: DevModelServer;
let client: OpenAI;

beforeAll(async () => {
  dev = await startDevModelServer();
  client = new OpenAI({ baseURL: dev.baseUrl, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => dev.stop());

const hello = [{ role: 'user' as const, content: 'Hello there, how are you?' }];

describe('dev tokenizer', () => {
  it('splits into pieces of up to 4 non-space characters that concatenate back', () => {
    expect(devTokens('Hello there, how are you?')).toEqual([
      'Hell',
      'o',
      ' ther',
      'e,',
      ' how',
      ' are',
      ' you?',
    ]);
    expect(devTokens('  a  ')).toEqual(['  a', '  ']);
    expect(countDevTokens('')).toBe(0);
    const text = 'Grüße 🌍🌍🌍🌍🌍 世界\n\tend ';
    expect(devTokens(text).join('')).toBe(text);
    for (const token of devTokens(text)) expect(Buffer.byteLength(token)).toBeGreaterThanOrEqual(1);
  });
});

describe('dev model server with the official openai client', () => {
  it('lists its models', async () => {
    const models = [];
    for await (const model of client.models.list()) models.push(model.id);
    expect(models).toEqual(
      expect.arrayContaining(['chainmeter-dev', 'chainmeter-dev-large', 'dev-unpriced']),
    );
  });

  it('answers deterministically with usage and a cost header', async () => {
    const first = await client.chat.completions
      .create({ model: 'chainmeter-dev', messages: hello })
      .withResponse();
    const second = await client.chat.completions.create({ model: 'chainmeter-dev', messages: hello });
    const content = first.data.choices[0]?.message.content ?? '';
    expect(content).toMatch(/^Echo: Hello there, how are you\?( \w+){4,11}$/);
    expect(second.choices[0]?.message.content).toBe(content);
    expect(first.data.object).toBe('chat.completion');
    expect(first.data.choices[0]?.finish_reason).toBe('stop');
    // 3 + (4 + 7 tokens of "Hello there, how are you?")
    expect(first.data.usage).toEqual({
      prompt_tokens: 14,
      completion_tokens: countDevTokens(content),
      total_tokens: 14 + countDevTokens(content),
    });
    expect(second.usage).toEqual(first.data.usage);
    // 14 x 0.15 + n x 0.60 micro-USD, written in USD exactly
    const completion = BigInt(countDevTokens(content));
    const picoUsd = 14n * 150_000n + completion * 600_000n;
    expect(first.response.headers.get('x-litellm-response-cost')).toBe(
      `0.${picoUsd.toString().padStart(12, '0').replace(/0+$/, '')}`,
    );
  });

  it('prices the large model from its own table row', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'chainmeter-dev-large', messages: hello, max_tokens: 2 })
      .withResponse();
    expect(data.usage?.completion_tokens).toBe(2);
    // 14 x 3 + 2 x 15 = 72 micro-USD
    expect(response.headers.get('x-litellm-response-cost')).toBe('0.000072');
    expect(DEV_MODEL_PRICES['chainmeter-dev-large']).toEqual({ inputPerMTok: '3', outputPerMTok: '15' });
  });

  it('respects max_tokens and max_completion_tokens with finish_reason "length"', async () => {
    const cut = await client.chat.completions.create({
      model: 'chainmeter-dev',
      messages: hello,
      max_tokens: 3,
    });
    expect(cut.choices[0]?.message.content).toBe('Echo: Hell');
    expect(cut.choices[0]?.finish_reason).toBe('length');
    expect(cut.usage?.completion_tokens).toBe(3);
    const newer = await client.chat.completions.create({
      model: 'chainmeter-dev',
      messages: hello,
      max_completion_tokens: 2,
    });
    expect(newer.choices[0]?.message.content).toBe('Echo:');
  });

  it('streams one token per chunk, then the usage chunk and [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model: 'chainmeter-dev',
      messages: hello,
      stream: true,
      stream_options: { include_usage: true },
    });
    const whole = await client.chat.completions.create({ model: 'chainmeter-dev', messages: hello });
    let content = '';
    const finishReasons: string[] = [];
    let usage: unknown = null;
    let contentChunks = 0;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      const choice = chunk.choices[0];
      if (choice?.delta.content) {
        content += choice.delta.content;
        contentChunks += 1;
      }
      if (choice?.finish_reason) finishReasons.push(choice.finish_reason);
      if (chunk.usage) {
        expect(chunk.choices).toEqual([]);
        usage = chunk.usage;
      }
    }
    expect(content).toBe(whole.choices[0]?.message.content);
    expect(contentChunks).toBe(countDevTokens(content));
    expect(finishReasons).toEqual(['stop']);
    expect(usage).toEqual(whole.usage);
  });

  it('streams without a usage chunk unless asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'chainmeter-dev',
      messages: hello,
      stream: true,
    });
    for await (const chunk of stream) expect(chunk.usage ?? null).toBeNull();
  });

  it('dev-error-500 fails with an OpenAI error body', async () => {
    const error = await client.chat.completions
      .create({ model: 'dev-error-500', messages: hello })
      .catch((e) => e);
    expect(error).toBeInstanceOf(InternalServerError);
    expect(error.status).toBe(500);
    expect(error.error).toMatchObject({
      type: 'server_error',
      message: expect.stringContaining('dev-error-500'),
    });
  });

  it('dev-slow answers after the requested delay', async () => {
    const started = performance.now();
    const answer = await client.chat.completions.create(
      { model: 'dev-slow', messages: hello },
      { headers: { 'x-dev-delay-ms': '150' } },
    );
    expectElapsedAtLeast(started, 150);
    expect(answer.choices[0]?.message.content).toMatch(/^Echo: /);
  });

  it('dev-no-cost and dev-unpriced answer without a cost header; only dev-no-cost is priced', async () => {
    for (const model of ['dev-no-cost', 'dev-unpriced']) {
      const { data, response } = await client.chat.completions
        .create({ model, messages: hello })
        .withResponse();
      expect(data.usage?.prompt_tokens).toBe(14);
      expect(response.headers.get('x-litellm-response-cost')).toBeNull();
    }
    expect(DEV_MODEL_PRICES['dev-no-cost']).toBeDefined();
    expect(DEV_MODEL_PRICES['dev-unpriced']).toBeUndefined();
  });

  it('dev-empty gives an empty completion with 0 completion tokens', async () => {
    const answer = await client.chat.completions.create({ model: 'dev-empty', messages: hello });
    expect(answer.choices[0]?.message.content).toBe('');
    expect(answer.usage?.completion_tokens).toBe(0);
  });

  it('dev-cut breaks a stream off after a few chunks, without usage or [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model: 'dev-cut',
      messages: hello,
      stream: true,
      stream_options: { include_usage: true },
    });
    const received: string[] = [];
    const error = await (async () => {
      for await (const chunk of stream) received.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(received.join('')).toBe('Echo: Hell');
  });

  it('refuses unknown models with 404', async () => {
    const error = await client.chat.completions
      .create({ model: 'no-such-model', messages: hello })
      .catch((e) => e);
    expect(error).toBeInstanceOf(NotFoundError);
  });

  it('refuses malformed requests with 400', async () => {
    const response = await fetch(`${dev.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chainmeter-dev', messages: [] }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it('stops generating when the client disconnects', async () => {
    const controller = new AbortController();
    const longMessage = [{ role: 'user' as const, content: 'word '.repeat(200) }];
    const stream = await client.chat.completions.create(
      { model: 'chainmeter-dev', messages: longMessage, stream: true },
      { signal: controller.signal, headers: { 'x-dev-chunk-delay-ms': '250' } },
    );
    let chunks = 0;
    for await (const _ of stream) {
      chunks += 1;
      if (chunks === 3) {
        expect(dev.activeStreams()).toBe(1);
        controller.abort();
      }
    }
    // The 50-odd chunks still to come would take over 12 s at 250 ms each: a server that went on
    // generating fails this wait, one that stopped passes it however loaded the machine.
    await waitFor('the stream to stop', () => dev.activeStreams() === 0, 8_000);
  });

  it('counts requests', async () => {
    const before = dev.requestCount();
    await client.chat.completions.create({ model: 'chainmeter-dev', messages: hello });
    await fetch(`${dev.baseUrl}/nowhere`);
    expect(dev.requestCount()).toBe(before + 2);
  });
});

describe('dev model server with an API key', () => {
  it('requires the bearer key', async () => {
    const guarded = await startDevModelServer({ apiKey: 'dev-secret' });
    try {
      const good = new OpenAI({ baseURL: guarded.baseUrl, apiKey: 'dev-secret', maxRetries: 0 });
      const bad = new OpenAI({ baseURL: guarded.baseUrl, apiKey: 'wrong', maxRetries: 0 });
      await expect(
        good.chat.completions.create({ model: 'chainmeter-dev', messages: hello }),
      ).resolves.toBeDefined();
      await expect(
        bad.chat.completions.create({ model: 'chainmeter-dev', messages: hello }),
      ).rejects.toBeInstanceOf(AuthenticationError);
      expect((await fetch(`${guarded.baseUrl}/models`)).status).toBe(401);
    } finally {
      await guarded.stop();
    }
  });

  it('stops listening on stop()', async () => {
    const short = await startDevModelServer();
    await short.stop();
    const client = new OpenAI({ baseURL: short.baseUrl, apiKey: 'x', maxRetries: 0 });
    await expect(client.models.list()).rejects.toBeInstanceOf(APIConnectionError);
  });
});

describe('dev model server under concurrency', () => {
  it('answers 1,000 non-streaming completions at concurrency 50, each in full (rate printed)', async () => {
    const concurrency = 50;
    const total = 1_000;
    const body = JSON.stringify({ model: 'chainmeter-dev', messages: hello });
    const contents = new Set<string>();
    let sent = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (sent < total) {
          sent += 1;
          const response = await fetch(`${dev.baseUrl}/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          });
          expect(response.status).toBe(200);
          const answer = (await response.json()) as { choices: { message: { content: string } }[] };
          contents.add(answer.choices[0]?.message.content ?? '');
        }
      }),
    );
    // How fast is for `npm run bench`; here, only that every answer came, and the same one.
    const perSecond = Math.round(total / ((performance.now() - started) / 1000));
    console.log(`dev model server: ${perSecond} requests/s at concurrency ${concurrency}`);
    expect(sent).toBe(total);
    expect([...contents]).toEqual([expect.stringMatching(/^Echo: Hello there, how are you\?/)]);
  });
});
