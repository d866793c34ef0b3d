/**
 * Webhook receivers that do not behave: an answer body with NUL bytes, no answer at all, 410 and 429, redirects
 * (to a private address too), a huge body, a status line or a body that drips a byte at a time, a reset
 * connection; and an API restart with deliveries still pending. Real loopback receivers that verify every
 * request with `standardwebhooks`, a real PostgreSQL database, events from real crediting (a fake indexer
 * serving the transfers). Each case checks the delivery log against what the receiver saw: one request per
 * logged attempt, the same `webhook-id` on each, and DELIVERED after exactly one 2xx.
 */
import type { ServerResponse } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { Webhook } from 'standardwebhooks';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiConfig } from '../src/env.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from './support/fake-indexer.ts';
import { sql } from './support/faults.ts';
import { gql, gqlData, signIn } from './support/graphql.ts';
import { waitFor } from './support/wait-for.ts';
import { webhookReceivers, webhookTestConfig } from './support/webhook-platform.ts';
import type { RawAnswer, WebhookReceiver } from './support/webhook-receiver.ts';

const CHAIN_ID = 31337;
/** One attempt's deadline here: short, so that a receiver that hangs costs the test a second. */
const TIMEOUT_MS = 1_000;

let database: TestDatabase;
let indexer: FakeIndexer;
let api: RunningApi;
const receivers = webhookReceivers();

function config(env: Record<string, string> = {}): ApiConfig {
  return webhookTestConfig(
    { databaseUrl: database.url, indexerUrl: indexer.url },
    { WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS), ...env },
  );
}

beforeAll(async () => {
  database = await createTestDatabase('cm_hostile_receiver');
  indexer = await startFakeIndexer(CHAIN_ID);
  api = await startApi(config());
}, 60_000);

afterAll(async () => {
  await receivers.closeAll();
  await api?.close();
  await indexer?.close();
  await database?.drop();
});

const receiver = receivers.start;

const CREATE = `mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id } }
}`;

interface DeliveryNode {
  id: string;
  webhookId: string;
  status: string;
  attempts: number;
  lastResponseCode: number | null;
  attemptLog: { responseCode: number | null; error: string | null; responseExcerpt: string | null }[];
}

const DELIVERIES = `{ me { webhookEndpoints { deliveries(first: 100) { edges { node {
  id webhookId status attempts lastResponseCode attemptLog { responseCode error responseExcerpt }
} } } } } }`;

async function deliveriesOf(session: string, on = api): Promise<DeliveryNode[]> {
  const data = await gqlData<{
    me: { webhookEndpoints: { deliveries: { edges: { node: DeliveryNode }[] } }[] };
  }>(on.url, DELIVERIES, {}, session);
  return data.me.webhookEndpoints.flatMap((endpoint) => endpoint.deliveries.edges.map((edge) => edge.node));
}

let nextBlock = 10n;

/**
 * A new account with an endpoint at `hooks` for DEPOSIT_CREDITED, and `count` confirmed deposits of it (one
 * event each). Returns the session.
 */
async function accountWithEvents(hooks: WebhookReceiver, count = 1, on = api): Promise<string> {
  const wallet = privateKeyToAccount(generatePrivateKey());
  const session = await signIn(on.url, wallet, CHAIN_ID);
  const { createWebhookEndpoint } = await gqlData<{ createWebhookEndpoint: { secret: string } }>(
    on.url,
    CREATE,
    { input: { url: hooks.url, events: ['DEPOSIT_CREDITED'] } },
    session,
  );
  hooks.secret = createWebhookEndpoint.secret;
  const block = nextBlock;
  nextBlock += 10n;
  for (let i = 0; i < count; i++) {
    indexer.transfers.push(makeTransfer(CHAIN_ID, wallet.address, 1_000_000n + BigInt(i), block, i));
  }
  indexer.setHead(block + 2n);
  return session;
}

