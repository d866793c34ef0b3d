/**
 * No answered call is free or mis-billed, whatever the upstream does: the real `/v1/chat/completions`
 * endpoint (the official `openai` client where it takes the answer, raw fetch where it would not) and
 * GraphQL's `createCompletion`, against a real loopback upstream that misbehaves as each test scripts it
 * (support/hostile-upstream.ts), on a real PostgreSQL database.
 *
 * Prices (the upstream's /model/info): 1 micro-USD a prompt token, 2 a completion token; markup 2. So a
 * call of p prompt and c completion tokens is charged 2 x (p + 2c) micro-USD, worked out by hand here.
 * The hold's prompt bound of one user message M (ASCII) is 8 (request) + 8 (message) + 4 ("user") +
 * M's length: `bound(M)`.
 */
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gql } from './support/graphql.ts';
import {
  chunk,
  completion,
  HOSTILE_MODEL,
  type HostileUpstream,
  startHostileUpstream,
} from './support/hostile-upstream.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { UNLIMITED_RATES } from './support/platform.ts';
import { fundedUser, type TestUser } from './support/users.ts';
import { waitFor } from './support/wait-for.ts';

let database: TestDatabase;
let upstream: HostileUpstream;
let api: RunningApi;

beforeAll(async () => {
  database = await createTestDatabase('cm_hostile');
  upstream = await startHostileUpstream();
  api = await startApi(
    testApiConfig({
      DATABASE_URL: database.url,
      LLM_BASE_URL: upstream.baseUrl,
      LLM_TIMEOUT_MS: '4000',
      PRICE_MARKUP: '2',
      METERING_RETRY_MS: '50',
      X402: 'off',
      ...UNLIMITED_RATES,
    }),
    { crediting: false },
  );
});

afterAll(async () => {
  await api?.close();
  await upstream?.stop();
  await database?.drop();
});

const BALANCE = 10_000_000n;
const charge = (prompt: number, completion: number) => 2n * BigInt(prompt + 2 * completion);
const bound = (marker: string) => 20 + marker.length;

interface UsageRow {
  status: string;
  prompt_tokens: number;
  completion_tokens: number;
  provider_cost: string | null;
  user_price: string;
  flags: string[];
}

async function newUser(): Promise<TestUser & { client: OpenAI }> {
  const user = await fundedUser(api, BALANCE);
  return { ...user, client: new OpenAI({ baseURL: `${api.url}/v1`, apiKey: user.token, maxRetries: 0 }) };
}

/** The account's one call once settled, its ledger agreeing with it. */
async function settledCall(accountId: string): Promise<UsageRow> {
  const em = () => api.services.orm.em.fork();
  const row = await waitFor('the call to be settled', async () => {
    const rows = await em().execute<UsageRow[]>(
      `select status, prompt_tokens, completion_tokens, provider_cost::text as provider_cost,
         user_price::text as user_price, flags from usage_records where account_id = ?`,
      [accountId],
    );
    expect(rows.length).toBeLessThanOrEqual(1);
    return rows[0] && rows[0].status !== 'HELD' && rows[0].status !== 'UNSETTLED' ? rows[0] : null;
  }).then((settled) => settled as UsageRow);
  await api.services.metering.whenIdle();
  const [account] = await em().execute<{ balance: string; held: string }[]>(
    'select balance::text as balance, held::text as held from accounts where id = ?',
    [accountId],
  );
  expect(account).toEqual({ balance: String(BALANCE - BigInt(row.user_price)), held: '0' });
  expect((await checkLedgerInvariants(em())).problems).toEqual([]);
  return row;
}

const ask = (marker: string, extra: Record<string, unknown> = {}) => ({
  model: HOSTILE_MODEL,
  messages: [{ role: 'user' as const, content: marker }],
  ...extra,
});

/** A promise the test resolves when it chooses (`open`). */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** A raw POST (for answers the official client would refuse to hand over). */
function post(user: TestUser, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
    body: JSON.stringify(body),
    signal,
  });
}

/** Reads a stream through the official client; returns the content of choice 0. */
async function readStream(client: OpenAI, body: ReturnType<typeof ask>): Promise<string> {
  const stream = await client.chat.completions.create({ ...body, stream: true });
  let content = '';
  for await (const part of stream) {
    for (const choice of part.choices ?? []) if (choice.index === 0) content += choice.delta?.content ?? '';
  }
  return content;
}

