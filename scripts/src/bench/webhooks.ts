/**
 * Benchmark of webhook delivery (issue: integrators and operations):
 * 1. latency from a credited deposit to its signed webhook received and verified by the receiver, one
 *    deposit at a time: from the deposit's `creditedAt` (written in the crediting transaction) and from the
 *    moment the indexer reports the confirming head;
 * 2. delivery throughput on a backlog: 4,000 deposits of one account credited with no delivery worker
 *    running, then freshly started APIs (one replica, then two, crediting off) deliver them; deliveries per
 *    second until the receiver has all, their webhook-ids distinct.
 * The API in-process on PostgreSQL with its defaults (CREDITING_POLL_MS=200, WEBHOOK_POLL_MS=500,
 * WEBHOOK_CONCURRENCY=16), a real HTTP server speaking the indexer's contract (the chain-to-credit path is
 * the crediting benchmark's), and a real receiver on loopback that verifies every request with
 * `standardwebhooks`. Not a test: it prints figures.
 */
import { loadConfig } from '@chainmeter/api/env';
import { type RunningApi, startApi } from '@chainmeter/api/server';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from '@chainmeter/api/testing/fake-indexer';
import { gqlData, signIn } from '@chainmeter/api/testing/graphql';
import { startWebhookReceiver, type WebhookReceiver } from '@chainmeter/api/testing/webhook-receiver';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import pg from 'pg';
import type { PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { ms, percentile, printTable } from './stats.ts';
import { countDeliveries } from './webhooks.store.ts';

const CHAIN_ID = 31337;
const LATENCY_SAMPLES = 100;
const BACKLOG = 4_000;

export async function benchWebhooks(): Promise<void> {
  const database = await createTestDatabase('cm_bench_webhooks');
  const indexer = await startFakeIndexer(CHAIN_ID);
  const receiver = await startWebhookReceiver();
  try {
    await latency(database, indexer, receiver);
    await throughput(database, indexer, receiver, 1);
    await throughput(database, indexer, receiver, 2);
  } finally {
    await receiver.close();
    await indexer.close();
    await database.drop();
  }
}

function apiConfig(database: TestDatabase, indexer: FakeIndexer) {
  return loadConfig({
    NODE_ENV: 'production',
    PORT: '0',
    PUBLIC_ORIGIN: 'http://localhost:4000',
    RPC_URL: 'http://127.0.0.1:9',
    CHAIN_ID: String(CHAIN_ID),
    USDC_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
    DATABASE_URL: database.url,
    INDEXER_URL: indexer.url,
    CONFIRMATIONS: '2',
    // The receiver is on loopback, as on the devnet.
    WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
    METRICS_TOKEN: 'bench-metrics-token-0123456789',
    RATE_LIMIT_IP_PER_MINUTE: '100000',
    LOG_LEVEL: 'warn',
  });
}

let nextBlock = 10n;

/** A signed-in account with an endpoint on the receiver for credited deposits. */
async function accountWithEndpoint(api: RunningApi, receiver: WebhookReceiver) {
  const wallet = privateKeyToAccount(generatePrivateKey());
  const session = await signIn(api.url, wallet as unknown as PrivateKeyAccount, CHAIN_ID);
  const { createWebhookEndpoint } = await gqlData<{ createWebhookEndpoint: { secret: string } }>(
    api.url,
    `mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret } }`,
    { input: { url: receiver.url, events: ['DEPOSIT_CREDITED'] } },
    session,
  );
  return { wallet, secret: createWebhookEndpoint.secret };
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

async function latency(
  database: TestDatabase,
  indexer: FakeIndexer,
  receiver: WebhookReceiver,
): Promise<void> {
  const api = await startApi(apiConfig(database, indexer));
  try {
    const { wallet, secret } = await accountWithEndpoint(api, receiver);
    receiver.secret = secret;
    const fromCredit: number[] = [];
    const fromHead: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const block = nextBlock;
      nextBlock += 5n;
      indexer.transfers.push(makeTransfer(CHAIN_ID, wallet.address, 1_000_000n, block));
      const seen = receiver.received.length;
      const headAt = Date.now();
      indexer.setHead(block + 2n);
      await waitUntil('the webhook', () => receiver.received.length > seen, 10_000);
      const hook = receiver.received[seen];
      if (!hook?.payload || hook.verifyError) throw new Error(`unverified webhook: ${hook?.verifyError}`);
      const creditedAt = Date.parse(String(hook.payload.data.creditedAt));
      fromCredit.push(hook.receivedAt - creditedAt);
      fromHead.push(hook.receivedAt - headAt);
    }
    printTable('Webhook latency, one deposit at a time (receiver verifies with standardwebhooks)', [
      {
        from: 'deposit credited (creditedAt) -> webhook received',
        deposits: fromCredit.length,
        p50: ms(percentile(fromCredit, 50)),
        p95: ms(percentile(fromCredit, 95)),
        max: ms(Math.max(...fromCredit)),
      },
      {
        from: 'confirming head reported by the indexer -> webhook received',
        deposits: fromHead.length,
        p50: ms(percentile(fromHead, 50)),
        p95: ms(percentile(fromHead, 95)),
        max: ms(Math.max(...fromHead)),
      },
    ]);
  } finally {
    await api.close();
  }
}

async function throughput(
  database: TestDatabase,
  indexer: FakeIndexer,
  receiver: WebhookReceiver,
  replicas: number,
): Promise<void> {
  // Credit the backlog with no delivery worker running: the outbox fills.
  const crediting = await startApi(apiConfig(database, indexer), { webhookDelivery: false });
  const { wallet, secret } = await accountWithEndpoint(crediting, receiver);
  receiver.secret = secret;
  receiver.received.length = 0;
  const block = nextBlock;
  nextBlock += 5n;
  for (let i = 0; i < BACKLOG; i++) {
    indexer.transfers.push(makeTransfer(CHAIN_ID, wallet.address, 1_000_000n, block, i));
  }
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const before = await countDeliveries(client);
  indexer.setHead(block + 2n);
  await waitUntilAsync(
    'the backlog credited',
    async () => (await countDeliveries(client)) >= before + BACKLOG,
  );
  await client.end();
  await crediting.close();

  const started = Date.now();
  const apis: RunningApi[] = [];
  for (let i = 0; i < replicas; i++)
    apis.push(await startApi(apiConfig(database, indexer), { crediting: false }));
  try {
    await waitUntil('every webhook', () => receiver.received.length >= BACKLOG, 300_000);
    const seconds = (Date.now() - started) / 1000;
    const times = receiver.received.map((r) => r.receivedAt);
    const steady = (Math.max(...times) - Math.min(...times)) / 1000;
    const unverified = receiver.received.filter((r) => r.verifyError !== null).length;
    printTable(
      `Webhook delivery throughput on a backlog of ${BACKLOG} (${replicas} API replica${replicas > 1 ? 's' : ''}, the API started cold)`,
      [
        {
          deliveries: receiver.received.length,
          'distinct webhook-ids': new Set(receiver.received.map((r) => r.id)).size,
          unverified,
          'seconds from start': seconds.toFixed(2),
          'deliveries/s from start': (receiver.received.length / seconds).toFixed(0),
          'deliveries/s first to last': (receiver.received.length / steady).toFixed(0),
          'WEBHOOK_CONCURRENCY per replica': 16,
        },
      ],
    );
  } finally {
    for (const api of apis) await api.close();
  }
}

async function waitUntilAsync(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
