/**
 * Metered completions end to end: the official `openai` client against `/v1`, GraphQL, a real PostgreSQL
 * database and the real dev model server as the upstream (over HTTP, never a stub): it behaves like a
 * LiteLLM proxy (prices in `GET /model/info`, `x-litellm-response-cost` on answers, none on streams).
 * Every charge is checked to the micro-USD against the ledger, the usage rows and the API key's `spent`,
 * with figures worked out by hand here, never with the pricing functions under test.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCredits, type MicroUsd, parseCredits } from '@chainmeter/schema';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlOf } from '../src/db/sql.ts';
import { DEV_MODEL_PRICES } from '../src/dev-model/dev-model.replies.ts';
import { type DevModelServer, startDevModelServer } from '../src/dev-model/dev-model.server.ts';
import { ConfigError } from '../src/env.ts';
import { extendHolds, placeHold } from '../src/modules/metering/hold.store.ts';
import { applySettlement } from '../src/modules/metering/settlement.store.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { chunkedBody } from './support/chunked.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData, subscribe } from './support/graphql.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { UNLIMITED_RATES } from './support/platform.ts';
import { fundedUser } from './support/users.ts';
import { waitFor } from './support/wait-for.ts';

const MARKUP = '1.5';
const DEV = 'chainmeter-dev';

let database: TestDatabase;
let dev: DevModelServer;
let api: RunningApi;
/** Accounts whose calls' first settlement attempt fails (fault injection); the usage ids it failed. */
const failFirstSettlement = new Set<string>();
const failedOnce = new Set<string>();
/** Accounts whose settlements wait at a gate: `reached` fires when one arrives, it goes on once `open` resolves. */
const settlementGates = new Map<string, { reached(): void; open: Promise<void> }>();

function config(overrides: Record<string, string> = {}) {
  return testApiConfig({
    DATABASE_URL: database.url,
    LLM_BASE_URL: dev.baseUrl,
    // Far above any answer of the dev model on a loaded machine (a burst of 200 calls shares one process),
    // and below dev-slow's 5 s, which must time out: that timer is armed first and due first.
    LLM_TIMEOUT_MS: '4000',
    PRICE_MARKUP: MARKUP,
    METERING_RETRY_MS: '50',
    // Keyed calls only: a call without a key answers 401 here (paid per request: x402.test.ts).
    X402: 'off',
    ...UNLIMITED_RATES,
    ...overrides,
  });
}

beforeAll(async () => {
  database = await createTestDatabase('cm_metering');
  // Streams are paced (5 ms a chunk) so a client can leave one half-way; other answers are immediate.
  dev = await startDevModelServer({ chunkDelayMs: 5 });
  // No LLM_PRICES: the prices are the upstream's own, read from its /model/info.
  api = await startApi(config(), {
    crediting: false,
    meteringFaults: {
      beforeSettlement: async (usageId) => {
        const [row] = await api.services.orm.em
          .fork()
          .execute<{ account_id: string }[]>('select account_id from usage_records where id = ?', [usageId]);
        const gate = row && settlementGates.get(row.account_id);
        if (gate) {
          gate.reached();
          await gate.open;
        }
        if (row && failFirstSettlement.has(row.account_id) && !failedOnce.has(usageId)) {
          failedOnce.add(usageId);
          throw new Error('injected settlement failure');
        }
      },
    },
  });
});

afterAll(async () => {
  await api?.close();
  await dev?.stop();
  await database?.drop();
});

interface User {
  token: string;
  accountId: string;
  client: OpenAI;
}

/** A signed-in wallet with `balance` micro-USD on its balance (an ADJUSTMENT: no chain needed). */
async function newUser(balance: bigint): Promise<User> {
  const user = await fundedUser(api, balance);
  return { ...user, client: openai(user.token) };
}