describe('reported usage that cannot be true is not believed', () => {
  const invalid: [string, Record<string, unknown>][] = [
    ['negative', { prompt_tokens: -5, completion_tokens: 3, total_tokens: -2 }],
    ['fractional', { prompt_tokens: 10, completion_tokens: 2.5, total_tokens: 12.5 }],
    ['strings', { prompt_tokens: '10', completion_tokens: 'NaN', total_tokens: 'NaN' }],
    ['absurd', { prompt_tokens: 10, completion_tokens: 1e12, total_tokens: 1e12 + 10 }],
    ['beyond 2^53', { prompt_tokens: 1e300, completion_tokens: 3, total_tokens: 1e300 }],
  ];
  for (const [name, usage] of invalid) {
    it(`bills usage that is ${name} from the estimate, flagged USAGE_INVALID`, async () => {
      const user = await newUser();
      const marker = `invalid usage ${name}`;
      upstream.script(marker, { body: completion([{ content: 'abcdef' }], { usage }) });
      const response = await post(user, ask(marker));
      expect(response.status).toBe(200);
      const row = await settledCall(user.accountId);
      // The estimate: the prompt's bound and the 6 bytes generated.
      expect(row).toMatchObject({
        status: 'BILLED',
        prompt_tokens: bound(marker),
        completion_tokens: 6,
        user_price: String(charge(bound(marker), 6)),
      });
      expect(row.flags).toEqual(expect.arrayContaining(['USAGE_INVALID', 'USAGE_ESTIMATED']));
    });
  }

  it('bills a stream whose usage chunk is invalid from the estimate', async () => {
    const user = await newUser();
    const marker = 'invalid stream usage';
    upstream.script(marker, {
      events: [
        chunk({ role: 'assistant', content: 'abcd' }),
        chunk({}, { finish_reason: 'stop' }),
        chunk(null, { extra: { choices: [], usage: { prompt_tokens: -1, completion_tokens: -1 } } }),
      ],
    });
    expect(await readStream(user.client, ask(marker))).toBe('abcd');
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({
      status: 'BILLED',
      prompt_tokens: bound(marker),
      completion_tokens: 4,
      user_price: String(charge(bound(marker), 4)),
    });
    expect(row.flags).toContain('USAGE_INVALID');
  });
});

describe('reported usage that contradicts itself or the answer', () => {
  it('bills total_tokens above prompt + completion as completion tokens, flagged USAGE_INCONSISTENT', async () => {
    const user = await newUser();
    const marker = 'total above parts';
    upstream.script(marker, {
      body: completion([{ content: 'hello' }], {
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 100 },
      }),
    });
    const answer = await user.client.chat.completions.create(ask(marker));
    expect(answer.choices[0]?.message.content).toBe('hello');
    const row = await settledCall(user.accountId);
    // 100 - 10 = 90 tokens the answer cost beyond its prompt.
    expect(row).toMatchObject({
      prompt_tokens: 10,
      completion_tokens: 90,
      user_price: String(charge(10, 90)),
    });
    expect(row.flags).toContain('USAGE_INCONSISTENT');
  });

  it('bills the parts when total_tokens is below them, flagged', async () => {
    const user = await newUser();
    const marker = 'total below parts';
    upstream.script(marker, {
      body: completion([{ content: 'hello' }], {
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 3 },
      }),
    });
    await user.client.chat.completions.create(ask(marker));
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({ prompt_tokens: 10, completion_tokens: 5, user_price: String(charge(10, 5)) });
    expect(row.flags).toContain('USAGE_INCONSISTENT');
  });

  it('bills 0 completion tokens reported for text that came back from the text, flagged', async () => {
    const user = await newUser();
    const marker = 'zero completion with text';
    upstream.script(marker, {
      body: completion([{ content: 'hello world', reasoning_content: 'hmm' }], {
        usage: { prompt_tokens: 10, completion_tokens: 0, total_tokens: 10 },
      }),
    });
    await user.client.chat.completions.create(ask(marker));
    const row = await settledCall(user.accountId);
    // 11 bytes of content + 3 of reasoning; the reported prompt is kept.
    expect(row).toMatchObject({
      status: 'BILLED',
      prompt_tokens: 10,
      completion_tokens: 14,
      user_price: String(charge(10, 14)),
    });
    expect(row.flags).toContain('USAGE_INCONSISTENT');
  });

  it('does not bill a zero usage for an answer with text as free', async () => {
    const user = await newUser();
    const marker = 'all zero usage';
    upstream.script(marker, {
      body: completion([{ content: 'hello' }], {
        usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      }),
    });
    await user.client.chat.completions.create(ask(marker));
    const row = await settledCall(user.accountId);
    // No prompt is 0 tokens: the prompt's bound; 5 bytes of content.
    expect(row).toMatchObject({
      status: 'BILLED',
      prompt_tokens: bound(marker),
      completion_tokens: 5,
      user_price: String(charge(bound(marker), 5)),
    });
    expect(row.flags).toContain('USAGE_INCONSISTENT');
  });
});

