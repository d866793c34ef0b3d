/**
 * Benchmark of the API's read path (issue 5, "Benchmark"): the ledger query an account's page shows,
 * `me { ledger(first: N) { edges { node { ... deposit { ... } } } } }`, for an account with 150 DEPOSIT
 * entries, each with its deposit.
 * 1. SQL statements per request, on an in-process API, each statement attributed to the request that caused
 *    it (ORM and raw `pg` paths alike: api/test/support/sql-counter.ts), for first = 1, 10 and 100, with a
 *    session token and with an API key: the same at every page size (the statement that reads the page
 *    reads each entry's deposit too), else the run fails.
 *    BENCH_CPU_PROF=<dir> has the API process of the load runs write a V8 CPU profile there.
 * 2. Latency and throughput at concurrency 50 against the API as its own process (`node api/src/main.ts`,
 *    as in production), so the load generator does not share its event loop: first = 10 and 100 with the
 *    session token, first = 10 with the API key.
 * Real PostgreSQL; the ledger is credited by the real crediting worker from a fake indexer's transfers (no
 * chain needed for the data; anvil only answers the API's start-up checks). Not a test: it prints figures.
 */

import { availableParallelism, loadavg } from 'node:os';
import { loadConfig } from '@chainmeter/api/env';
import { type RunningApi, startApi } from '@chainmeter/api/server';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from '@chainmeter/api/testing/fake-indexer';
import { eventually, gqlData, signIn } from '@chainmeter/api/testing/graphql';
import { type ApiProcess, spawnApiProcess } from '@chainmeter/api/testing/platform';
import { countSql } from '@chainmeter/api/testing/sql-counter';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { deployTestUsdc } from '@chainmeter/testkit/token';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { loadBenchConfig } from '../env.ts';
import { cpuMsOf, ms, percentile, printTable } from './stats.ts';

const CHAIN_ID = 31337;
const ENTRIES = 150;
const CONCURRENCY = 50;
/** Each load run lasts this long (after a warm-up of WARMUP requests). */
const DURATION_MS = 20_000;
const WARMUP = 200;
const SQL_SAMPLES = 20;