function openai(apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${api.url}/v1`, apiKey, maxRetries: 0 });
}

async function createKey(user: User, spendLimit?: string): Promise<{ id: string; secret: string }> {
  const { createApiKey } = await gqlData<{ createApiKey: { secret: string; apiKey: { id: string } } }>(
    api.url,
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }',
    { input: { name: 'test key', spendLimit } },
    user.token,
  );
  return { id: createApiKey.apiKey.id, secret: createApiKey.secret };
}

interface AccountRow {
  balance: bigint;
  held: bigint;
}

async function account(accountId: string): Promise<AccountRow> {
  const [row] = await api.services.orm.em
    .fork()
    .execute<{ balance: string; held: string }[]>(
      'select balance::text as balance, held::text as held from accounts where id = ?',
      [accountId],
    );
  if (!row) throw new Error(`no account ${accountId}`);
  return { balance: BigInt(row.balance), held: BigInt(row.held) };
}

interface UsageRow {
  id: string;
  request_id: string;
  model: string;
  status: string;
  prompt_tokens: number;
  completion_tokens: number;
  provider_cost: string | null;
  user_price: string;
  hold_amount: string;
  api_key_id: string | null;
  flags: string[];
}

async function usageRows(accountId: string): Promise<UsageRow[]> {
  return api.services.orm.em.fork().execute<UsageRow[]>(
    `select id, request_id, model, status, prompt_tokens, completion_tokens, provider_cost::text as provider_cost,
       user_price::text as user_price, hold_amount::text as hold_amount, api_key_id, flags
     from usage_records where account_id = ? order by created_at, id`,
    [accountId],
  );
}

async function usageEntries(accountId: string): Promise<{ amount: bigint; referenceId: string }[]> {
  const rows = await api.services.orm.em
    .fork()
    .execute<{ amount: string; reference_id: string }[]>(
      `select amount::text as amount, reference_id from ledger_entries where account_id = ? and reason = 'USAGE'`,
      [accountId],
    );
  return rows.map((row) => ({ amount: BigInt(row.amount), referenceId: row.reference_id }));
}

/**
 * What a call to a $0.15 / $0.60 per million tokens model (the dev model's published price) is charged at
 * markup 1.5, worked by hand in integers: provider cost = 0.15 micro-USD per prompt token + 0.60 per
 * completion token, rounded up to the micro-USD; user price = cost x 3 / 2, rounded up.
 */
const devCharge = (promptTokens: number, completionTokens: number) => {
  const cost = Math.ceil((15 * promptTokens + 60 * completionTokens) / 100);
  return BigInt(Math.ceil((cost * 3) / 2));
};

const messages = (text: string) => [{ role: 'user' as const, content: text }];

/** Every settled row has its ledger entry (amount = -user price) and nothing else moved the balance. */
async function expectBooksAgree(user: User, initial: bigint) {
  await api.services.metering.whenIdle();
  const rows = await usageRows(user.accountId);
  const entries = await usageEntries(user.accountId);
  const charged = rows.filter((row) => BigInt(row.user_price) > 0n);
  expect(entries.length).toBe(charged.length);
  for (const row of charged) {
    const entry = entries.find((e) => e.referenceId === row.id);
    expect(entry?.amount).toBe(-BigInt(row.user_price));
  }
  const spent = rows.reduce((sum, row) => sum + BigInt(row.user_price), 0n);
  const state = await account(user.accountId);
  expect(state.balance).toBe(initial - spent);
  expect(state.held).toBe(0n);
  const report = await checkLedgerInvariants(api.services.orm.em.fork());
  expect(report.problems).toEqual([]);
}

describe('REST with the official openai client', () => {
  it('bills a completion at provider cost x markup, to the micro-USD', async () => {
    const user = await newUser(1_000_000n);
    const { data: completion, response } = await user.client.chat.completions
      .create({ model: DEV, messages: messages('Hello metered world') })
      .withResponse();
    expect(completion.choices[0]?.message.content).toMatch(/^Echo: Hello metered world/);
    const requestId = response.headers.get('x-request-id');
    expect(requestId).toMatch(/^req_/);
    // The dev model's deterministic answer to this prompt: 13 prompt and 26 completion tokens.
    expect(completion.usage).toMatchObject({ prompt_tokens: 13, completion_tokens: 26 });
    await api.services.metering.whenIdle();
    const [row] = await usageRows(user.accountId);
    if (!row) throw new Error('no usage row');
    // Its cost header: 13 x 0.15 + 26 x 0.60 = 17.55 micro-USD, rounded up: 18; x 1.5 = 27.
    expect(row).toMatchObject({
      request_id: requestId,
      status: 'BILLED',
      prompt_tokens: 13,
      completion_tokens: 26,
      provider_cost: '18',
      user_price: '27',
      api_key_id: null,
    });
    expect((await account(user.accountId)).balance).toBe(1_000_000n - 27n);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('bills a stream from its final usage chunk', async () => {
    const user = await newUser(1_000_000n);
    const { secret, id: keyId } = await createKey(user);
    const stream = await openai(secret).chat.completions.create({
      model: DEV,
      messages: messages('stream me please'),
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 12,
    });
    let content = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      content += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(content).toMatch(/^Echo: stream me/);
    if (!usage) throw new Error('no usage chunk');
    await api.services.metering.whenIdle();
    const [row] = await usageRows(user.accountId);
    // No cost header on a stream: its usage chunk (12 + 12 tokens) at the published price,
    // 12 x 0.15 + 12 x 0.60 = 9 micro-USD; x 1.5 = 13.5, rounded up: 14.
    expect(usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 12 });
    expect(row).toMatchObject({
      status: 'BILLED',
      prompt_tokens: 12,
      completion_tokens: 12,
      provider_cost: '9',
      user_price: '14',
      api_key_id: keyId,
    });
    const [spent] = await api.services.orm.em
      .fork()
      .execute<{ spent: string; held: string }[]>(
        'select spent::text as spent, held::text as held from api_keys where id = ?',
        [keyId],
      );
    expect(spent).toEqual({ spent: row?.user_price, held: '0' });
    await expectBooksAgree(user, 1_000_000n);
  });

  it('passes the usage chunk only to clients that asked for it', async () => {
    const user = await newUser(1_000_000n);
    const stream = await user.client.chat.completions.create({
      model: DEV,
      messages: messages('no usage chunk wanted'),
      stream: true,
      max_tokens: 8,
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((chunk) => chunk.choices.length === 1 && !chunk.usage)).toBe(true);
    await api.services.metering.whenIdle();
    expect((await usageRows(user.accountId))[0]?.status).toBe('BILLED');
  });

  it('lists the models that can be billed, and only those', async () => {
    const user = await newUser(0n);
    const models = [];
    for await (const model of user.client.models.list()) models.push(model.id);
    expect(models).toEqual(expect.arrayContaining([DEV, 'chainmeter-dev-large', 'dev-reasoning']));
    // The upstream serves it, but publishes no price for it.
    expect(models).not.toContain('dev-unpriced');
  });

  it('answers errors in OpenAI shape with the right status', async () => {
    const user = await newUser(1_000_000n);
    await expect(
      openai('cm_not_a_real_key').chat.completions.create({ model: DEV, messages: messages('x') }),
    ).rejects.toMatchObject({
      status: 401,
    });
    const noAuth = await fetch(`${api.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    expect(noAuth.status).toBe(401);
    expect(await noAuth.json()).toMatchObject({ error: { type: 'authentication_error' } });
    const bad = await fetch(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
      body: '{ not json',
    });
    expect(bad.status).toBe(400);
    await expect(user.client.chat.completions.create({ model: DEV, messages: [] })).rejects.toMatchObject({
      status: 400,
    });
    await expect(
      user.client.chat.completions.create({ model: DEV, messages: messages('x'), n: 2 }),
    ).rejects.toMatchObject({
      status: 400,
      error: { param: 'n' },
    });
    await expect(
      user.client.chat.completions.create({ model: DEV, messages: messages('x'), max_tokens: 0 }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(
      user.client.chat.completions.create({ model: 'no-such-model', messages: messages('x') }),
    ).rejects.toMatchObject({
      status: 400,
      error: { code: 'model_not_priced', param: 'model' },
    });
    await expectBooksAgree(user, 1_000_000n);
  });

  it('checks a key this replica already knows on every call: revoked or expired, 401 and nothing held', async () => {
    const user = await newUser(1_000_000n);
    const revoked = await createKey(user);
    const expiring = await createKey(user);
    for (const key of [revoked, expiring]) {
      await openai(key.secret).chat.completions.create({ model: DEV, messages: messages('known') });
      // The next call takes the key from the replica's memory and checks it in the hold statement.
      expect(api.services.recentApiKeys.claim(api.services.config, key.secret)).not.toBeNull();
    }
    await api.services.metering.whenIdle();
    const before = { upstream: dev.requestCount(), rows: (await usageRows(user.accountId)).length };
    // What another replica (or time) does: only the database knows.
    await api.services.orm.em
      .fork()
      .execute('update api_keys set revoked_at = now() where id = ?', [revoked.id]);
    await api.services.orm.em
      .fork()
      .execute(`update api_keys set expires_at = now() - interval '1 millisecond' where id = ?`, [
        expiring.id,
      ]);
    for (const key of [revoked, expiring]) {
      await expect(
        openai(key.secret).chat.completions.create({ model: DEV, messages: messages('dead key') }),
      ).rejects.toMatchObject({ status: 401, error: { type: 'authentication_error' } });
    }
    // Whatever else is wrong with a request, a dead key is what it is told first.
    const badJson = await fetch(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${revoked.secret}`, 'content-type': 'application/json' },
      body: '{ not json',
    });
    expect(badJson.status).toBe(401);
    await expect(
      openai(revoked.secret).chat.completions.create({ model: DEV, messages: [] }),
    ).rejects.toMatchObject({ status: 401 });
    expect(dev.requestCount()).toBe(before.upstream);
    expect((await usageRows(user.accountId)).length).toBe(before.rows);
    expect((await account(user.accountId)).held).toBe(0n);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('refuses a body over 4 MiB with 413, declared or streamed, charging nothing', async () => {
    const user = await newUser(1_000_000n);
    const before = dev.requestCount();
    const huge = JSON.stringify({ model: DEV, messages: messages('x'.repeat(4 * 1024 * 1024)) });
    const send = (body: BodyInit) =>
      fetch(`${api.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
        body,
        duplex: 'half',
      } as RequestInit);
    const declared = await send(huge);
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({ error: { code: 'body_too_large' } });
    // Chunked, without content-length: the bytes are counted as they arrive.
    const streamed = await send(chunkedBody(huge));
    expect(streamed.status).toBe(413);
    expect(dev.requestCount()).toBe(before);
    expect(await usageRows(user.accountId)).toEqual([]);
    // Just under the limit is an ordinary (billed) call.
    const fits = await send(JSON.stringify({ model: DEV, messages: messages('y'.repeat(1024 * 1024)) }));
    expect(fits.status).toBe(200);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('refuses with 402 and never calls the upstream when the hold does not fit', async () => {
    const user = await newUser(10n);
    const before = dev.requestCount();
    const error = await user.client.chat.completions
      .create({ model: DEV, messages: messages('too poor') })
      .catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.status).toBe(402);
    expect(error.error).toMatchObject({ type: 'insufficient_credits', code: 'insufficient_credits' });
    expect(dev.requestCount()).toBe(before);
    expect(await usageRows(user.accountId)).toEqual([]);
    expect(await account(user.accountId)).toEqual({ balance: 10n, held: 0n });
  });

  it('charges nothing when the upstream fails (500) or times out before any output', async () => {
    const user = await newUser(1_000_000n);
    await expect(
      user.client.chat.completions.create({ model: 'dev-error-500', messages: messages('x') }),
    ).rejects.toMatchObject({
      status: 502,
    });
    await expect(
      user.client.chat.completions.create({ model: 'dev-slow', messages: messages('x') }),
    ).rejects.toMatchObject({
      status: 504,
    });
    await api.services.metering.whenIdle();
    const rows = await usageRows(user.accountId);
    expect(rows.map((row) => [row.status, row.user_price])).toEqual([
      ['RELEASED', '0'],
      ['RELEASED', '0'],
    ]);
    expect(await account(user.accountId)).toEqual({ balance: 1_000_000n, held: 0n });
    await expectBooksAgree(user, 1_000_000n);
  });

  it("prices a call without a cost header at the upstream's published price", async () => {
    const user = await newUser(1_000_000n);
    const priced = await user.client.chat.completions.create({
      model: 'dev-no-cost',
      messages: messages('no header'),
    });
    expect(priced.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 25 });
    await api.services.metering.whenIdle();
    // 10 x 0.15 + 25 x 0.60 = 16.5 micro-USD, rounded up: 17; x 1.5 = 25.5, rounded up: 26.
    expect(await usageRows(user.accountId)).toMatchObject([
      { status: 'BILLED', provider_cost: '17', user_price: '26', flags: [] },
    ]);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('bills a stream the client cut for what was generated, and stops the upstream', async () => {
    const user = await newUser(1_000_000n);
    const stream = await user.client.chat.completions.create({
      model: DEV,
      messages: messages('a long enough prompt to get many chunks back from the dev model please'),
      stream: true,
    });
    let received = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) received++;
      if (received === 3) break; // leaving the loop aborts the HTTP response
    }
    await waitFor('the upstream stream to stop', () => dev.activeStreams() === 0);
    await waitFor(
      'the cut stream to settle',
      async () => (await usageRows(user.accountId))[0]?.status !== 'HELD',
    );
    await api.services.metering.whenIdle();
    const [row] = await usageRows(user.accountId);
    if (!row) throw new Error('no usage row');
    expect(row.status).toBe('BILLED');
    expect(row.flags).toEqual(expect.arrayContaining(['CLIENT_DISCONNECTED', 'USAGE_ESTIMATED']));
    // Conservative estimate: the prompt's byte bound (8 per request + 8 per message + 4 bytes of "user"
    // + the 70 bytes of the text = 90 tokens), and one token per generated byte.
    expect(row.prompt_tokens).toBe(90);
    expect(row.completion_tokens).toBeGreaterThan(0);
    expect(BigInt(row.user_price)).toBe(devCharge(90, row.completion_tokens));
    expect(BigInt(row.user_price)).toBeLessThanOrEqual(BigInt(row.hold_amount));
    await expectBooksAgree(user, 1_000_000n);
  });
});