describe('every choice is billed', () => {
  it('counts the output of every choice of an answer without usage', async () => {
    const user = await newUser();
    const marker = 'two choices';
    upstream.script(marker, { body: completion([{ content: 'aaaa' }, { content: 'bbbbbb' }]) });
    const response = await post(user, ask(marker));
    expect(((await response.json()) as { choices: unknown[] }).choices).toHaveLength(2);
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({
      prompt_tokens: bound(marker),
      completion_tokens: 10,
      user_price: String(charge(bound(marker), 10)),
    });
  });

  it('counts the output of every choice of a stream without usage', async () => {
    const user = await newUser();
    const marker = 'two streamed choices';
    upstream.script(marker, {
      events: [
        chunk({ role: 'assistant', content: 'aaaa' }, { index: 0 }),
        chunk({ role: 'assistant', content: 'bbbbbb' }, { index: 1 }),
        chunk({}, { index: 0, finish_reason: 'stop' }),
        chunk({}, { index: 1, finish_reason: 'stop' }),
      ],
    });
    expect(await readStream(user.client, ask(marker))).toBe('aaaa');
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({
      prompt_tokens: bound(marker),
      completion_tokens: 10,
      user_price: String(charge(bound(marker), 10)),
    });
  });
});

describe('the output limit', () => {
  it('bills an answer cut at its limit (finish_reason length) without usage as max_tokens', async () => {
    const user = await newUser();
    const marker = 'cut at the limit';
    upstream.script(marker, { body: completion([{ content: 'abc', finish_reason: 'length' }]) });
    await user.client.chat.completions.create(ask(marker, { max_tokens: 50 }));
    const row = await settledCall(user.accountId);
    // 3 bytes came back, but the upstream says it generated up to the limit (hidden reasoning, say).
    expect(row).toMatchObject({
      completion_tokens: 50,
      user_price: String(charge(bound(marker), 50)),
    });
  });

  it('caps the output estimate of each choice at max_tokens', async () => {
    const user = await newUser();
    const marker = 'more bytes than tokens';
    upstream.script(marker, { body: completion([{ content: 'x'.repeat(100) }, { content: 'y'.repeat(5) }]) });
    await post(user, ask(marker, { max_tokens: 20 }));
    const row = await settledCall(user.accountId);
    // 20 (100 bytes, at most 20 tokens) + 5; the hold (bound + 20 tokens at most) caps the price.
    expect(row).toMatchObject({
      completion_tokens: 25,
      provider_cost: String(bound(marker) + 2 * 25),
      user_price: String(charge(bound(marker), 20)),
    });
    expect(row.flags).toContain('PRICE_CAPPED_AT_HOLD');
  });
});

