/**
 * The public contract probed from outside by a careless or hostile integrator, for what security.test.ts and
 * request-forgery.test.ts do not already cover: the shapes of a GraphQL request yoga parses itself (GET and
 * form parameters, a `query` that is not a string), variables that do not coerce, variable defaults and
 * literals of the custom scalars in queries (which run compiled by graphql-jit), DateTimes at the edge of
 * their range, REST bodies that nest deeper than anything legitimate, a client that hangs up before its body
 * is read, and x402 payment headers that hold no payment. Each must answer a clear 4xx or an error with `extensions.code`, never a 500, a masked "Unexpected
 * error." or an internal message. One API instance on a fresh PostgreSQL database, without a chain (wallet
 * signatures are checked locally); the x402 cases add a second one on an anvil chain.
 */
import { connect } from 'node:net';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { deployTestUsdc } from '@chainmeter/testkit/token';
import { parse } from 'graphql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jitRunsAsGraphqlJs } from '../src/http/graphql-jit.ts';
import { schema } from '../src/schema/index.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { untilALockIsWaitedFor } from './support/lock-waits.ts';
import { sample, scrape } from './support/prometheus.ts';
import { fundedUser, type TestUser } from './support/users.ts';
import { waitFor } from './support/wait-for.ts';

let database: TestDatabase;
let api: RunningApi;
let user: TestUser;

beforeAll(async () => {
  database = await createTestDatabase('cm_hostile');
  api = await startApi(
    testApiConfig({ DATABASE_URL: database.url, X402: 'off', RATE_LIMIT_IP_PER_MINUTE: '10000' }),
    { crediting: false, webhookDelivery: false },
  );
  user = await fundedUser(api, 10_000_000n);
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
});

interface Answer {
  status: number;
  text: string;
  json: {
    data?: unknown;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
    error?: { message: string; code: string; param?: string | null };
  } | null;
}