describe('concurrency', () => {
  const burstMessages = messages('burst');
  const maxTokens = 16;
  // The hold of one burst call: prompt bound 8 + 8 + 4 ("user") + 5 ("burst") = 25 tokens, output 16:
  // 25 x 0.15 + 16 x 0.60 = 13.35 micro-USD, rounded up: 14; x 1.5 = 21.
  const hold = () => 21n;

  async function burst(client: OpenAI, n: number) {
    return Promise.all(
      Array.from({ length: n }, () =>
        client.chat.completions
          .create({ model: DEV, messages: burstMessages, max_tokens: maxTokens })
          .then(() => 200)
          .catch((error: unknown) => {
            if (error instanceof OpenAI.APIError && error.status === 402) return 402;
            throw error;
          }),
      ),
    );
  }

  it('200 parallel completions never spend more than the balance; every success is paid', async () => {
    const initial = hold() * 10n + hold() / 2n;
    const user = await newUser(initial);
    const statuses = await burst(user.client, 200);
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok).toBeGreaterThanOrEqual(10);
    expect(statuses.filter((s) => s === 402).length).toBe(200 - ok);
    await api.services.metering.whenIdle();
    const rows = await usageRows(user.accountId);
    expect(rows.filter((row) => row.status === 'BILLED').length).toBe(ok);
    // Every success is the same call: 9 prompt tokens (3 + 4 + "burs" "t") and 16 completion tokens ("Echo: burst
    // bravo hold alpha chain alpha hold token"), 9 x 0.15 + 16 x 0.60 = 10.95 -> 11 micro-USD provider cost,
    // x 1.5 = 16.5 -> 17 micro-USD: the balance is what the client saw answered, at 17 each, and no more.
    const state = await account(user.accountId);
    expect(state.balance).toBe(initial - BigInt(ok) * 17n);
    await expectBooksAgree(user, initial);
  });

  it('two replicas charging one account: heads go stale, settlements fall back to the lock, books agree', async () => {
    const other = await startApi(config(), { crediting: false });
    try {
      const user = await newUser(10_000_000n);
      const key = await createKey(user);
      const clients = [api.url, other.url].map(
        (url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: key.secret, maxRetries: 0 }),
      );
      const [first, second] = clients as [OpenAI, OpenAI];
      // A call on the first replica holds (its hold returns the ledger head), is answered, and its settlement
      // waits at a gate while the second replica charges the same account: the head it knows is stale.
      const staleBefore = api.services.metering.settlementBatches().stale;
      let reached!: () => void;
      const atGate = new Promise<void>((resolve) => {
        reached = resolve;
      });
      let open!: () => void;
      settlementGates.set(user.accountId, { reached, open: new Promise((resolve) => (open = resolve)) });
      const gated = first.chat.completions.create({ model: DEV, messages: messages('gated') });
      await atGate;
      settlementGates.delete(user.accountId);
      for (let i = 0; i < 3; i++) {
        await second.chat.completions.create({ model: DEV, messages: messages(`meanwhile ${i}`) });
      }
      await other.services.metering.whenIdle();
      open();
      await gated;
      expect(api.services.metering.settlementBatches().stale).toBe(staleBefore + 1);
      // And both at once, racing: every call billed exactly once.
      await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          (i % 2 ? first : second).chat.completions.create({ model: DEV, messages: messages(`call ${i}`) }),
        ),
      );
      await other.services.metering.whenIdle();
      const rows = await usageRows(user.accountId);
      expect(rows.filter((row) => row.status === 'BILLED')).toHaveLength(64);
      await expectBooksAgree(user, 10_000_000n);
    } finally {
      await other.close();
    }
  });

  it("a key's spend limit holds under the same burst", async () => {
    const user = await newUser(1_000_000_000n);
    const limit = hold() * 5n;
    const key = await createKey(user, (Number(limit) / 1000).toString());
    const statuses = await burst(openai(key.secret), 200);
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok).toBeGreaterThanOrEqual(5);
    expect(ok).toBeLessThan(200);
    await api.services.metering.whenIdle();
    const [state] = await api.services.orm.em
      .fork()
      .execute<{ spent: string; held: string }[]>(
        'select spent::text as spent, held::text as held from api_keys where id = ?',
        [key.id],
      );
    const rows = await usageRows(user.accountId);
    const spent = rows.reduce((sum, row) => sum + BigInt(row.user_price), 0n);
    expect(state).toEqual({ spent: spent.toString(), held: '0' });
    expect(spent).toBeLessThanOrEqual(limit);
    await expectBooksAgree(user, 1_000_000_000n);
  });
});