describe('a stream in progress', () => {
  it('records its output as billing would count it: each choice at most max_tokens', async () => {
    const user = await newUser();
    const marker = 'progress past the limit';
    const { opened: paused, open: release } = gate();
    upstream.script(marker, {
      events: [
        chunk({ role: 'assistant', content: 'x'.repeat(100) }),
        paused,
        chunk({}, { finish_reason: 'stop' }),
        chunk(null, { extra: { choices: [], usage: { prompt_tokens: 6, completion_tokens: 20 } } }),
      ],
    });
    const reading = readStream(user.client, ask(marker, { max_tokens: 20 }));
    // What a crash now would bill it for (the heartbeat's record): 100 bytes, but at most 20 tokens.
    const recorded = await waitFor('the stream progress to be recorded', async () => {
      const [row] = await api.services.orm.em
        .fork()
        .execute<{ generated_bytes: string }[]>(
          'select generated_bytes::text as generated_bytes from usage_records where account_id = ?',
          [user.accountId],
        );
      return row && row.generated_bytes !== '0' ? row.generated_bytes : null;
    });
    expect(recorded).toBe('20');
    release();
    expect(await reading).toBe('x'.repeat(100));
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({ status: 'BILLED', user_price: String(charge(6, 20)) });
  });
});

describe('a client that hangs up', () => {
  it('still pays for a non-streamed call the upstream answers after it left', async () => {
    const user = await newUser();
    const marker = 'hang up before the answer';
    const { opened, open: release } = gate();
    upstream.script(marker, {
      gate: opened,
      body: completion([{ content: 'late' }], {
        usage: { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 },
      }),
    });
    // The API's own response to this call, to see it close when the client goes.
    let apiResponse: ServerResponse | undefined;
    let apiSawClose = false;
    const onRequest = (message: unknown) => {
      const { response, request } = message as {
        response: ServerResponse;
        request: { socket: { localPort?: number } };
      };
      if (request.socket.localPort !== api.port) return;
      apiResponse = response;
      response.once('close', () => {
        apiSawClose = true;
      });
    };
    subscribeChannel('http.server.request.start', onRequest);
    try {
      const leaving = new AbortController();
      const call = post(user, ask(marker), leaving.signal).catch((error: unknown) => error);
      await waitFor('the upstream to receive the call', () => upstream.received(marker).length === 1);
      expect(apiResponse).toBeDefined();
      leaving.abort();
      expect(await call).toBeInstanceOf(Error);
      await waitFor('the API to see its client go', () => apiSawClose);
    } finally {
      unsubscribeChannel('http.server.request.start', onRequest);
    }
    release();
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({ status: 'BILLED', user_price: String(charge(12, 4)) });
    expect(upstream.received(marker)[0]).toMatchObject({ answered: true, closedEarly: false });
  });
});

