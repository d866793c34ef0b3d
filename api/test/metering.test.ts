/**
 * Metered completions end to end: the official `openai` client against `/v1`, GraphQL, a real PostgreSQL
 * database and the real dev model server as the upstream (over HTTP, never a stub). Every charge is
 * checked to the micro-USD against the ledger, the usage rows and the API key's `spent`.
 */
import { formatCredits, type MicroUsd, multiplyCeil, parseCredits, parseRatio } from '@chainmeter/schema';
import OpenAI from 'openai';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../scripts/src/devnet/postgres.ts';
import { hotSql } from '../src/db/hot-sql.ts';
import { loadConfig } from '../src/env.ts';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import { type DevModelServer, startDevModelServer } from '../src/modules/metering/dev-model.server.ts';
import { applySettlement, placeHold } from '../src/modules/metering/metering.store.ts';
import {
  costFromUsage,
  estimateHold,
  loadPriceTable,
  type PriceTable,
  promptTokensUpperBound,
} from '../src/modules/metering/pricing.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { chunkedBody } from './support/chunked.ts';
import { gql, gqlData, signIn, subscribe } from './support/graphql.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { UNLIMITED_RATES } from './support/platform.ts';
import { waitFor } from './support/wait-for.ts';

const ORIGIN = 'http://localhost:4000';
const MARKUP = '1.5';
const markup = parseRatio(MARKUP);
const DEV = 'chainmeter-dev';

let database: TestDatabase;
let dev: DevModelServer;
let api: RunningApi;
let prices: PriceTable;
/** Accounts whose calls' first settlement attempt fails (fault injection); the usage ids it failed. */
const failFirstSettlement = new Set<string>();
const failedOnce = new Set<string>();
/** Accounts whose settlements wait at a gate: `reached` fires when one arrives, it goes on once `open` resolves. */
const settlementGates = new Map<string, { reached(): void; open: Promise<void> }>();

function config(overrides: Record<string, string> = {}) {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    PUBLIC_ORIGIN: ORIGIN,
    CHAIN_ID: '31337',
    USDC_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
    DATABASE_URL: database.url,
    LOG_LEVEL: 'silent',
    LLM_BASE_URL: dev.baseUrl,
    // Far above any answer of the dev model on a loaded machine (a burst of 200 calls shares one process),
    // and below dev-slow's 5 s, which must time out: that timer is armed first and due first.
    LLM_TIMEOUT_MS: '4000',
    PRICE_MARKUP: MARKUP,
    METERING_RETRY_MS: '50',
    ...UNLIMITED_RATES,
    ...overrides,
  });
}