/** Waits until every delivery of the account is DELIVERED; returns them. */
async function delivered(session: string, count = 1, on = api, timeoutMs = 15_000): Promise<DeliveryNode[]> {
  return (await waitFor(
    `${count} deliveries DELIVERED`,
    async () => {
      const rows = await deliveriesOf(session, on);
      return rows.length === count && rows.every((row) => row.status === 'DELIVERED') ? rows : null;
    },
    timeoutMs,
  )) as DeliveryNode[];
}

/**
 * What the receiver saw agrees with the log: one request per logged attempt, each signed and verified, with
 * the delivery's webhook-id, and one 2xx, the last.
 */
function expectOneRequestPerAttempt(hooks: WebhookReceiver, rows: DeliveryNode[]) {
  for (const row of rows) {
    const requests = hooks.received.filter((request) => request.id === row.webhookId);
    expect(requests.every((request) => request.verifyError === null)).toBe(true);
    expect({ id: row.webhookId, requests: requests.length }).toEqual({
      id: row.webhookId,
      requests: row.attempts,
    });
    expect(row.attemptLog).toHaveLength(row.attempts);
    expect(requests.filter((request) => request.status >= 200 && request.status < 300)).toHaveLength(1);
  }
  expect(hooks.received).toHaveLength(rows.reduce((sum, row) => sum + row.attempts, 0));
}

/** A body written as the test says, then ended. */
const body = (status: number, content: string | Buffer): RawAnswer => ({
  status,
  write: (response) => {
    response.writeHead(status, { 'content-type': 'text/plain' });
    response.end(content);
  },
});

/** Calls `step` every `ms` until it returns false or the connection is gone. */
function drip(response: ServerResponse, ms: number, step: () => boolean) {
  const timer = setInterval(() => {
    if (response.destroyed || response.socket?.destroyed || !step()) clearInterval(timer);
  }, ms);
  response.on('close', () => clearInterval(timer));
}

describe('answers a database cannot store as they are', () => {
  it('an answer body with NUL bytes is logged (U+0000 as U+FFFD) and the delivery moves on at once', async () => {
    const hooks = await receiver();
    hooks.answer = (index) => (index === 0 ? body(500, 'bad\u0000\u0000 request') : body(200, 'ok\u0000'));
    const session = await accountWithEvents(hooks);
    // Before the fix the attempt's record failed to write (PostgreSQL text holds no NUL): the delivery
    // stayed claimed until its lease ran out (timeout + 30 s), and a 2xx answered that way was sent again.
    const [row] = await delivered(session);
    expect(row).toMatchObject({ attempts: 2, lastResponseCode: 200 });
    expect(row?.attemptLog.map((attempt) => [attempt.responseCode, attempt.responseExcerpt])).toEqual([
      [200, 'ok\uFFFD'],
      [500, 'bad\uFFFD\uFFFD request'],
    ]);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });

  it('an attempt whose record cannot be written does not take the others of its batch with it', async () => {
    // Its own database, where a constraint the test adds refuses to log a 418: a record that cannot be
    // written, whatever the reason.
    const faultDatabase = await createTestDatabase('cm_hostile_batch');
    const faulty = await startApi({
      ...config({ DATABASE_URL: faultDatabase.url }),
      databaseUrl: faultDatabase.url,
    });
    try {
      await sql(
        faultDatabase.url,
        'alter table webhook_attempts add constraint test_refuses_teapots check (response_code <> 418)',
      );
      const hooks = await receiver();
      // Both requests are held until both are in, then answered in the same instant: their attempts end
      // together and are recorded by one statement.
      const held: { response: ServerResponse; status: number }[] = [];
      const together = (status: number): RawAnswer => ({
        status,
        write: (response) => {
          held.push({ response, status });
          if (held.length < 2) return;
          for (const answer of held.splice(0)) answer.response.writeHead(answer.status).end();
        },
      });
      hooks.answer = (index) => (index === 0 ? together(418) : index === 1 ? together(204) : 204);
      const session = await accountWithEvents(hooks, 2, faulty);
      await waitFor('both requests answered', () => hooks.received.length >= 2);
      const teapot = hooks.received[0]?.id;
      const fine = hooks.received[1]?.id;
      // The 204 is recorded at once. Before the fix the whole statement failed: it stayed claimed until its
      // lease ran out (timeout + 30 s), then was sent again though the receiver had taken it.
      const row = (await waitFor('the 204 recorded as DELIVERED', async () =>
        (await deliveriesOf(session, faulty)).find((r) => r.webhookId === fine && r.status === 'DELIVERED'),
      )) as DeliveryNode;
      expect(row).toMatchObject({ attempts: 1, lastResponseCode: 204 });
      expect(hooks.received.filter((request) => request.id === fine)).toHaveLength(1);
      // The 418's record was refused: its delivery is still claimed, retried when its lease ends.
      const [other] = await sql<{ status: string; claim: string | null; logged: number }>(
        faultDatabase.url,
        `select status, claim, (select count(*)::int from webhook_attempts a where a.delivery_id = d.id) as logged
           from webhook_deliveries d where event_id = $1::uuid`,
        [teapot],
      );
      expect(other).toMatchObject({ status: 'PENDING', logged: 0 });
      expect(other?.claim).not.toBeNull();
    } finally {
      await faulty.close();
      await faultDatabase.drop();
    }
  });
});