describe('a client that stops reading a stream', () => {
  it('is hung up on once it has taken nothing for LLM_TIMEOUT_MS: the upstream stopped, billed what was generated', async () => {
    const user = await newUser();
    const marker = 'a client that reads no more';
    // 16 MB of output, far more than the sockets' buffers hold, then an upstream that stays open.
    const piece = 'x'.repeat(16_000);
    upstream.script(marker, {
      events: [
        chunk({ role: 'assistant', content: '' }),
        ...Array.from({ length: 1_000 }, () => chunk({ content: piece })),
        new Promise(() => {}),
      ],
    });
    const body = JSON.stringify(ask(marker, { stream: true }));
    const socket = connect(api.port, '127.0.0.1');
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
        `authorization: Bearer ${user.token}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    let received = 0;
    let reading = true;
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    // Reads the first 100 kB, then nothing more, and keeps the connection open.
    socket.on('data', (data: Buffer) => {
      received += data.length;
      if (received > 100_000 && reading) {
        reading = false;
        socket.pause();
      }
    });
    try {
      // Without the hang-up the call stays HELD (its heartbeat extending the hold) for as long as the client
      // keeps its connection: settledCall times out.
      const row = await settledCall(user.accountId);
      // Usage never came: prompt bound(marker), completion 4096 (the default max_tokens, far below the bytes
      // read from the upstream): 2 x (bound + 2 x 4096).
      const {
        status,
        flags,
        prompt_tokens: prompt,
        completion_tokens: completionTokens,
        user_price: price,
      } = row;
      expect({ status, flags }).toEqual({
        status: 'BILLED',
        flags: ['CLIENT_DISCONNECTED', 'USAGE_ESTIMATED'],
      });
      expect([prompt, completionTokens, price]).toEqual([
        bound(marker),
        4096,
        String(charge(bound(marker), 4096)),
      ]);
      await waitFor('the upstream to be stopped', () => upstream.received(marker)[0]?.closedEarly);
      // The client's connection was closed: once it reads what was left in it, it sees the end.
      socket.resume();
      await closed;
    } finally {
      socket.destroy();
    }
  });
});

describe('answers that leave out fields', () => {
  it('answers GraphQL and bills an answer without id or model', async () => {
    const user = await newUser();
    const marker = 'no id no model';
    const body = completion([{ content: 'anonymous' }], {
      usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
    });
    delete body.id;
    delete body.model;
    upstream.script(marker, { body });
    const result = await gql<{
      createCompletion: { id: string; model: string; content: string; usage: { userPrice: string } };
    }>(
      api.url,
      `mutation($input: CompletionInput!) { createCompletion(input: $input) { id model content usage { userPrice } } }`,
      { input: { model: HOSTILE_MODEL, messages: [{ role: 'user', content: marker }] } },
      user.token,
    );
    expect(result.errors).toBeUndefined();
    expect(result.data?.createCompletion).toMatchObject({ model: HOSTILE_MODEL, content: 'anonymous' });
    expect(result.data?.createCompletion.id).toMatch(/^req_/);
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({ status: 'BILLED', user_price: String(charge(9, 3)) });
  });

  it('streams and bills through chunks without choices (junk and usage-only)', async () => {
    const user = await newUser();
    const marker = 'chunks without choices';
    upstream.script(marker, {
      events: [
        chunk({ role: 'assistant', content: 'hi' }),
        chunk(null),
        chunk({}, { finish_reason: 'stop' }),
        chunk(null, { extra: { usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 } } }),
      ],
    });
    // Without include_usage: the gateway drops the usage chunk it asked for on the client's behalf.
    expect(await readStream(user.client, ask(marker))).toBe('hi');
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({ status: 'BILLED', user_price: String(charge(10, 2)) });
  });
});

describe('an upstream that asks to be retried later', () => {
  const marker = 'rate limited upstream';
  const refusal = {
    status: 429,
    body: { error: { message: 'Rate limit reached', type: 'rate_limit_error', code: 'rate_limit_exceeded' } },
  };

  /** The account's calls, each once settled. */
  async function releasedCalls(accountId: string): Promise<{ status: string; user_price: string }[]> {
    return waitFor('the calls to be settled', async () => {
      const rows = await api.services.orm.em
        .fork()
        .execute<{ status: string; user_price: string }[]>(
          'select status, user_price::text as user_price from usage_records where account_id = ?',
          [accountId],
        );
      return rows.every((row) => row.status !== 'HELD') ? rows : null;
    }).then((rows) => rows ?? []);
  }

  it("passes the upstream's Retry-After on with the 502, streamed or not, and charges nothing", async () => {
    const user = await newUser();
    upstream.script(marker, { ...refusal, headers: { 'retry-after': '7' } });
    for (const stream of [false, true]) {
      const answer = await post(user, ask(marker, { stream }));
      expect(answer.status).toBe(502);
      expect(answer.headers.get('retry-after')).toBe('7');
      expect(answer.headers.get('x-request-id')).toMatch(/^req_/);
      expect(await answer.json()).toMatchObject({ error: { type: 'upstream_error', message: /HTTP 429/ } });
    }
    // What is not a number of seconds is not passed on (nor anything else of the upstream's headers).
    upstream.script(marker, { ...refusal, headers: { 'retry-after': '7 seconds' } });
    expect((await post(user, ask(marker))).headers.get('retry-after')).toBeNull();
    expect(await releasedCalls(user.accountId)).toEqual(
      Array.from({ length: 3 }, () => ({ status: 'RELEASED', user_price: '0' })),
    );
  });

  it('so the openai client waits as long as the upstream asked before it retries', async () => {
    const user = await newUser();
    upstream.script(marker, { ...refusal, headers: { 'retry-after': '2' } });
    const client = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: user.token, maxRetries: 1 });
    const started = performance.now();
    await expect(client.chat.completions.create(ask(marker))).rejects.toMatchObject({ status: 502 });
    // Its own backoff before a first retry is at most 0.5 s; the upstream asked for 2 s.
    expect(performance.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(await releasedCalls(user.accountId)).toHaveLength(2);
  });
});

describe('encoded answers', () => {
  for (const encoding of ['gzip', 'deflate', 'br'] as const) {
    it(`decodes and bills a ${encoding} answer`, async () => {
      const user = await newUser();
      const marker = `encoded ${encoding}`;
      upstream.script(marker, {
        encoding,
        body: completion([{ content: 'packed' }], {
          usage: { prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 },
        }),
      });
      const answer = await user.client.chat.completions.create(ask(marker));
      expect(answer.choices[0]?.message.content).toBe('packed');
      const row = await settledCall(user.accountId);
      expect(row).toMatchObject({ status: 'BILLED', user_price: String(charge(11, 2)) });
    });
  }
});

describe('answers beyond reason', () => {
  it('refuses a non-streamed answer that decodes to more than 64 MiB, charging nothing', async () => {
    const user = await newUser();
    const marker = 'decompression bomb';
    // A valid completion padded with 65 MiB of spaces (JSON whitespace): about 64 KiB gzipped.
    const answer = JSON.stringify(
      completion([{ content: 'big' }], { usage: { prompt_tokens: 5, completion_tokens: 1 } }),
    );
    const padded = Buffer.concat([
      Buffer.from('{'),
      Buffer.alloc(65 * 1024 * 1024, 32),
      Buffer.from(answer.slice(1)),
    ]);
    upstream.script(marker, { encoding: 'gzip', encodedBody: gzipSync(padded) });
    const response = await post(user, ask(marker));
    expect(response.status).toBe(502);
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({ status: 'RELEASED', user_price: '0' });
  });

  it('ends a stream at [DONE] even if the upstream keeps the connection open', async () => {
    const user = await newUser();
    const marker = 'open after done';
    upstream.script(marker, {
      keepOpen: true,
      events: [
        chunk({ role: 'assistant', content: 'done' }),
        chunk({}, { finish_reason: 'stop' }),
        chunk(null, { extra: { choices: [], usage: { prompt_tokens: 7, completion_tokens: 1 } } }),
      ],
    });
    expect(await readStream(user.client, ask(marker))).toBe('done');
    const row = await settledCall(user.accountId);
    expect(row).toMatchObject({ status: 'BILLED', user_price: String(charge(7, 1)) });
    expect(row.flags).toEqual([]);
  });
});

describe('a stream that turns to junk', () => {
  it('bills what came before an event that is not JSON, flagged UPSTREAM_CUT', async () => {
    const user = await newUser();
    const marker = 'junk event';
    upstream.script(marker, {
      events: [chunk({ role: 'assistant', content: 'abcdefgh' }), 'not json at all'],
    });
    const response = await post(user, ask(marker, { stream: true }));
    const text = await response.text();
    expect(text).toContain('upstream_unavailable');
    const row = await settledCall(user.accountId);
    // 8 bytes and no usage: the prompt's bound and 8 completion tokens.
    expect(row).toMatchObject({ status: 'BILLED', user_price: String(charge(bound(marker), 8)) });
    expect(row.flags).toEqual(expect.arrayContaining(['UPSTREAM_CUT', 'USAGE_ESTIMATED']));
  });
});

describe('a cost header on a stream', () => {
  // Sent before anything is generated, it cannot describe the answer: the usage chunk prices it.
  for (const [name, cost] of [
    ['too low', '0.000001'],
    ['too high', '1000'],
  ] as const) {
    it(`is ignored when ${name}`, async () => {
      const user = await newUser();
      const marker = `stream cost header ${name}`;
      upstream.script(marker, {
        headers: { 'x-litellm-response-cost': cost },
        events: [
          chunk({ role: 'assistant', content: 'streamed' }),
          chunk({}, { finish_reason: 'stop' }),
          chunk(null, {
            extra: { choices: [], usage: { prompt_tokens: 10, completion_tokens: 300, total_tokens: 310 } },
          }),
        ],
      });
      expect(await readStream(user.client, ask(marker))).toBe('streamed');
      const row = await settledCall(user.accountId);
      expect(row).toMatchObject({
        status: 'BILLED',
        provider_cost: String(10 + 2 * 300),
        user_price: String(charge(10, 300)),
      });
    });
  }
});