describe('settlement', () => {
  it('a settlement that fails once is retried and charged exactly once', async () => {
    const user = await newUser(1_000_000n);
    failFirstSettlement.add(user.accountId);
    const data = await user.client.chat.completions.create({ model: DEV, messages: messages('retry me') });
    // The answer is not held back by the failed settlement.
    expect(data.choices[0]?.message.content).toMatch(/^Echo: retry me/);
    await waitFor(
      'the retried settlement',
      async () => (await usageRows(user.accountId))[0]?.status === 'BILLED',
      10_000,
    );
    const [row] = await usageRows(user.accountId);
    expect(failedOnce.has(row!.id)).toBe(true);
    // Settling the same record again does nothing.
    const again = await applySettlement(sqlOf(api.services.orm.em.fork()), row!.id, {
      status: 'BILLED',
      promptTokens: 1,
      completionTokens: 1,
      providerCost: 1n as MicroUsd,
      userPrice: 2n as MicroUsd,
      latencyMs: 1,
      flags: [],
      error: null,
    });
    expect(again).toEqual({ settled: false, reason: 'already settled' });
    expect(await usageEntries(user.accountId)).toHaveLength(1);
    // 10 prompt + 14 completion tokens: 10 x 0.15 + 14 x 0.60 = 9.9, rounded up: 10; x 1.5 = 15.
    expect(data.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 14 });
    expect(row!.user_price).toBe('15');
    await expectBooksAgree(user, 1_000_000n);
  });

  it('releases a hold whose call never finished', async () => {
    const user = await newUser(1_000_000n);
    const past = new Date(Date.now() - 60_000);
    await placeHold(sqlOf(api.services.orm.em.fork()), {
      accountId: user.accountId,
      apiKeyId: null,
      requestId: `req_crashed_${user.accountId}`,
      model: DEV,
      hold: 5_000n as MicroUsd,
      streamed: false,
      now: past,
      holdExpiresAt: new Date(past.getTime() + 1_000),
    });
    expect((await account(user.accountId)).held).toBe(5_000n);
    await waitFor('the expired hold to be released', async () => (await account(user.accountId)).held === 0n);
    expect(await usageRows(user.accountId)).toMatchObject([{ status: 'RELEASED', flags: ['HOLD_EXPIRED'] }]);
  });
});