describe('receivers that fail', () => {
  /** A status line and a header, a byte every 50 ms, then nothing: the headers never end. */
  const dripStatusLine: RawAnswer = {
    status: 0,
    write: (response) => {
      const line = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n');
      let sent = 0;
      drip(response, 50, () => {
        response.socket?.write(line.subarray(sent, sent + 1));
        return ++sent < line.length;
      });
    },
  };
  it.each([
    ['never answers', 'hang' as const],
    ['drips its status line and never ends its headers', dripStatusLine],
  ])('a receiver that %s: no answer within the timeout, retried', async (_what, first) => {
    const hooks = await receiver();
    hooks.answer = (index) => (index === 0 ? first : 204);
    const session = await accountWithEvents(hooks);
    const [row] = await delivered(session);
    expect(row?.attemptLog.map((attempt) => [attempt.responseCode, attempt.error])).toEqual([
      [204, null],
      [null, `no answer within ${TIMEOUT_MS} ms`],
    ]);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });

  it('410 Gone and 429 Too Many Requests (Retry-After too) are retried like any other failure', async () => {
    const hooks = await receiver();
    const gone: RawAnswer = body(410, 'gone');
    const busy: RawAnswer = {
      status: 429,
      write: (response) => response.writeHead(429, { 'retry-after': '3600' }).end('slow down'),
    };
    hooks.answer = (index) => [gone, busy, gone][index] ?? 204;
    const session = await accountWithEvents(hooks);
    const [row] = await delivered(session);
    expect(row?.attemptLog.map((attempt) => attempt.responseCode)).toEqual([204, 410, 429, 410]);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });

  it('a redirect is a failed attempt and is never followed, to a private address or anywhere', async () => {
    const elsewhere = await receiver();
    const hooks = await receiver();
    const targets = [
      `${elsewhere.url}`,
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/',
      `http://[::ffff:127.0.0.1]:${new URL(elsewhere.url).port}/hooks/chainmeter`,
    ];
    const codes = [301, 302, 307, 308];
    hooks.answer = (index) => {
      const code = codes[index];
      if (code === undefined) return 204;
      return {
        status: code,
        write: (response) => response.writeHead(code, { location: targets[index] }).end(),
      };
    };
    const session = await accountWithEvents(hooks);
    const [row] = await delivered(session);
    expect(row?.attemptLog.map((attempt) => [attempt.responseCode, attempt.error])).toEqual([
      [204, null],
      [308, 'redirect not followed'],
      [307, 'redirect not followed'],
      [302, 'redirect not followed'],
      [301, 'redirect not followed'],
    ]);
    expect(elsewhere.received).toEqual([]);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });

  it('a connection reset before any answer is retried', async () => {
    const hooks = await receiver();
    hooks.answer = (index) =>
      index < 2 ? { status: 0, write: (response) => response.socket?.resetAndDestroy() } : 204;
    const session = await accountWithEvents(hooks);
    const [row] = await delivered(session);
    expect(row?.attemptLog.map((attempt) => attempt.responseCode)).toEqual([204, null, null]);
    for (const attempt of row?.attemptLog.slice(1) ?? []) expect(attempt.error).toMatch(/ECONNRESET/);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });

  // (A reset, rather than a close, can discard what the client has not read yet, the status line included: then
  // it is the case above.)
  it('a connection closed in the middle of the body: the status that came counts (a 500 is retried, a 2xx delivered)', async () => {
    const hooks = await receiver();
    const closeAfter = (status: number): RawAnswer => ({
      status,
      write: (response) => {
        response.writeHead(status, { 'content-type': 'text/plain', 'content-length': '1000' });
        response.write('partial', () => response.socket?.destroy());
      },
    });
    hooks.answer = (index) => closeAfter(index === 0 ? 500 : 200);
    const session = await accountWithEvents(hooks);
    const [row] = await delivered(session);
    expect(row?.attemptLog.map((attempt) => [attempt.responseCode, attempt.responseExcerpt])).toEqual([
      [200, 'partial'],
      [500, 'partial'],
    ]);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });
});

