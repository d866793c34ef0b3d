/**
 * Operations over HTTP: `/metrics`, `/healthz`, `/readyz`, request ids and log redaction. The API runs
 * in-process on a fresh PostgreSQL database with a real anvil chain (the chain head), the real dev model
 * (metered calls), and a real HTTP server speaking the indexer's contract that the test drives (head,
 * transfers, outage). The real Ponder indexer is exercised in `operations-platform.test.ts`.
 */

import { type Anvil, mineBlocks, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/env.ts';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import { createLogger } from '../src/observability/logger.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from './support/fake-indexer.ts';
import { gql, gqlData, signIn } from './support/graphql.ts';
import { devPayer } from './support/platform.ts';
import { sample, scrape } from './support/prometheus.ts';
import { waitFor } from './support/wait-for.ts';

const CHAIN_ID = 31337;
const METRICS_TOKEN = 'metrics-token-0123456789';

let anvil: Anvil;
let indexer: FakeIndexer;
let database: TestDatabase;
let stalledDatabase: TestDatabase;
let api: RunningApi;
/** A second API on its own database with no crediting worker: confirmed transfers wait forever. */
let stalled: RunningApi;
const logLines: string[] = [];

function env(overrides: Record<string, string>): Record<string, string> {
  return {
    NODE_ENV: 'test',
    PORT: '0',
    PUBLIC_ORIGIN: 'http://localhost:4000',
    RPC_URL: anvil.rpcUrl,
    CHAIN_ID: String(CHAIN_ID),
    USDC_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
    INDEXER_URL: indexer.url,
    CONFIRMATIONS: '2',
    CREDITING_POLL_MS: '50',
    METRICS_CACHE_MS: '0',
    READY_MAX_INDEXER_LAG_BLOCKS: '10',
    RATE_LIMIT_IP_PER_MINUTE: '1000',
    ...overrides,
  };
}

beforeAll(async () => {
  anvil = await startAnvil({ chainId: CHAIN_ID });
  indexer = await startFakeIndexer(CHAIN_ID);
  database = await createTestDatabase('cm_ops');
  stalledDatabase = await createTestDatabase('cm_ops_stalled');
  api = await startApi(loadConfig(env({ DATABASE_URL: database.url })), {
    logger: createLogger({ level: 'debug', destination: { write: (line: string) => logLines.push(line) } }),
  });
  stalled = await startApi(
    loadConfig(env({ DATABASE_URL: stalledDatabase.url, LOG_LEVEL: 'silent', METRICS_TOKEN })),
    { crediting: false },
  );
});

afterAll(async () => {
  await api?.close();
  await stalled?.close();
  await indexer?.close();
  await database?.drop();
  await stalledDatabase?.drop();
  await anvil?.stop();
});

async function chainHead(): Promise<bigint> {
  const response = await fetch(anvil.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }),
  });
  return BigInt(((await response.json()) as { result: string }).result);
}

async function readyz(url: string) {
  const response = await fetch(`${url}/readyz`);
  return {
    status: response.status,
    body: (await response.json()) as {
      ready: boolean;
      failing: string[];
      checks: Record<string, { ok: boolean; error?: string; head?: string; lagBlocks?: string }>;
    },
  };
}

/** `waitFor` for checks that return a value or undefined: resolves with the value. */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  return (await waitFor(what, check)) as T;
}

const logged = () => logLines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe('/healthz and /readyz', () => {
  it('healthz answers while the process lives; readyz follows the database and the indexer', async () => {
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    indexer.setHead(await chainHead());
    const ok = await until('ready', async () => {
      const r = await readyz(api.url);
      return r.status === 200 ? r : undefined;
    });
    expect(ok.body).toMatchObject({ ready: true, failing: [], checks: { database: { ok: true } } });
    expect(ok.body.checks.indexer).toMatchObject({ ok: true, lagBlocks: '0' });

    indexer.down = true;
    const down = await until('503 while the indexer is down', async () => {
      const r = await readyz(api.url);
      return r.status === 503 ? r : undefined;
    });
    expect(down.body.ready).toBe(false);
    expect(down.body.failing).toEqual(['indexer']);
    expect(down.body.checks.indexer?.error).toMatch(/indexer answered 503/);
    expect(down.body.checks.database?.ok).toBe(true);

    indexer.down = false;
    await waitFor('ready again', async () => (await readyz(api.url)).status === 200);
  });

  it('readyz answers 503 naming the lag when the indexer falls too far behind the chain', async () => {
    const head = await chainHead();
    indexer.setHead(head);
    await mineBlocks(anvil.rpcUrl, 25);
    const behind = await until('503 while lagging', async () => {
      const r = await readyz(api.url);
      return r.status === 503 ? r : undefined;
    });
    expect(behind.body.failing).toEqual(['indexer']);
    expect(behind.body.checks.indexer).toMatchObject({ ok: false, lagBlocks: '25' });
    expect(behind.body.checks.indexer?.error).toMatch(/25 blocks behind the chain \(at most 10\)/);
    indexer.setHead(head + 25n);
    await waitFor('caught up', async () => (await readyz(api.url)).status === 200);
  });
});