beforeAll(async () => {
  database = await createTestDatabase('cm_metering');
  // Streams are paced (5 ms a chunk) so a client can leave one half-way; other answers are immediate.
  dev = await startDevModelServer({ chunkDelayMs: 5 });
  prices = await loadPriceTable(undefined);
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

/** A signed-in wallet with `credits` micro-USD on its balance (an ADJUSTMENT: no chain needed). */
async function newUser(balance: bigint): Promise<User> {
  const token = await signIn(api.url, privateKeyToAccount(generatePrivateKey()), 31337);
  const { me } = await gqlData<{ me: { id: string } }>(api.url, '{ me { id } }', {}, token);
  if (balance > 0n) {
    await appendLedgerEntry(api.services.orm.em.fork(), {
      accountId: me.id,
      amount: balance,
      reason: 'ADJUSTMENT',
      referenceId: 'test-setup',
    });
  }
  return { token, accountId: me.id, client: openai(token) };
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
    `select id, request_id, status, prompt_tokens, completion_tokens, provider_cost::text as provider_cost,
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

const expectedPrice = (model: string, promptTokens: number, completionTokens: number) => {
  const price = prices.get(model);
  if (!price) throw new Error(`no price for ${model}`);
  return multiplyCeil(costFromUsage(price, { promptTokens, completionTokens }), markup);
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
    const usage = completion.usage;
    if (!usage) throw new Error('no usage');
    await api.services.metering.whenIdle();
    const [row] = await usageRows(user.accountId);
    if (!row) throw new Error('no usage row');
    const price = expectedPrice(DEV, usage.prompt_tokens, usage.completion_tokens);
    expect(row).toMatchObject({
      request_id: requestId,
      status: 'BILLED',
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      provider_cost: costFromUsage(prices.get(DEV)!, {
        promptTokens: usage.prompt_tokens,
        completionTokens: usage.completion_tokens,
      }).toString(),
      user_price: price.toString(),
      api_key_id: null,
    });
    expect((await account(user.accountId)).balance).toBe(1_000_000n - price);
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
    expect(row).toMatchObject({
      status: 'BILLED',
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      user_price: expectedPrice(DEV, usage.prompt_tokens, usage.completion_tokens).toString(),
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

  it('lists the models', async () => {
    const user = await newUser(0n);
    const models = [];
    for await (const model of user.client.models.list()) models.push(model.id);
    expect(models).toContain(DEV);
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
      status: 404,
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

  it('charges nothing when the upstream fails (500), times out or answers empty', async () => {
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
    const empty = await user.client.chat.completions.create({ model: 'dev-empty', messages: messages('x') });
    expect(empty.choices[0]?.message.content).toBe('');
    await api.services.metering.whenIdle();
    const rows = await usageRows(user.accountId);
    expect(rows.map((row) => [row.status, row.user_price])).toEqual([
      ['RELEASED', '0'],
      ['RELEASED', '0'],
      ['RELEASED', '0'],
    ]);
    expect(await account(user.accountId)).toEqual({ balance: 1_000_000n, held: 0n });
    await expectBooksAgree(user, 1_000_000n);
  });

  it('prices a call without a cost header from the table, and flags an unknown price NEEDS_REVIEW', async () => {
    const user = await newUser(1_000_000n);
    const priced = await user.client.chat.completions.create({
      model: 'dev-no-cost',
      messages: messages('no header'),
    });
    const unpriced = await user.client.chat.completions.create({
      model: 'dev-unpriced',
      messages: messages('no price'),
    });
    await api.services.metering.whenIdle();
    const [first, second] = await usageRows(user.accountId);
    expect(first).toMatchObject({
      status: 'BILLED',
      user_price: expectedPrice(
        'dev-no-cost',
        priced.usage!.prompt_tokens,
        priced.usage!.completion_tokens,
      ).toString(),
    });
    expect(second).toMatchObject({
      status: 'NEEDS_REVIEW',
      provider_cost: null,
      user_price: '0',
      prompt_tokens: unpriced.usage!.prompt_tokens,
      completion_tokens: unpriced.usage!.completion_tokens,
      flags: ['UNPRICED'],
    });
    const now = new Date();
    const { me } = await gqlData<{
      me: { usageSummary: { key: string; requests: number; needsReview: number }[] };
    }>(
      api.url,
      `query($from: DateTime!, $to: DateTime!) { me { usageSummary(from: $from, to: $to, groupBy: MODEL) { key requests needsReview } } }`,
      {
        from: new Date(now.getTime() - 60_000).toISOString(),
        to: new Date(now.getTime() + 60_000).toISOString(),
      },
      user.token,
    );
    expect(me.usageSummary).toEqual([
      { key: 'dev-no-cost', requests: 1, needsReview: 0 },
      { key: 'dev-unpriced', requests: 1, needsReview: 1 },
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
    // Conservative estimate: the prompt's byte bound, and one token per generated byte.
    const promptBound = Number(
      promptTokensUpperBound(
        messages('a long enough prompt to get many chunks back from the dev model please'),
      ),
    );
    expect(row.prompt_tokens).toBe(promptBound);
    expect(row.completion_tokens).toBeGreaterThan(0);
    expect(BigInt(row.user_price)).toBe(expectedPrice(DEV, row.prompt_tokens, row.completion_tokens));
    expect(BigInt(row.user_price)).toBeLessThanOrEqual(BigInt(row.hold_amount));
    await expectBooksAgree(user, 1_000_000n);
  });
});

describe('concurrency', () => {
  const burstMessages = messages('burst');
  const maxTokens = 16;
  const hold = () => estimateHold(prices.get(DEV)!, burstMessages, maxTokens, markup);

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
    const again = await applySettlement(hotSql(api.services.orm.em.fork()), row!.id, {
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
    expect(BigInt(row!.user_price)).toBe(
      expectedPrice(DEV, data.usage!.prompt_tokens, data.usage!.completion_tokens),
    );
    await expectBooksAgree(user, 1_000_000n);
  });

  it('releases a hold whose call never finished', async () => {
    const user = await newUser(1_000_000n);
    const past = new Date(Date.now() - 60_000);
    await placeHold(hotSql(api.services.orm.em.fork()), {
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
    const price = expectedPrice(DEV, usage.promptTokens, usage.completionTokens);
    expect(usage.userPrice).toBe((Number(price) / 1000).toString());
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