async function send(path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${api.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${user.token}`, ...init.headers },
  });
  const text = await response.text();
  let json: Answer['json'] = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, text, json };
}

const postJson = (body: unknown) =>
  send('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/**
 * A refusal the caller can act on: a code, the caller's own message, nothing of the server's insides, and no
 * 5xx (a request error may be a 200 to a client that accepts only `application/json`: GraphQL over HTTP).
 */
function expectClientError(answer: Answer, code: string, message: RegExp) {
  expect(answer.status, answer.text).toBeLessThan(500);
  expect(answer.json?.data ?? null, answer.text).toBeNull();
  expect(answer.json?.errors?.[0]?.extensions?.code, answer.text).toBe(code);
  expect(answer.json?.errors?.[0]?.message, answer.text).toMatch(message);
  expect(answer.text).not.toMatch(/Unexpected error|SyntaxError|TypeError|\.ts:\d|node_modules/);
}

describe('GraphQL requests yoga parses', () => {
  it('a query that is not a string is a 400, not a crash of the request checks', async () => {
    for (const query of [5, true, { kind: 'Document' }, ['{ me { id } }']]) {
      const answer = await postJson({ query });
      expect(answer.status).toBe(400);
      expectClientError(answer, 'BAD_REQUEST', /"query" param to be a string/);
    }
  });

  it('variables or extensions that are not JSON, in a GET, a form or a multipart request: 400', async () => {
    const query = encodeURIComponent('query($n: Int) { me { ledger(first: $n) { edges { cursor } } } }');
    for (const [name, broken] of [
      ['variables', '{"n":'],
      ['extensions', 'not json'],
    ]) {
      const parameter = `${name}=${encodeURIComponent(broken as string)}`;
      const get = await send(`/graphql?query=${query}&${parameter}`);
      const form = await send('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `query=${query}&${parameter}`,
      });
      for (const answer of [get, form]) {
        expect(answer.status).toBe(400);
        expectClientError(answer, 'BAD_REQUEST', /not valid JSON/);
      }
    }
    const multipart = new FormData();
    multipart.append('operations', '{"query":');
    multipart.append('map', '{}');
    const answer = await send('/graphql', { method: 'POST', body: multipart });
    expect(answer.status).toBe(400);
    expectClientError(answer, 'BAD_REQUEST', /must be a valid JSON string/);
    // The same request well formed is answered.
    const fine = await send(`/graphql?query=${query}&variables=${encodeURIComponent('{"n":1}')}`);
    expect(fine.json?.errors, fine.text).toBeUndefined();
  });
});

describe('variables that do not coerce are BAD_USER_INPUT, in queries and mutations alike', () => {
  const LEDGER = 'query($n: Int) { me { ledger(first: $n) { edges { cursor } } } }';
  const CREATE_KEY = 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }';
  const cases: [string, string, Record<string, unknown>, RegExp][] = [
    ['a string for an Int', LEDGER, { n: 'x' }, /Int cannot represent non-integer value/],
    ['a fraction for an Int', LEDGER, { n: 1.5 }, /Int cannot represent non-integer value/],
    [
      '2^31 for an Int',
      'mutation($c: Int!) { siweChallenge(address: "0x0000000000000000000000000000000000000001", chainId: $c) }',
      { c: 2 ** 31 },
      /non 32-bit signed integer/,
    ],
    [
      'a required variable left out',
      'query($from: DateTime!) { me { usageSummary(from: $from, to: $from, groupBy: DAY) { key } } }',
      {},
      /of required type "DateTime!" was not provided/,
    ],
    ['an input field the type does not have', CREATE_KEY, { input: { name: 'k', owner: 'x' } }, /"owner"/],
    [
      'a null in a list of non-null',
      CREATE_KEY,
      { input: { name: 'k', allowedModels: [null] } },
      /not to be null/,
    ],
    [
      'a string for a Float',
      'mutation($t: Float) { createCompletion(input: { model: "chainmeter-dev", temperature: $t, messages: [{ role: "user", content: "hi" }] }) { id } }',
      { t: 'warm' },
      /Float cannot represent non numeric value/,
    ],
  ];

  it.each(cases)('%s', async (_name, query, variables, message) => {
    expectClientError(await postJson({ query, variables }), 'BAD_USER_INPUT', message);
  });
});

describe('DateTime is years 0001 to 9999 in UTC, at both ends', () => {
  // 9999-12-31 at 23:59 -23:59 is 10000-01-01 in UTC: serialized back it would be "+010000-01-01T23:58...Z",
  // which no DateTime input accepts. 0001-01-01 at 00:00 +01:00 (year 0 in UTC) was refused already.
  const PAST_9999 = '9999-12-31T23:59:59.999-23:59';

  it('refuses an instant past 9999 in UTC, in GraphQL and in the REST export', async () => {
    for (const at of [PAST_9999, '0001-01-01T00:00:00+01:00']) {
      const key = await postJson({
        query: 'mutation($at: DateTime) { createApiKey(input: { name: "k", expiresAt: $at }) { secret } }',
        variables: { at },
      });
      expectClientError(key, 'BAD_USER_INPUT', /years 0001 to 9999/);
      const exported = await send(`/v1/usage/export?to=${encodeURIComponent(at)}`);
      expect(exported.status, exported.text).toBe(400);
    }
    const keys = await postJson({ query: '{ me { apiKeys { id } } }' });
    expect(keys.json, keys.text).toEqual({ data: { me: { apiKeys: [] } } });
  });
});

describe('queries graphql-jit would run otherwise than graphql-js', () => {
  it('a variable default is used when the variable is left out, a non-null one too', async () => {
    const page = await postJson({
      query: 'query($n: Int! = 1) { me { ledger(first: $n) { edges { node { amount } } } } }',
    });
    expect(page.json, page.text).toEqual({
      data: { me: { ledger: { edges: [{ node: { amount: '10000' } }] } } },
    });
    // A custom scalar's default is parsed like the value it stands for (a date, not a string).
    const usage = await postJson({
      query:
        'query($from: DateTime = "2099-01-01T00:00:00Z") { me { usage(filter: { from: $from }) { edges { cursor } } } }',
    });
    expect(usage.json, usage.text).toEqual({ data: { me: { usage: { edges: [] } } } });
  });

  it('a BigInt literal or default is read, not a masked 500 (here: refused to a non-auditor)', async () => {
    for (const query of [
      '{ auditReport(fromBlock: "1") { consistent } }',
      'query($from: BigInt = "1") { auditReport(fromBlock: $from) { consistent } }',
    ]) {
      expectClientError(await postJson({ query }), 'FORBIDDEN', /auditor/);
    }
  });

  it("still compiles the read path's queries", () => {
    const ledgerPage = parse(
      'query($first: Int, $after: String) { me { balance ledger(first: $first, after: $after) { edges { cursor node { id amount createdAt deposit { txHash } } } } usage(filter: { from: "2026-01-01T00:00:00Z" }) { edges { cursor } } } }',
    );
    expect(jitRunsAsGraphqlJs(schema, ledgerPage)).toBe(true);
  });
});

describe('REST bodies nested deeper than anything legitimate', () => {
  /** `[[[...]]]`, `depth` levels: JSON.parse reads it; anything recursive over it overflows the stack. */
  const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
  const complete = (body: string) =>
    send('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  it('a response_format or a content part nested 100,000 deep is a 400 naming the field, and nothing is charged', async () => {
    const before = (await postJson({ query: '{ me { balance } }' })).text;
    for (const [param, body] of [
      [
        'response_format',
        `{"model":"chainmeter-dev","max_tokens":3,"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":${nested(100_000)}}}`,
      ],
      [
        'messages',
        `{"model":"chainmeter-dev","max_tokens":3,"messages":[{"role":"user","content":[{"type":"text","text":"hi","extra":${nested(100_000)}}]}]}`,
      ],
    ]) {
      const answer = await complete(body as string);
      expect(answer.status, answer.text).toBe(400);
      expect(answer.json?.error?.code).toBe('invalid_request');
      expect(answer.json?.error?.param).toBe(param);
      expect(answer.json?.error?.message).toMatch(/nest/);
      expect(answer.text).not.toMatch(/RangeError|call stack/);
    }
    expect((await postJson({ query: '{ me { balance } }' })).text).toBe(before);
    // A realistic JSON schema still passes.
    const schemaFormat = {
      type: 'json_schema',
      json_schema: {
        name: 'x',
        schema: { type: 'object', properties: { a: { type: 'array', items: { type: 'string' } } } },
      },
    };
    const fine = await complete(
      JSON.stringify({
        model: 'chainmeter-dev',
        max_tokens: 3,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
        response_format: schemaFormat,
      }),
    );
    expect(fine.status, fine.text).toBe(200);
  });
});

describe('a client that hangs up before its body is read', () => {
  /** Sends the whole request on a raw connection, then closes it without waiting for an answer. */
  const sendAndHangUp = (path: string, token: string, body: string) =>
    new Promise<void>((resolve, reject) => {
      const socket = connect(api.port, '127.0.0.1', () => {
        socket.write(
          `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
            `authorization: Bearer ${token}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          () => {
            socket.destroy();
            resolve();
          },
        );
      });
      socket.on('error', reject);
    });

  it('ends its request (499) instead of waiting forever for a body Node has thrown away', async () => {
    const ended = async () =>
      sample(await scrape(api.url), 'chainmeter_http_requests_total', {
        method: 'POST',
        route: '/v1/chat/completions',
        status: '499',
      }) ?? 0;
    const caller = await fundedUser(api, 1_000_000n);
    const before = await ended();
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query('begin');
      // The session's lookup waits behind this lock: the request is in its handler, its body not read yet.
      await locker.query('lock table sessions in access exclusive mode');
      await sendAndHangUp(
        '/v1/chat/completions',
        caller.token,
        JSON.stringify({
          model: 'chainmeter-dev',
          max_tokens: 3,
          messages: [{ role: 'user', content: 'hi' }],
          stream: true,
        }),
      );
      await untilALockIsWaitedFor(api.services.orm);
      // A request on a new connection answered after the close was sent: the API has seen the close (and
      // Node destroyed the unread request) before the lock is released.
      expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    } finally {
      await locker.query('commit');
      await locker.end();
    }
    // Without the fix the handler waits for the body's 'end' forever: the request is never counted.
    await waitFor('the request to end as 499', async () => (await ended()) === before + 1);
    const [held] = await api.services.orm.em
      .fork()
      .execute<{ calls: number }[]>('select count(*)::int as calls from usage_records where account_id = ?', [
        caller.accountId,
      ]);
    expect(held?.calls).toBe(0);
  });
});

describe('x402: a PAYMENT-SIGNATURE that decodes to no payment at all', () => {
  let anvil: Anvil;
  let paid: RunningApi;

  beforeAll(async () => {
    anvil = await startAnvil();
    const token = await deployTestUsdc(anvil.rpcUrl);
    // x402 is on by default on the devnet (its relayer); the offer reads the token's EIP-712 domain from the chain.
    paid = await startApi(
      testApiConfig({ DATABASE_URL: database.url, RPC_URL: anvil.rpcUrl, USDC_ADDRESS: token }),
      {
        crediting: false,
        webhookDelivery: false,
      },
    );
  });

  afterAll(async () => {
    await paid?.close();
    await anvil?.stop();
  });

  it('is a refused payment (402 with the offer), whatever JSON it holds', async () => {
    const body = JSON.stringify({
      model: 'chainmeter-dev',
      max_tokens: 3,
      messages: [{ role: 'user', content: 'hi' }],
    });
    for (const json of ['null', '5', '"x"', '[]', 'true']) {
      const response = await fetch(`${paid.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'payment-signature': Buffer.from(json).toString('base64'),
        },
        body,
      });
      const text = await response.text();
      expect(response.status, `${json}: ${text}`).toBe(402);
      expect(response.headers.get('payment-required'), json).toBeTruthy();
      expect(JSON.parse(text).error.code, json).toMatch(
        /^(invalid_payment_signature_header|unsupported_x402_version)$/,
      );
    }
  });
});