describe('/metrics', () => {
  it('counts a credited deposit and shows heads and a zero crediting lag', async () => {
    const before = await scrape(api.url);
    expect(sample(before, 'chainmeter_deposits', { status: 'CREDITED' })).toBe(0);
    expect(sample(before, 'chainmeter_confirmations_required')).toBe(2);

    // A new block with a payment in it, then the indexer's head moves (the worker follows the head).
    await mineBlocks(anvil.rpcUrl, 1);
    const head = await chainHead();
    indexer.transfers.push(makeTransfer(CHAIN_ID, devPayer(0).address, 2_500_000n, head - 5n));
    indexer.setHead(head);
    const after = await until('the credited deposit in /metrics', async () => {
      const text = await scrape(api.url);
      return sample(text, 'chainmeter_deposits', { status: 'CREDITED' }) === 1 ? text : undefined;
    });
    expect(sample(after, 'chainmeter_deposits_micro_usd', { status: 'CREDITED' })).toBe(2_500_000);
    expect(sample(after, 'chainmeter_deposits', { status: 'PENDING' })).toBe(0);
    expect(sample(after, 'chainmeter_chain_head_block')).toBe(Number(head));
    expect(sample(after, 'chainmeter_indexer_head_block')).toBe(Number(head));
    expect(sample(after, 'chainmeter_indexer_lag_blocks')).toBe(0);
    expect(sample(after, 'chainmeter_crediting_cursor_block')).toBe(Number(head - 5n));
    expect(sample(after, 'chainmeter_crediting_lag_blocks')).toBe(0);
    expect(sample(after, 'chainmeter_crediting_lag_seconds')).toBe(0);
    expect(sample(after, 'chainmeter_dependency_up', { dependency: 'indexer' })).toBe(1);
    // prom-client's default process metrics are there too.
    expect(sample(after, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
  });

  it('shows the crediting lag in blocks and seconds when confirmed transfers are not credited', async () => {
    // `stalled` runs no crediting worker: the transfer of the previous test waits there.
    const text = await scrape(stalled.url, METRICS_TOKEN);
    const head = await chainHead();
    const waiting = indexer.transfers[0];
    if (!waiting) throw new Error('no transfer');
    expect(sample(text, 'chainmeter_crediting_lag_blocks')).toBe(Number(head - waiting.blockNumber));
    expect(sample(text, 'chainmeter_crediting_lag_seconds')).toBeGreaterThan(0);
    expect(sample(text, 'chainmeter_deposits', { status: 'CREDITED' })).toBe(0);
  });

  it('requires the bearer token when METRICS_TOKEN is set', async () => {
    expect((await fetch(`${stalled.url}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${stalled.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } }))
        .status,
    ).toBe(401);
    expect(
      (await fetch(`${stalled.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } }))
        .status,
    ).toBe(200);
  });

  it('counts GraphQL errors by code and HTTP requests by route and status', async () => {
    const before = await scrape(api.url);
    const unauthenticated = await gql(api.url, 'mutation { createApiKey(input: { name: "x" }) { secret } }');
    expect(unauthenticated.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const parse = await gql(api.url, '{ me { ');
    expect(parse.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    // GETs fall back to the web client's index.html; a DELETE matches no route at all.
    expect((await fetch(`${api.url}/no/such/thing`, { method: 'DELETE' })).status).toBe(404);

    const after = await scrape(api.url);
    const delta = (name: string, labels: Record<string, string>) =>
      (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    expect(delta('chainmeter_graphql_errors_total', { code: 'UNAUTHENTICATED' })).toBe(1);
    expect(delta('chainmeter_graphql_errors_total', { code: 'GRAPHQL_PARSE_FAILED' })).toBe(1);
    // Both answered 200: GraphQL errors travel in the body for a plain `application/json` client.
    expect(
      delta('chainmeter_http_requests_total', { method: 'POST', route: '/graphql', status: '200' }),
    ).toBe(2);
    expect(sample(after, 'chainmeter_http_requests_total', { route: 'unmatched', status: '404' })).toBe(1);
    // yoga's own operation metrics (@graphql-yoga/plugin-prometheus), errors by phase among them.
    expect(delta('graphql_envelop_error_result', { operationType: 'mutation', phase: 'execute' })).toBe(1);
    expect(sample(after, 'graphql_envelop_request', { operationType: 'mutation' })).toBeGreaterThan(0);
  });

  it('counts a metered completion with its model, billing status, provider cost and revenue', async () => {
    const wallet = devPayer(1);
    const token = await signIn(api.url, wallet, CHAIN_ID);
    const { me } = await gqlData<{ me: { id: string } }>(api.url, '{ me { id } }', {}, token);
    await appendLedgerEntry(api.services.orm.em.fork(), {
      accountId: me.id,
      amount: 5_000_000n,
      reason: 'ADJUSTMENT',
      referenceId: 'operations-test',
    });
    const before = await scrape(api.url);
    const { createCompletion } = await gqlData<{
      createCompletion: { usage: { userPrice: string; providerCost: string; billingStatus: string } };
    }>(
      api.url,
      `mutation($input: CompletionInput!) { createCompletion(input: $input) { usage { userPrice providerCost billingStatus } } }`,
      { input: { model: 'chainmeter-dev', messages: [{ role: 'user', content: 'hello metrics' }] } },
      token,
    );
    expect(createCompletion.usage.billingStatus).toBe('BILLED');
    const microUsd = (credits: string) => Math.round(Number(credits) * 1000);

    const after = await scrape(api.url);
    const delta = (name: string, labels: Record<string, string>) =>
      (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    expect(delta('chainmeter_completions_total', { model: 'chainmeter-dev', billing_status: 'BILLED' })).toBe(
      1,
    );
    expect(delta('chainmeter_revenue_micro_usd_total', { model: 'chainmeter-dev' })).toBe(
      microUsd(createCompletion.usage.userPrice),
    );
    expect(delta('chainmeter_provider_cost_micro_usd_total', { model: 'chainmeter-dev' })).toBe(
      microUsd(createCompletion.usage.providerCost),
    );
    expect(sample(after, 'chainmeter_holds_outstanding', { status: 'HELD' })).toBe(0);
    expect(sample(after, 'chainmeter_holds_outstanding', { status: 'UNSETTLED' })).toBe(0);
    expect(sample(after, 'chainmeter_usage_needs_review')).toBe(0);

    // A made-up model name does not become a label value.
    await gql(
      api.url,
      `mutation($input: CompletionInput!) { createCompletion(input: $input) { id } }`,
      { input: { model: 'made-up-model-xyz', messages: [{ role: 'user', content: 'x' }] } },
      token,
    );
    expect(await scrape(api.url)).not.toContain('made-up-model-xyz');
  });
});

describe('request ids and logs', () => {
  it("echoes the caller's x-request-id, or a new one, and logs the request under it", async () => {
    const mine = await fetch(`${api.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'ops-test-42' },
      body: JSON.stringify({ query: '{ paymentConfig { chainId } }' }),
    });
    expect(mine.headers.get('x-request-id')).toBe('ops-test-42');
    const fresh = await fetch(`${api.url}/healthz`);
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await fetch(`${api.url}/healthz`, { headers: { 'x-request-id': 'a b"\\c' } });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const line = await until('the request log line', () =>
      logged().find((entry) => entry.requestId === 'ops-test-42' && entry.msg === 'request'),
    );
    expect(line).toMatchObject({ method: 'POST', path: '/graphql', route: '/graphql', status: 200 });
    expect(line.durationMs).toBeTypeOf('number');
  });

  it('never writes an API key, a session token or a cookie to the log', async () => {
    const wallet = devPayer(2);
    const session = await signIn(api.url, wallet, CHAIN_ID);
    const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
      api.url,
      'mutation { createApiKey(input: { name: "log test" }) { secret } }',
      {},
      session,
    );
    const key = createApiKey.secret;
    expect(key).toMatch(/^cm_/);

    const viaKey = await fetch(`${api.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${key}`,
        cookie: `cm_session=${session}`,
        'x-request-id': 'ops-secret-1',
      },
      body: JSON.stringify({ query: '{ me { walletAddress } }' }),
    });
    expect(((await viaKey.json()) as { data: { me: unknown } }).data.me).not.toBeNull();
    const rest = await fetch(`${api.url}/v1/models?key=${key}`, {
      headers: { authorization: `Bearer ${key}`, 'x-request-id': 'ops-secret-2' },
    });
    expect(rest.status).toBe(200);
    // Code that logs carelessly (a header object, a message with the key in it) is caught as well.
    api.services.logger.warn(
      { headers: { authorization: `Bearer ${key}`, cookie: `cm_session=${session}` }, apiKey: key },
      `careless message with ${key} and ${session}`,
    );

    await waitFor('both request lines', () =>
      ['ops-secret-1', 'ops-secret-2'].every((id) => logged().some((entry) => entry.requestId === id)),
    );
    const output = logLines.join('');
    expect(output).toContain('careless message with');
    expect(output).toContain('[REDACTED]');
    expect(output).not.toContain(key);
    expect(output).not.toContain(key.slice(3));
    expect(output).not.toContain(session);
    expect(output).not.toContain(session.slice(4));
  });
});