describe('answers that never end or never stop', () => {
  it('a huge body: 512 bytes are kept, the rest is not read', async () => {
    const hooks = await receiver();
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const total = 256 * 1024 * 1024;
    hooks.answer = () => ({
      status: 200,
      write: (response) => {
        response.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(total) });
        // Writes as fast as the client reads, until the client hangs up.
        const more = () => {
          while (written < total && !response.destroyed) {
            written += chunk.length;
            if (!response.write(chunk)) return void response.once('drain', more);
          }
          if (written >= total) response.end();
        };
        more();
      },
    });
    const session = await accountWithEvents(hooks);
    const [row] = await delivered(session);
    expect(row?.attemptLog.map((attempt) => [attempt.responseCode, attempt.responseExcerpt])).toEqual([
      [200, 'x'.repeat(512)],
    ]);
    // The client hung up long before the 256 MiB were sent (what the socket buffers is a few MiB at most).
    expect(written).toBeLessThan(total);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });

  it('a 2xx whose body drips a byte at a time is delivered at the deadline, not held forever', async () => {
    const hooks = await receiver();
    hooks.answer = () => ({
      status: 200,
      write: (response) => {
        response.writeHead(200, { 'content-type': 'text/plain' });
        drip(response, 50, () => response.write('.'));
      },
    });
    const session = await accountWithEvents(hooks);
    const [row] = await delivered(session);
    expect(row?.attemptLog).toHaveLength(1);
    expect(row?.attemptLog[0]).toMatchObject({ responseCode: 200, error: null });
    expect(row?.attemptLog[0]?.responseExcerpt).toMatch(/^\.+$/);
    expectOneRequestPerAttempt(hooks, row ? [row] : []);
  });
});