describe('GraphQL, usage history and export', () => {
  const USAGE = `query($first: Int, $after: String, $filter: UsageFilter) { me { usage(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id requestId model promptTokens completionTokens providerCost userPrice billingStatus apiKey { id } createdAt } }
    pageInfo { hasNextPage endCursor } } } }`;

  it('createCompletion bills like REST and usage pages, filters, sums and exports the same rows', async () => {
    const user = await newUser(10_000_000n);
    const key = await createKey(user);
    const { createCompletion } = await gqlData<{
      createCompletion: {
        content: string;
        usage: { userPrice: string; promptTokens: number; completionTokens: number; billingStatus: string };
      };
    }>(
      api.url,
      `mutation($input: CompletionInput!) { createCompletion(input: $input) { id model content usage { id userPrice providerCost promptTokens completionTokens billingStatus } } }`,
      { input: { model: DEV, messages: [{ role: 'user', content: 'graphql hello' }], maxTokens: 64 } },
      user.token,
    );
    expect(createCompletion.content).toMatch(/^Echo: graphql hello/);
    const { usage } = createCompletion;
    expect(usage.billingStatus).toBe('BILLED');
    // 11 prompt + 15 completion tokens: 11 x 0.15 + 15 x 0.60 = 10.65, rounded up: 11 micro-USD;
    // x 1.5 = 16.5, rounded up: 17 micro-USD = 0.017 credits.
    expect(usage).toMatchObject({ promptTokens: 11, completionTokens: 15 });
    expect(usage.userPrice).toBe('0.017');
    for (let i = 0; i < 3; i++) {
      await openai(key.secret).chat.completions.create({
        model: 'chainmeter-dev-large',
        messages: messages(`large ${i}`),
      });
    }
    await api.services.metering.whenIdle();

    const page1 = await gqlData<any>(api.url, USAGE, { first: 2 }, user.token);
    expect(page1.me.usage.edges).toHaveLength(2);
    expect(page1.me.usage.pageInfo.hasNextPage).toBe(true);
    const page2 = await gqlData<any>(
      api.url,
      USAGE,
      { first: 2, after: page1.me.usage.pageInfo.endCursor },
      user.token,
    );
    const all = [...page1.me.usage.edges, ...page2.me.usage.edges].map((edge: any) => edge.node);
    expect(all).toHaveLength(4);
    expect(all.at(-1).model).toBe(DEV); // newest first: the GraphQL call came first
    const byKey = await gqlData<any>(api.url, USAGE, { filter: { apiKeyId: key.id } }, user.token);
    expect(byKey.me.usage.edges.map((e: any) => e.node.apiKey.id)).toEqual([key.id, key.id, key.id]);
    const byModel = await gqlData<any>(api.url, USAGE, { filter: { model: DEV } }, user.token);
    expect(byModel.me.usage.edges).toHaveLength(1);
    expect(byModel.me.usage.edges[0].node.apiKey).toBeNull();

    const range = {
      from: new Date(Date.now() - 3_600_000).toISOString(),
      to: new Date(Date.now() + 3_600_000).toISOString(),
    };
    const summary = await gqlData<any>(
      api.url,
      `query($from: DateTime!, $to: DateTime!) { me {
        byKey: usageSummary(from: $from, to: $to, groupBy: API_KEY) { key apiKey { id } requests tokens userPrice providerCost }
        byDay: usageSummary(from: $from, to: $to, groupBy: DAY) { key requests userPrice } } }`,
      range,
      user.token,
    );
    const rows = await usageRows(user.accountId);
    const total = rows.reduce((sum, row) => sum + BigInt(row.user_price), 0n);
    const sumBuckets = (buckets: { userPrice: string }[]) =>
      buckets.reduce((sum, b) => sum + BigInt(Math.round(Number(b.userPrice) * 1000)), 0n);
    expect(summary.me.byKey.map((b: any) => [b.key, b.requests])).toEqual(
      [
        ['', 1],
        [key.id, 3],
      ].sort(),
    );
    expect(sumBuckets(summary.me.byKey)).toBe(total);
    expect(sumBuckets(summary.me.byDay)).toBe(total);
    expect(summary.me.byDay.reduce((n: number, b: any) => n + b.requests, 0)).toBe(4);

    // Export: CSV and JSON, streamed, the same rows as the table.
    const csv = await fetch(`${api.url}/v1/usage/export?format=csv`, {
      headers: { authorization: `Bearer ${key.secret}` },
    });
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    const lines = (await csv.text()).trim().split('\n');
    const header = lines[0]?.split(',') ?? [];
    expect(header).toContain('user_price_micro_usd');
    const records = lines
      .slice(1)
      .map((line) => Object.fromEntries(line.split(',').map((v, i) => [header[i], v])));
    expect(records.map((r) => [r.id, r.user_price_micro_usd, r.billing_status])).toEqual(
      rows.map((row) => [row.id, row.user_price, row.status]),
    );
    const json = await fetch(`${api.url}/v1/usage/export?format=json`, {
      headers: { authorization: `Bearer ${user.token}` },
    });
    const exported = (await json.json()) as {
      id: string;
      user_price_micro_usd: string;
      prompt_tokens: number;
    }[];
    expect(exported.map((r) => [r.id, r.user_price_micro_usd, r.prompt_tokens])).toEqual(
      rows.map((row) => [row.id, row.user_price, row.prompt_tokens]),
    );
    const future = await fetch(
      `${api.url}/v1/usage/export?format=json&from=${encodeURIComponent(range.to)}`,
      {
        headers: { authorization: `Bearer ${user.token}` },
      },
    );
    expect(await future.json()).toEqual([]);
    const badFormat = await fetch(`${api.url}/v1/usage/export?format=xml`, {
      headers: { authorization: `Bearer ${user.token}` },
    });
    expect(badFormat.status).toBe(400);

    // Another account sees none of it, not even by filtering on this account's key.
    const stranger = await newUser(0n);
    const theirs = await gqlData<any>(api.url, USAGE, { filter: { apiKeyId: key.id } }, stranger.token);
    expect(theirs.me.usage.edges).toEqual([]);
    const theirExport = await fetch(`${api.url}/v1/usage/export?format=json`, {
      headers: { authorization: `Bearer ${stranger.token}` },
    });
    expect(await theirExport.json()).toEqual([]);
    const unauthenticated = await fetch(`${api.url}/v1/usage/export?format=csv`);
    expect(unauthenticated.status).toBe(401);
    await expectBooksAgree(user, 10_000_000n);
  });

  it('createCompletion refuses INSUFFICIENT_CREDITS and bad input with their codes', async () => {
    const user = await newUser(0n);
    const poor = await gql(
      api.url,
      `mutation { createCompletion(input: { model: "${DEV}", messages: [{ role: "user", content: "hi" }] }) { id } }`,
      {},
      user.token,
    );
    expect(poor.errors?.[0]?.extensions?.code).toBe('INSUFFICIENT_CREDITS');
    const bad = await gql(
      api.url,
      `mutation { createCompletion(input: { model: "${DEV}", messages: [], maxTokens: 5 }) { id } }`,
      {},
      user.token,
    );
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const anonymous = await gql(
      api.url,
      `mutation { createCompletion(input: { model: "${DEV}", messages: [{ role: "user", content: "hi" }] }) { id } }`,
    );
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('createCompletion reports an upstream failure with its UPSTREAM_* code, and the metrics count it by that code', async () => {
    const user = await newUser(1_000_000n);
    const counted = async (code: string) =>
      (await api.services.metrics.graphqlErrors.get()).values.find((v) => v.labels.code === code)?.value ?? 0;
    const before = await counted('UPSTREAM_UNAVAILABLE');
    const failed = await gql(
      api.url,
      `mutation { createCompletion(input: { model: "dev-error-500", messages: [{ role: "user", content: "hi" }] }) { id } }`,
      {},
      user.token,
    );
    expect(failed.errors?.[0]?.extensions).toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
      reason: 'UPSTREAM_UNAVAILABLE',
    });
    expect(failed.errors?.[0]?.message).toMatch(/^The model provider failed: .*nothing was charged$/);
    expect(await counted('UPSTREAM_UNAVAILABLE')).toBe(before + 1);
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After once the per-key request budget is spent', async () => {
    const limited = await startApi(config({ RATE_LIMIT_REQUESTS_PER_MINUTE: '2' }), { crediting: false });
    try {
      const user = await newUser(1_000_000n);
      const client = new OpenAI({ baseURL: `${limited.url}/v1`, apiKey: user.token, maxRetries: 0 });
      await client.chat.completions.create({ model: DEV, messages: messages('1') });
      await client.chat.completions.create({ model: DEV, messages: messages('2') });
      const error = await client.chat.completions
        .create({ model: DEV, messages: messages('3') })
        .catch((e) => e);
      expect(error.status).toBe(429);
      expect(Number(error.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(error.error).toMatchObject({ type: 'rate_limit_error' });
      await limited.services.metering.whenIdle();
      expect((await usageRows(user.accountId)).length).toBe(2);
    } finally {
      await limited.close();
    }
  });

  it("does not count a dead key's refused call against its account's budget", async () => {
    const limited = await startApi(config({ RATE_LIMIT_REQUESTS_PER_MINUTE: '2' }), { crediting: false });
    try {
      const user = await newUser(1_000_000n);
      const key = await createKey(user);
      const keyClient = new OpenAI({ baseURL: `${limited.url}/v1`, apiKey: key.secret, maxRetries: 0 });
      await keyClient.chat.completions.create({ model: DEV, messages: messages('1') }); // 1 of 2
      await limited.services.orm.em
        .fork()
        .execute('update api_keys set revoked_at = now() where id = ?', [key.id]);
      // Remembered by the replica, found dead by the hold: 401, and the account's point is given back.
      const dead = await keyClient.chat.completions
        .create({ model: DEV, messages: messages('dead') })
        .catch((e) => e);
      expect(dead.status).toBe(401);
      const session = new OpenAI({ baseURL: `${limited.url}/v1`, apiKey: user.token, maxRetries: 0 });
      await session.chat.completions.create({ model: DEV, messages: messages('2') }); // 2 of 2
      const over = await session.chat.completions
        .create({ model: DEV, messages: messages('3') })
        .catch((e) => e);
      expect(over.status).toBe(429);
      expect(over.error).toMatchObject({ type: 'rate_limit_error' });
    } finally {
      await limited.close();
    }
  });
});

describe('live balance', () => {
  it('ends a subscription once its session signs out: one UNAUTHENTICATED error, no further events', async () => {
    const user = await newUser(5_000_000n);
    const key = await createKey(user);
    const balances = await subscribe<{ balanceUpdated: { balance: string } }>(
      api.url,
      'subscription { balanceUpdated { balance } }',
      user.token,
    );
    const call = () => openai(key.secret).chat.completions.create({ model: DEV, messages: messages('hi') });
    await call();
    await balances.waitFor(() => true, 10_000);
    expect((await gql(api.url, 'mutation { signOut }', {}, user.token)).errors).toBeUndefined();
    await call(); // the account's balance moves again: the signed-out subscriber must not see it
    await waitFor('the subscription to end', () => balances.completed);
    expect(balances.events).toHaveLength(1);
    expect(balances.errors).toMatchObject([{ extensions: { code: 'UNAUTHENTICATED' } }]);
    await balances.close();
  });

  it('pushes balanceUpdated to subscribers when a call is charged, with the USAGE entry', async () => {
    const user = await newUser(5_000_000n);
    const balances = await subscribe<{
      balanceUpdated: { balance: string; entry: { amount: string; reason: string } };
    }>(api.url, 'subscription { balanceUpdated { balance entry { amount reason } } }', user.token);
    await user.client.chat.completions.create({
      model: DEV,
      messages: [{ role: 'user', content: 'hi there' }],
    });
    const event = await balances.waitFor(() => true, 10_000);
    const after = await account(user.accountId);
    expect(event.balanceUpdated.entry.reason).toBe('USAGE');
    expect(event.balanceUpdated.balance).toBe(formatCredits(after.balance as MicroUsd));
    expect(BigInt(parseCredits(event.balanceUpdated.entry.amount))).toBe(after.balance - 5_000_000n);
    await balances.close();
  });
});

describe('billing rules: an answered call is never free when the provider billed it', () => {
  /** Reads a stream to its end; returns the usage chunk and everything generated, by field. */
  async function readStream(client: OpenAI, model: string, text: string, maxTokens?: number) {
    const stream = await client.chat.completions.create({
      model,
      messages: messages(text),
      max_tokens: maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | null | undefined;
    const generated = { content: '', reasoning: '', toolArguments: '' };
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as
        | (OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string })
        | undefined;
      generated.content += delta?.content ?? '';
      generated.reasoning += delta?.reasoning_content ?? '';
      generated.toolArguments += delta?.tool_calls?.[0]?.function?.arguments ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    return { usage, generated };
  }

  it('refuses a model without a price before any hold and without calling the upstream', async () => {
    const user = await newUser(1_000_000n);
    const before = dev.requestCount();
    for (const stream of [false, true]) {
      const response = await fetch(`${api.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'dev-unpriced', messages: messages('free lunch?'), stream }),
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        error: {
          message: expect.stringMatching(/dev-unpriced has no price/),
          type: 'invalid_request_error',
          param: 'model',
          code: 'model_not_priced',
        },
      });
    }
    const graphql = await gql(
      api.url,
      `mutation { createCompletion(input: { model: "dev-unpriced", messages: [{ role: "user", content: "hi" }] }) { id } }`,
      {},
      user.token,
    );
    expect(graphql.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(graphql.errors?.[0]?.message).toMatch(/dev-unpriced has no price/);
    expect(dev.requestCount()).toBe(before);
    expect(await usageRows(user.accountId)).toEqual([]);
    expect(await account(user.accountId)).toEqual({ balance: 1_000_000n, held: 0n });
  });

  it('bills a reasoning-only answer (empty content, 400 completion tokens) at cost x markup', async () => {
    const user = await newUser(1_000_000n);
    const { data, response } = await user.client.chat.completions
      .create({ model: 'dev-reasoning', messages: messages('think hard'), max_tokens: 400 })
      .withResponse();
    expect(data.choices[0]?.message).toMatchObject({ content: '', reasoning_content: expect.any(String) });
    expect(data.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 400 });
    expect(response.headers.get('x-request-id')).toMatch(/^req_/);
    await api.services.metering.whenIdle();
    // Its cost header: 10 x 0.15 + 400 x 0.60 = 241.5 micro-USD, rounded up: 242; x 1.5 = 363.
    expect(await usageRows(user.accountId)).toMatchObject([
      {
        status: 'BILLED',
        prompt_tokens: 10,
        completion_tokens: 400,
        provider_cost: '242',
        user_price: '363',
      },
    ]);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('bills a prompt-only answer (60,000 prompt tokens, 0 completion tokens, finish_reason stop)', async () => {
    const user = await newUser(1_000_000n);
    // 59,993 tokens of 4 characters, + 4 for the message, + 3 for the request = 60,000 prompt tokens.
    const answer = await user.client.chat.completions.create({
      model: 'dev-empty',
      messages: messages('x'.repeat(4 * 59_993)),
    });
    expect(answer.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: '' } });
    expect(answer.usage).toMatchObject({ prompt_tokens: 60_000, completion_tokens: 0 });
    await api.services.metering.whenIdle();
    // Its cost header: 60,000 x 0.15 = 9,000 micro-USD ($0.009); x 1.5 = 13,500.
    expect(await usageRows(user.accountId)).toMatchObject([
      {
        status: 'BILLED',
        prompt_tokens: 60_000,
        completion_tokens: 0,
        provider_cost: '9000',
        user_price: '13500',
      },
    ]);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('bills a streamed reasoning-only answer from its usage chunk', async () => {
    const user = await newUser(1_000_000n);
    const { usage, generated } = await readStream(user.client, 'dev-reasoning', 'think hard', 400);
    expect(generated.content).toBe('');
    expect(generated.reasoning.length).toBeGreaterThan(0);
    expect(usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 400 });
    await api.services.metering.whenIdle();
    // No cost header on a stream: 10 x 0.15 + 400 x 0.60 = 241.5, rounded up: 242; x 1.5 = 363.
    expect(await usageRows(user.accountId)).toMatchObject([
      { status: 'BILLED', provider_cost: '242', user_price: '363', flags: [] },
    ]);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('bills a tool-call-only answer, streamed or not', async () => {
    const user = await newUser(1_000_000n);
    const answer = await user.client.chat.completions.create({
      model: 'dev-tool-call',
      messages: messages('call a tool'),
    });
    expect(answer.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { content: null } });
    expect(answer.choices[0]?.message.tool_calls).toHaveLength(1);
    expect(answer.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 24 });
    const streamed = await readStream(user.client, 'dev-tool-call', 'call a tool');
    expect(streamed.generated.content).toBe('');
    expect(streamed.generated.toolArguments).toMatch(/^\{"query":/);
    await api.services.metering.whenIdle();
    // 10 x 0.15 + 24 x 0.60 = 15.9 micro-USD, rounded up: 16; x 1.5 = 24 (header or usage chunk alike).
    expect(await usageRows(user.accountId)).toMatchObject([
      { status: 'BILLED', provider_cost: '16', user_price: '24' },
      { status: 'BILLED', provider_cost: '16', user_price: '24' },
    ]);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('bills a stream the upstream broke off for everything it had produced', async () => {
    const user = await newUser(1_000_000n);
    const stream = await user.client.chat.completions.create({
      model: 'dev-cut',
      messages: messages('cut me'),
      stream: true,
    });
    let content = '';
    const broke = await (async () => {
      for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? '';
    })().catch((error: unknown) => error);
    // Three chunks, "Echo" + ":" + " cut" (9 bytes), then the upstream closed the connection.
    expect(content).toBe('Echo: cut');
    expect(String((broke as Error)?.message)).toMatch(/only the part generated before the break is billed/);
    await api.services.metering.whenIdle();
    // No usage: prompt bound 8 + 8 + 4 ("user") + 6 ("cut me") = 26 tokens, completion 9 (one per byte):
    // 26 x 0.15 + 9 x 0.60 = 9.3 micro-USD, rounded up: 10; x 1.5 = 15.
    expect(await usageRows(user.accountId)).toMatchObject([
      {
        status: 'BILLED',
        prompt_tokens: 26,
        completion_tokens: 9,
        provider_cost: '10',
        user_price: '15',
        flags: ['UPSTREAM_CUT', 'USAGE_ESTIMATED'],
      },
    ]);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('charges a call that was answered and can no longer be priced its hold, flagged NEEDS_REVIEW', async () => {
    const user = await newUser(1_000_000n);
    const sql = sqlOf(api.services.orm.em.fork());
    const now = new Date();
    // A stream of a model that has since lost its price, whose process died after its progress was recorded.
    const { usageId } = await placeHold(sql, {
      accountId: user.accountId,
      apiKeyId: null,
      requestId: `req_retired_${user.accountId}`,
      model: 'retired-model',
      hold: 5_000n as MicroUsd,
      streamed: true,
      now,
      holdExpiresAt: new Date(now.getTime() + 60_000),
    });
    await extendHolds(sql, [usageId], now, [{ usageId, generatedBytes: 300, promptTokensBound: 40 }]);
    await api.services.orm.em
      .fork()
      .execute(`update usage_records set hold_expires_at = now() - interval '1 second' where id = ?`, [
        usageId,
      ]);
    await waitFor('the expired hold to be settled', async () => (await account(user.accountId)).held === 0n);
    expect(await usageRows(user.accountId)).toMatchObject([
      {
        status: 'NEEDS_REVIEW',
        provider_cost: null,
        user_price: '5000',
        flags: ['STREAM_INTERRUPTED', 'USAGE_ESTIMATED', 'UNPRICED'],
      },
    ]);
    await expectBooksAgree(user, 1_000_000n);
  });

  it('bills by LLM_PRICES over the upstream per model, and picks up prices the upstream publishes later', async () => {
    // This upstream publishes a price for chainmeter-dev only, at first.
    const upstream = await startDevModelServer({ prices: { [DEV]: DEV_MODEL_PRICES[DEV]! } });
    const dir = await mkdtemp(join(tmpdir(), 'cm-prices-'));
    const file = join(dir, 'prices.json');
    await writeFile(
      file,
      JSON.stringify({
        'dev-unpriced': { inputPerMTok: '1', outputPerMTok: '2' },
        [DEV]: { inputPerMTok: '10', outputPerMTok: '20' },
      }),
    );
    const other = await startApi(
      config({ LLM_BASE_URL: upstream.baseUrl, LLM_PRICES: file, LLM_PRICES_REFRESH_MS: '100' }),
      { crediting: false },
    );
    try {
      const user = await newUser(1_000_000n);
      const client = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: user.token, maxRetries: 0 });
      const listed = async () => {
        const ids: string[] = [];
        for await (const model of client.models.list()) ids.push(model.id);
        return ids.sort();
      };
      expect(await listed()).toEqual([DEV, 'dev-unpriced']);
      // Streams carry no cost header: billed at the LLM_PRICES price, which wins over the upstream's.
      const overridden = await readStream(client, DEV, 'override me', 8);
      expect(overridden.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 8 });
      // dev-unpriced has no price upstream and no cost header: priced by LLM_PRICES alone.
      const unpriced = await client.chat.completions.create({
        model: 'dev-unpriced',
        messages: messages('hi'),
      });
      expect(unpriced.usage).toMatchObject({ prompt_tokens: 8 });
      const completion = unpriced.usage?.completion_tokens ?? 0;
      await expect(
        client.chat.completions.create({ model: 'chainmeter-dev-large', messages: messages('not yet') }),
      ).rejects.toMatchObject({ status: 400, error: { code: 'model_not_priced' } });

      upstream.publishPrices(DEV_MODEL_PRICES);
      await waitFor('the new upstream price to be read', async () =>
        (await listed()).includes('chainmeter-dev-large'),
      );
      const large = await client.chat.completions.create({
        model: 'chainmeter-dev-large',
        messages: messages('now priced'),
        max_tokens: 4,
      });
      expect(large.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 4 });
      await other.services.metering.whenIdle();
      expect(await usageRows(user.accountId)).toMatchObject([
        // 10 x $10/M + 8 x $20/M = 100 + 160 = 260 micro-USD; x 1.5 = 390.
        { model: DEV, provider_cost: '260', user_price: '390' },
        // 8 x $1/M + c x $2/M = 8 + 2c micro-USD; x 1.5.
        {
          model: 'dev-unpriced',
          provider_cost: String(8 + 2 * completion),
          user_price: String(Math.ceil(((8 + 2 * completion) * 3) / 2)),
        },
        // Its cost header: 10 x $3/M + 4 x $15/M = 30 + 60 = 90 micro-USD; x 1.5 = 135.
        { model: 'chainmeter-dev-large', provider_cost: '90', user_price: '135' },
      ]);
    } finally {
      await other.close();
      await upstream.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start against an upstream that publishes no prices, unless LLM_PRICES is set', async () => {
    const plain = await startDevModelServer({ modelInfo: false });
    const dir = await mkdtemp(join(tmpdir(), 'cm-prices-'));
    try {
      const error = await startApi(config({ LLM_BASE_URL: plain.baseUrl }), { crediting: false }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([
        expect.stringMatching(
          /^LLM_PRICES: required, because the upstream http:\/\/127\.0\.0\.1:\d+\/v1 publishes no prices/,
        ),
      ]);
      const file = join(dir, 'prices.json');
      await writeFile(file, JSON.stringify({ [DEV]: { inputPerMTok: '0.15', outputPerMTok: '0.60' } }));
      const priced = await startApi(config({ LLM_BASE_URL: plain.baseUrl, LLM_PRICES: file }), {
        crediting: false,
      });
      try {
        const user = await newUser(0n);
        const client = new OpenAI({ baseURL: `${priced.url}/v1`, apiKey: user.token, maxRetries: 0 });
        const ids: string[] = [];
        for await (const model of client.models.list()) ids.push(model.id);
        expect(ids).toEqual([DEV]);
      } finally {
        await priced.close();
      }
    } finally {
      await plain.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