const LEDGER_QUERY = `query Ledger($first: Int!) {
  me {
    id
    balance
    ledger(first: $first) {
      edges {
        cursor
        node {
          id amount balanceAfter reason createdAt hash
          deposit { id chainId txHash logIndex blockNumber from amountToken credits status confirmations creditedAt }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;

interface LedgerPage {
  me: { ledger: { edges: { node: { reason: string; deposit: { txHash: string } | null } }[] } };
}

export async function benchReadPath(): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const anvil: Anvil = await startAnvil({ chainId: CHAIN_ID });
    cleanups.push(() => anvil.stop());
    const usdc = await deployTestUsdc(anvil.rpcUrl);
    const database: TestDatabase = await createTestDatabase('cm_bench_read');
    cleanups.push(() => database.drop());
    const indexer: FakeIndexer = await startFakeIndexer(CHAIN_ID);
    cleanups.push(() => indexer.close());
    const env = {
      NODE_ENV: 'production',
      PORT: '0',
      HOST: '127.0.0.1',
      PUBLIC_ORIGIN: 'http://localhost:4000',
      RPC_URL: anvil.rpcUrl,
      CHAIN_ID: String(CHAIN_ID),
      USDC_ADDRESS: usdc,
      TREASURY_ADDRESS: devAccounts.treasury.address,
      INDEXER_URL: indexer.url,
      CONFIRMATIONS: '2',
      CREDITING_POLL_MS: '50',
      DATABASE_URL: database.url,
      LOG_LEVEL: 'warn',
      METERING_RETRY_MS: '600000',
      RATE_LIMIT_IP_PER_MINUTE: '100000',
    };

    // The data: ENTRIES transfers from one wallet, credited by the real worker.
    const api: RunningApi = await startApi(loadConfig(env));
    cleanups.push(() => api.close());
    const wallet = privateKeyToAccount(generatePrivateKey());
    const token = await signIn(api.url, wallet, CHAIN_ID);
    for (let i = 0; i < ENTRIES; i++) {
      indexer.transfers.push(makeTransfer(CHAIN_ID, wallet.address, 1_000_000n + BigInt(i), BigInt(i + 1)));
    }
    indexer.setHead(BigInt(ENTRIES + 10));
    await eventually(
      async () => {
        const page = await gqlData<LedgerPage>(api.url, LEDGER_QUERY, { first: 100 }, token);
        const edges = page.me.ledger.edges;
        return edges.length === 100 && edges.every((edge) => edge.node.deposit) ? true : undefined;
      },
      60_000,
      `${ENTRIES} credited deposits`,
    );

    // Integrators read the same page with an API key (its lookup is the /v1 gateway's too).
    const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
      api.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
      { input: { name: 'bench' } },
      token,
    );
    const credentials = [
      { name: 'session token', token },
      { name: 'API key', token: createApiKey.secret },
    ];

    // 1. SQL statements per request, by page size. Each statement is attributed to the request that caused
    //    it (support/sql-counter.ts), so the crediting worker polling in this process meanwhile counts for
    //    none of them, and the sequential requests of each page size are compared with each other.
    const counter = await countSql(api);
    const sqlRows: Record<string, string | number>[] = [];
    /** Statements per request, by credential and page size. */
    const perPage = new Map<string, number>();
    const sqlKey = (credential: string, first: number) => `${credential} ${first}`;
    let constant = true;
    for (const credential of credentials) {
      const counts = new Set<number>();
      for (const first of [1, 10, 100]) {
        counter.requests.length = 0;
        for (let i = 0; i < SQL_SAMPLES; i++) {
          const page = await gqlData<LedgerPage>(api.url, LEDGER_QUERY, { first }, credential.token);
          if (
            page.me.ledger.edges.length !== first ||
            page.me.ledger.edges.some((edge) => !edge.node.deposit)
          ) {
            throw new Error(`first: ${first} returned an incomplete page`);
          }
        }
        const statements = counter.requests
          .filter((request) => request.method === 'POST' && request.path === '/graphql')
          .map((request) => request.statements);
        if (statements.length !== SQL_SAMPLES) {
          throw new Error(`first: ${first}: ${statements.length} GraphQL requests seen, ${SQL_SAMPLES} sent`);
        }
        const fewest = Math.min(...statements);
        const most = Math.max(...statements);
        // What every request of this page size needed (an occasional extra write, such as a throttled
        // last-used update, shows as `most`); an N+1 would add statements to every request of a larger page.
        perPage.set(sqlKey(credential.name, first), fewest);
        counts.add(fewest);
        sqlRows.push({
          credential: credential.name,
          'page size (first)': first,
          'deposits loaded': first,
          'SQL statements per request': fewest === most ? fewest : `${fewest}-${most}`,
        });
      }
      if (counts.size !== 1) constant = false;
    }
    printTable(
      `SQL statements per ledger request (${SQL_SAMPLES} sequential requests each, counted per request): ${constant ? 'the same for every page size' : 'NOT constant (an N+1)'}`,
      sqlRows,
    );
    await api.close();
    cleanups.pop();

    // 2. Load at concurrency 50 against the API as its own process.
    // BENCH_CPU_PROF=<dir>: the API process writes a V8 CPU profile there when it stops.
    const profileDir = loadBenchConfig().BENCH_CPU_PROF;
    const server: ApiProcess = await spawnApiProcess({
      ...env,
      CREDITING_POLL_MS: '60000',
      LOG_LEVEL: 'error',
      ...(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {}),
    });
    cleanups.push(() => server.stop());
    const loadRows: Record<string, string | number>[] = [];
    const runs = [
      { credential: credentials[0], first: 10 },
      { credential: credentials[0], first: 100 },
      { credential: credentials[1], first: 10 },
    ];
    for (const { credential, first } of runs) {
      if (!credential) continue;
      await load(server.url, credential.token, first, { requests: WARMUP });
      const cpuBefore = cpuMsOf(server.child.pid);
      const { latencies, seconds, failures } = await load(server.url, credential.token, first, {
        ms: DURATION_MS,
      });
      const cpuAfter = cpuMsOf(server.child.pid);
      loadRows.push({
        query: `ledger(first: ${first}) + deposits`,
        credential: credential.name,
        concurrency: CONCURRENCY,
        requests: latencies.length,
        failures,
        p50: ms(percentile(latencies, 50)),
        p99: ms(percentile(latencies, 99)),
        'requests/s': (latencies.length / seconds).toFixed(0),
        'API CPU/request':
          cpuBefore === null || cpuAfter === null
            ? '?'
            : `${(((cpuAfter - cpuBefore) / latencies.length) * 1000).toFixed(0)} us`,
        'SQL/request': perPage.get(sqlKey(credential.name, first)) ?? '?',
      });
    }
    printTable(
      `Ledger read path at concurrency ${CONCURRENCY}, ${DURATION_MS / 1000} s each (API process, PostgreSQL, ${ENTRIES}-entry account; load average ${loadavg()[0]?.toFixed(1)} on ${availableParallelism()} cores)`,
      loadRows,
    );
    if (!constant) throw new Error('SQL statements per request grow with the page size: an N+1 query');
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
}

/** `CONCURRENCY` requests in flight until `until` is met; each must return a full page. */
async function load(
  url: string,
  token: string,
  first: number,
  until: { requests: number } | { ms: number },
): Promise<{ latencies: number[]; seconds: number; failures: number }> {
  const body = JSON.stringify({ query: LEDGER_QUERY, variables: { first } });
  const latencies: number[] = [];
  let failures = 0;
  let sent = 0;
  const started = performance.now();
  const more = () => ('requests' in until ? sent < until.requests : performance.now() - started < until.ms);
  const worker = async () => {
    while (more()) {
      sent++;
      const sentAt = performance.now();
      const response = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body,
      });
      const json = (await response.json()) as { data?: LedgerPage; errors?: unknown };
      latencies.push(performance.now() - sentAt);
      if (json.errors || json.data?.me.ledger.edges.length !== first) failures++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { latencies, seconds: (performance.now() - started) / 1000, failures };
}