describe('an API restart with deliveries pending', () => {
  it('delivers them after the restart, one request per logged attempt, none lost', async () => {
    const restartDatabase = await createTestDatabase('cm_hostile_restart');
    const own = (): ApiConfig => ({
      ...config({ DATABASE_URL: restartDatabase.url }),
      databaseUrl: restartDatabase.url,
    });
    let first: RunningApi | null = await startApi(own());
    let second: RunningApi | null = null;
    try {
      const hooks = await receiver();
      let up = false;
      hooks.answer = () => (up ? 204 : 503);
      const count = 5;
      const session = await accountWithEvents(hooks, count, first);
      await waitFor(
        'every delivery tried and failed once',
        () => new Set(hooks.received.map((r) => r.id)).size === count,
      );
      await first.close();
      first = null;
      const seenWhileDown = hooks.received.length;
      up = true;
      second = await startApi(own());
      const rows = await delivered(session, count, second);
      expect(hooks.received.length).toBeGreaterThan(seenWhileDown);
      expectOneRequestPerAttempt(hooks, rows);
      for (const row of rows) expect(row.attemptLog[0]?.responseCode).toBe(204);
    } finally {
      await first?.close();
      await second?.close();
      await restartDatabase.drop();
    }
  });
});

describe('rotating a secret with a second endpoint (docs/api.md)', () => {
  it('both endpoints get each event with the same webhook-id, each signed with its own secret', async () => {
    const hooks = await receiver();
    const session = await accountWithEvents(hooks, 0);
    const oldSecret = hooks.secret as string;
    const { createWebhookEndpoint } = await gqlData<{
      createWebhookEndpoint: { secret: string; endpoint: { id: string } };
    }>(api.url, CREATE, { input: { url: hooks.url, events: ['DEPOSIT_CREDITED'] } }, session);
    const newSecret = createWebhookEndpoint.secret;
    expect(newSecret).not.toBe(oldSecret);
    const wallet = (
      await gqlData<{ me: { walletAddress: `0x${string}` } }>(
        api.url,
        '{ me { walletAddress } }',
        {},
        session,
      )
    ).me.walletAddress;
    const block = nextBlock;
    nextBlock += 10n;
    indexer.transfers.push(makeTransfer(CHAIN_ID, wallet, 2_000_000n, block));
    indexer.setHead(block + 2n);
    await delivered(session, 2);
    // One event, one webhook-id, two requests: one verifies with the old secret only, one with the new only.
    expect(hooks.received).toHaveLength(2);
    expect(new Set(hooks.received.map((r) => r.id)).size).toBe(1);
    const verifies = (secret: string, request: (typeof hooks.received)[number]) => {
      try {
        new Webhook(secret).verify(request.body, {
          'webhook-id': request.id,
          'webhook-timestamp': request.timestamp,
          'webhook-signature': request.signature,
        });
        return true;
      } catch {
        return false;
      }
    };
    expect(
      hooks.received.map((request) => [verifies(oldSecret, request), verifies(newSecret, request)]).sort(),
    ).toEqual([
      [false, true],
      [true, false],
    ]);
  });
});

describe('IPv4 inside IPv6 (outside the devnet)', () => {
  it('refuses IPv4-compatible and IPv4-translated forms of private addresses as endpoint URLs', async () => {
    const strictDatabase = await createTestDatabase('cm_hostile_strict');
    const strict = await startApi(
      { ...config({ WEBHOOK_ALLOW_PRIVATE_URLS: 'false' }), databaseUrl: strictDatabase.url },
      { crediting: false },
    );
    try {
      const wallet = privateKeyToAccount(generatePrivateKey());
      const session = await signIn(strict.url, wallet, CHAIN_ID);
      for (const url of [
        'https://[::127.0.0.1]/hook',
        'https://[::7f00:1]/hook',
        'https://[::a9fe:a9fe]/latest/meta-data',
        'https://[::ffff:0:10.0.0.1]/hook',
        'https://[0:0:0:0:0:ffff:192.168.1.1]/hook',
      ]) {
        const result = await gql(
          strict.url,
          CREATE,
          { input: { url, events: ['DEPOSIT_CREDITED'] } },
          session,
        );
        expect({ url, code: result.errors?.[0]?.extensions?.code }).toEqual({ url, code: 'BAD_USER_INPUT' });
      }
    } finally {
      await strict.close();
      await strictDatabase.drop();
    }
  });
});
