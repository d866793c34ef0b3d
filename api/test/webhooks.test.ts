/**
 * Webhooks through the public API: two API instances (two replicas) on one fresh PostgreSQL database, each
 * running crediting and webhook delivery, a real HTTP server speaking the indexer's contract that the test
 * drives, and real HTTP receivers on loopback that verify every request with `standardwebhooks`. Retries
 * run on a 50 ms base delay (WEBHOOK_RETRY_BASE_DELAY_MS), so no test waits on the production backoff.
 */
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiConfig } from '../src/env.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from './support/fake-indexer.ts';
import { gql, gqlData, signIn } from './support/graphql.ts';
import { sample, scrape } from './support/prometheus.ts';
import { waitFor } from './support/wait-for.ts';
import { webhookReceivers, webhookTestConfig } from './support/webhook-platform.ts';

const CHAIN_ID = 31337;

let database: TestDatabase;
let indexer: FakeIndexer;
let apiA: RunningApi;
let apiB: RunningApi;
const receivers = webhookReceivers();

function config(env: Record<string, string> = {}): ApiConfig {
  return webhookTestConfig(
    { databaseUrl: database.url, indexerUrl: indexer.url },
    // Long enough that a receiver that never answers is still holding its request when the test looks.
    { WEBHOOK_TIMEOUT_MS: '30000', ...env },
  );
}

beforeAll(async () => {
  database = await createTestDatabase('cm_webhooks');
  indexer = await startFakeIndexer(CHAIN_ID);
  apiA = await startApi(config());
  apiB = await startApi(config());
}, 60_000);

afterAll(async () => {
  await receivers.closeAll();
  await apiA?.close();
  await apiB?.close();
  await indexer?.close();
  await database?.drop();
});

const receiver = receivers.start;

async function user() {
  const wallet = privateKeyToAccount(generatePrivateKey());
  return { wallet, session: await signIn(apiA.url, wallet, CHAIN_ID) };
}

const CREATE = `mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url events createdAt } }
}`;

async function createEndpoint(session: string, url: string, events: string[], api = apiA) {
  const { createWebhookEndpoint } = await gqlData<{
    createWebhookEndpoint: { secret: string; endpoint: { id: string; url: string; events: string[] } };
  }>(api.url, CREATE, { input: { url, events } }, session);
  return createWebhookEndpoint;
}

interface DeliveryNode {
  id: string;
  webhookId: string;
  eventType: string;
  status: string;
  attempts: number;
  lastResponseCode: number | null;
  deliveredAt: string | null;
  attemptLog: { responseCode: number | null; latencyMs: number; error: string | null }[];
}

const DELIVERIES = `{ me { webhookEndpoints { id url deliveries(first: 100) { edges { node {
  id webhookId eventType status attempts lastResponseCode deliveredAt
  attemptLog { responseCode latencyMs error }
} } } } } }`;

async function deliveriesOf(session: string, api = apiA): Promise<DeliveryNode[]> {
  const data = await gqlData<{
    me: { webhookEndpoints: { deliveries: { edges: { node: DeliveryNode }[] } }[] };
  }>(api.url, DELIVERIES, {}, session);
  return data.me.webhookEndpoints.flatMap((endpoint) => endpoint.deliveries.edges.map((edge) => edge.node));
}

/** `waitFor` for checks that return a value or null: resolves with the value. */
async function until<T>(what: string, check: () => Promise<T | null>): Promise<T> {
  return (await waitFor(what, check)) as T;
}

let nextBlock = 10n;

/** A transfer from `wallet` mined in a new block; the indexer's head is moved to it (0 confirmations). */
function pay(wallet: `0x${string}`, value: bigint) {
  const block = nextBlock;
  nextBlock += 10n;
  const transfer = makeTransfer(CHAIN_ID, wallet, value, block);
  indexer.transfers.push(transfer);
  indexer.setHead(block);
  return transfer;
}

const confirm = (transfer: { blockNumber: bigint }) => indexer.setHead(transfer.blockNumber + 2n);

async function depositStatus(session: string, txHash: string): Promise<string | undefined> {
  const data = await gqlData<{ me: { deposits: { edges: { node: { txHash: string; status: string } }[] } } }>(
    apiA.url,
    '{ me { deposits(first: 100) { edges { node { txHash status } } } } }',
    {},
    session,
  );
  return data.me.deposits.edges.find((edge) => edge.node.txHash === txHash)?.node.status;
}

describe('deposit webhooks', () => {
  it('tells the receiver a deposit is pending, then credited, signed so that standardwebhooks verifies it', async () => {
    const hooks = await receiver();
    const { wallet, session } = await user();
    const created = await createEndpoint(session, hooks.url, ['DEPOSIT_PENDING', 'DEPOSIT_CREDITED']);
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(created.endpoint).toMatchObject({
      url: hooks.url,
      events: ['DEPOSIT_PENDING', 'DEPOSIT_CREDITED'],
    });
    hooks.secret = created.secret;

    const transfer = pay(wallet.address, 12_500_000n);
    await waitFor('deposit.pending received', () =>
      hooks.received.some((r) => r.payload?.type === 'deposit.pending'),
    );
    confirm(transfer);
    await waitFor('deposit.credited received', () =>
      hooks.received.some((r) => r.payload?.type === 'deposit.credited'),
    );

    expect(hooks.received.map((r) => r.verifyError)).toEqual([null, null]);
    const [pending, credited] = hooks.received.map((r) => r.payload);
    const deposits = await gqlData<{
      me: { walletAddress: string; deposits: { edges: { node: { id: string; creditedAt: string } }[] } };
    }>(apiA.url, '{ me { walletAddress deposits { edges { node { id creditedAt } } } } }', {}, session);
    const depositId = deposits.me.deposits.edges[0]?.node.id;
    expect(pending?.data).toMatchObject({
      depositId,
      status: 'PENDING',
      txHash: transfer.txHash,
      amount: '12500000',
    });
    expect(credited?.data).toMatchObject({
      depositId,
      status: 'CREDITED',
      txHash: transfer.txHash,
      logIndex: 0,
      blockNumber: transfer.blockNumber.toString(),
      chainId: CHAIN_ID,
      wallet: deposits.me.walletAddress,
      amountToken: '12500000',
      amount: '12500000',
      // 12.5 USDC = 12,500 credits
      credits: '12500',
      // The same instant in the same form as GraphQL's DateTime (milliseconds, `Z`).
      creditedAt: deposits.me.deposits.edges[0]?.node.creditedAt,
    });
    expect(credited?.data.creditedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(pending?.data.creditedAt).toBeNull();
    expect(Number.isNaN(Date.parse(String(credited?.timestamp)))).toBe(false);
    // Two events, two webhook-ids.
    expect(new Set(hooks.received.map((r) => r.id)).size).toBe(2);

    const log = await until('both delivered in the log', async () => {
      const rows = await deliveriesOf(session);
      return rows.length === 2 && rows.every((row) => row.status === 'DELIVERED') ? rows : null;
    });
    expect(log.map((row) => row.eventType)).toEqual(['DEPOSIT_CREDITED', 'DEPOSIT_PENDING']);
    for (const row of log) {
      expect(row).toMatchObject({ attempts: 1, lastResponseCode: 204 });
      expect(row.attemptLog).toHaveLength(1);
      expect(row.attemptLog[0]).toMatchObject({ responseCode: 204, error: null });
      expect(row.attemptLog[0]?.latencyMs).toBeGreaterThanOrEqual(0);
    }
    // The receiver saw the webhook-id the log shows.
    expect(hooks.received.map((r) => r.id).sort()).toEqual(log.map((row) => row.webhookId).sort());
  });

  it('tells only the event types an endpoint asked for, and no other account', async () => {
    const hooks = await receiver();
    const { wallet, session } = await user();
    const other = await user();
    hooks.secret = (await createEndpoint(session, hooks.url, ['DEPOSIT_CREDITED'])).secret;
    const otherHooks = await receiver();
    otherHooks.secret = (await createEndpoint(other.session, otherHooks.url, ['DEPOSIT_CREDITED'])).secret;

    const transfer = pay(wallet.address, 1_000_000n);
    confirm(transfer);
    await waitFor('credited received', () => hooks.received.length === 1);
    await waitFor(
      'deposit credited',
      async () => (await depositStatus(session, transfer.txHash)) === 'CREDITED',
    );
    expect(hooks.received[0]?.payload?.type).toBe('deposit.credited');
    expect(otherHooks.received).toEqual([]);
  });

  it('tells the receiver a pending deposit was reorged out', async () => {
    const hooks = await receiver();
    const { wallet, session } = await user();
    hooks.secret = (await createEndpoint(session, hooks.url, ['DEPOSIT_PENDING', 'DEPOSIT_REORGED'])).secret;
    const transfer = pay(wallet.address, 7_000_000n);
    await waitFor('deposit.pending', () => hooks.received.some((r) => r.payload?.type === 'deposit.pending'));
    // The block is rolled back: the transfer is gone from the indexer while still unconfirmed.
    indexer.transfers.splice(indexer.transfers.indexOf(transfer), 1);
    indexer.setHead(transfer.blockNumber + 1n);
    await waitFor('deposit.reorged', () => hooks.received.some((r) => r.payload?.type === 'deposit.reorged'));
    const reorged = hooks.received.find((r) => r.payload?.type === 'deposit.reorged');
    expect(reorged?.verifyError).toBeNull();
    expect(reorged?.payload?.data).toMatchObject({
      txHash: transfer.txHash,
      status: 'REORGED',
      amount: '7000000',
    });
    expect(await depositStatus(session, transfer.txHash)).toBe('REORGED');
  });

  it('tells the receiver a credited deposit was taken back by a reorg deeper than CONFIRMATIONS', async () => {
    const hooks = await receiver();
    const { wallet, session } = await user();
    hooks.secret = (await createEndpoint(session, hooks.url, ['DEPOSIT_CREDITED', 'DEPOSIT_REORGED'])).secret;
    const transfer = pay(wallet.address, 8_000_000n);
    confirm(transfer);
    await waitFor('deposit.credited', () =>
      hooks.received.some((r) => r.payload?.type === 'deposit.credited'),
    );
    // The credited transfer's block is rolled back (inside Ponder's 30-block window): the credit is reversed.
    indexer.transfers.splice(indexer.transfers.indexOf(transfer), 1);
    indexer.setHead(transfer.blockNumber + 3n);
    await waitFor('deposit.reorged', () => hooks.received.some((r) => r.payload?.type === 'deposit.reorged'));
    const reorged = hooks.received.find((r) => r.payload?.type === 'deposit.reorged');
    expect(reorged?.verifyError).toBeNull();
    expect(reorged?.payload?.data).toMatchObject({
      txHash: transfer.txHash,
      status: 'REORGED',
      amount: '8000000',
    });
    const me = await gqlData<{ me: { balance: string } }>(apiA.url, '{ me { balance } }', {}, session);
    expect(me.me.balance).toBe('0');
  });

  it('retries a receiver that fails first, with the same webhook-id, until it answers 2xx', async () => {
    const hooks = await receiver();
    hooks.answer = (index) => (index < 2 ? 500 : 200);
    const { wallet, session } = await user();
    hooks.secret = (await createEndpoint(session, hooks.url, ['DEPOSIT_CREDITED'])).secret;

    confirm(pay(wallet.address, 2_000_000n));
    await waitFor('three attempts', () => hooks.received.length >= 3);
    expect(hooks.received.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(new Set(hooks.received.map((r) => r.id)).size).toBe(1);
    expect(hooks.received.every((r) => r.verifyError === null)).toBe(true);
    const [delivery] = await until('delivered after the retries', async () => {
      const rows = await deliveriesOf(session);
      return rows[0]?.status === 'DELIVERED' ? rows : null;
    });
    expect(delivery).toMatchObject({ attempts: 3, lastResponseCode: 200 });
    expect(delivery?.attemptLog.map((a) => a.responseCode)).toEqual([200, 500, 500]);
  });

  it('gives up after the retry window: FAILED, with each attempt in the log', async () => {
    const database2 = await createTestDatabase('cm_webhooks_window');
    // Its own platform: a 1 s window, so the give-up happens within the test.
    const shortWindow = await startApi({
      ...config({ DATABASE_URL: database2.url, WEBHOOK_RETRY_WINDOW_MS: '1000' }),
      databaseUrl: database2.url,
    });
    try {
      const hooks = await receiver();
      hooks.answer = () => 503;
      const wallet = privateKeyToAccount(generatePrivateKey());
      const session = await signIn(shortWindow.url, wallet, CHAIN_ID);
      hooks.secret = (await createEndpoint(session, hooks.url, ['DEPOSIT_CREDITED'], shortWindow)).secret;
      confirm(pay(wallet.address, 3_000_000n));
      const [delivery] = await until('FAILED', async () => {
        const rows = await deliveriesOf(session, shortWindow);
        return rows[0]?.status === 'FAILED' ? rows : null;
      });
      expect(delivery?.attempts).toBeGreaterThanOrEqual(1);
      expect(delivery?.attemptLog).toHaveLength(delivery?.attempts ?? 0);
      expect(delivery?.attemptLog.every((a) => a.responseCode === 503)).toBe(true);
      expect(hooks.received).toHaveLength(delivery?.attempts ?? 0);
    } finally {
      await shortWindow.close();
      await database2.drop();
    }
  });

  it('a receiver that never answers does not hold crediting back', async () => {
    const hooks = await receiver();
    hooks.answer = () => 'hang';
    const { wallet, session } = await user();
    hooks.secret = (await createEndpoint(session, hooks.url, ['DEPOSIT_CREDITED'])).secret;

    const first = pay(wallet.address, 1_000_000n);
    confirm(first);
    await waitFor('the receiver holds a request open', () => hooks.open >= 1);
    // While that request hangs, more deposits are credited.
    const more = [pay(wallet.address, 2_000_000n), pay(wallet.address, 3_000_000n)];
    for (const transfer of more) confirm(transfer);
    for (const transfer of more) {
      await waitFor('credited', async () => (await depositStatus(session, transfer.txHash)) === 'CREDITED');
    }
    const balance = await gqlData<{ me: { balance: string } }>(apiA.url, '{ me { balance } }', {}, session);
    expect(balance.me.balance).toBe('6000');
    // The first request is still unanswered: crediting never waited on it.
    expect(hooks.received[0]?.status).toBe(0);
    expect(hooks.open).toBeGreaterThanOrEqual(1);
  });

  it("a receiver that hangs on many deliveries delays only its own account's webhooks", async () => {
    const slow = await receiver();
    slow.answer = () => 'hang';
    const alice = await user();
    slow.secret = (await createEndpoint(alice.session, slow.url, ['DEPOSIT_CREDITED'])).secret;
    // More deliveries than both replicas' 32 slots, all due at once: oldest first, without a cap per account
    // they would all be Alice's, and Bob's webhook would wait for their 30 s timeout.
    const block = nextBlock;
    nextBlock += 10n;
    for (let i = 0; i < 40; i++)
      indexer.transfers.push(makeTransfer(CHAIN_ID, alice.wallet.address, 1_000n, block, i));
    indexer.setHead(block + 2n);
    await waitFor('the hanging receiver holds requests open', () => slow.open >= 1);

    const fast = await receiver();
    const bob = await user();
    fast.secret = (await createEndpoint(bob.session, fast.url, ['DEPOSIT_CREDITED'])).secret;
    confirm(pay(bob.wallet.address, 5_000n));
    await waitFor("Bob's webhook", () => fast.received.some((hook) => hook.status === 204));
    // Alice's requests still hang (30 s), within her cap (8; two replicas claiming at the same instant may
    // each take it once).
    expect(slow.received.every((hook) => hook.status === 0)).toBe(true);
    expect(slow.open).toBeGreaterThanOrEqual(1);
    expect(slow.open).toBeLessThanOrEqual(16);
  });

  it('two replicas deliver each event once', async () => {
    const hooks = await receiver();
    const { wallet, session } = await user();
    hooks.secret = (await createEndpoint(session, hooks.url, ['DEPOSIT_PENDING', 'DEPOSIT_CREDITED'])).secret;
    const count = 30;
    const transfers = [];
    for (let i = 0; i < count; i++) {
      const transfer = makeTransfer(CHAIN_ID, wallet.address, 1_000_000n + BigInt(i), nextBlock, i);
      transfers.push(transfer);
      indexer.transfers.push(transfer);
    }
    indexer.setHead(nextBlock);
    await waitFor(
      '30 pending',
      () => hooks.received.filter((r) => r.payload?.type === 'deposit.pending').length >= count,
    );
    indexer.setHead(nextBlock + 2n);
    nextBlock += 10n;
    await waitFor(
      '30 credited',
      () => hooks.received.filter((r) => r.payload?.type === 'deposit.credited').length >= count,
    );
    const rows = await until('all delivered', async () => {
      const all = await deliveriesOf(session);
      return all.length === 2 * count && all.every((row) => row.status === 'DELIVERED') ? all : null;
    });
    // Every delivery went out once (one attempt), and the receiver saw each webhook-id once.
    expect(rows.every((row) => row.attempts === 1)).toBe(true);
    const ids = hooks.received.map((r) => r.id);
    expect(ids).toHaveLength(2 * count);
    expect(new Set(ids).size).toBe(2 * count);
    const credited = hooks.received.filter((r) => r.payload?.type === 'deposit.credited');
    expect(new Set(credited.map((r) => r.payload?.data.txHash))).toEqual(
      new Set(transfers.map((t) => t.txHash)),
    );
  });
});

describe('redelivery and the delivery log', () => {
  it('redelivers with the same webhook-id; only the owner can read or redeliver', async () => {
    const hooks = await receiver();
    const { wallet, session } = await user();
    const created = await createEndpoint(session, hooks.url, ['DEPOSIT_CREDITED']);
    hooks.secret = created.secret;
    confirm(pay(wallet.address, 4_000_000n));
    const [delivery] = await until('delivered', async () => {
      const rows = await deliveriesOf(session);
      return rows[0]?.status === 'DELIVERED' ? rows : null;
    });
    if (!delivery) throw new Error('no delivery');

    const REDELIVER = 'mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status webhookId } }';
    // Another account: nothing to see, nothing to redeliver or delete.
    const intruder = await user();
    expect(await deliveriesOf(intruder.session)).toEqual([]);
    const refused = await gql(apiA.url, REDELIVER, { id: delivery.id }, intruder.session);
    expect(refused.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const notDeleted = await gql(
      apiA.url,
      'mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }',
      { id: created.endpoint.id },
      intruder.session,
    );
    expect(notDeleted.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(hooks.received).toHaveLength(1);

    const again = await gqlData<{ redeliverWebhook: { id: string; status: string; webhookId: string } }>(
      apiB.url,
      REDELIVER,
      { id: delivery.id },
      session,
    );
    expect(again.redeliverWebhook).toMatchObject({
      id: delivery.id,
      status: 'PENDING',
      webhookId: delivery.webhookId,
    });
    await waitFor('redelivered', () => hooks.received.length === 2);
    expect(hooks.received.map((r) => r.id)).toEqual([delivery.webhookId, delivery.webhookId]);
    expect(hooks.received[1]?.verifyError).toBeNull();
    const [after] = await until('delivered again', async () => {
      const rows = await deliveriesOf(session);
      return rows[0]?.status === 'DELIVERED' && rows[0].attempts === 2 ? rows : null;
    });
    expect(after?.attemptLog).toHaveLength(2);

    const badId = await gql(apiA.url, REDELIVER, { id: 'not-a-uuid' }, session);
    expect(badId.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('an API key reads the log but cannot add or delete endpoints', async () => {
    const { session } = await user();
    const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
      apiA.url,
      'mutation { createApiKey(input: { name: "hooks" }) { secret } }',
      {},
      session,
    );
    expect(await deliveriesOf(createApiKey.secret)).toEqual([]);
    const refused = await gql(
      apiA.url,
      CREATE,
      { input: { url: 'http://127.0.0.1:1/x', events: ['DEPOSIT_CREDITED'] } },
      createApiKey.secret,
    );
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('deleting an endpoint stops what it still had to send and hides it', async () => {
    const hooks = await receiver();
    hooks.answer = () => 500;
    const { wallet, session } = await user();
    const created = await createEndpoint(session, hooks.url, ['DEPOSIT_CREDITED']);
    hooks.secret = created.secret;
    confirm(pay(wallet.address, 5_000_000n));
    await waitFor('a failed attempt', () => hooks.received.length >= 1);
    const deleted = await gqlData<{ deleteWebhookEndpoint: { id: string } }>(
      apiA.url,
      'mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }',
      { id: created.endpoint.id },
      session,
    );
    expect(deleted.deleteWebhookEndpoint.id).toBe(created.endpoint.id);
    const me = await gqlData<{ me: { webhookEndpoints: unknown[] } }>(
      apiA.url,
      '{ me { webhookEndpoints { id } } }',
      {},
      session,
    );
    expect(me.me.webhookEndpoints).toEqual([]);
    const seen = hooks.received.length;
    // A new credit for the account makes no delivery to the deleted endpoint.
    const transfer = pay(wallet.address, 1_000_000n);
    confirm(transfer);
    await waitFor('credited', async () => (await depositStatus(session, transfer.txHash)) === 'CREDITED');
    // Whatever attempt was in flight at the delete may still land; nothing after it.
    expect(hooks.received.length).toBeLessThanOrEqual(seen + 1);
  });
});

describe('endpoint validation', () => {
  let strict: RunningApi;
  let strictDatabase: TestDatabase;
  beforeAll(async () => {
    strictDatabase = await createTestDatabase('cm_webhooks_strict');
    strict = await startApi(
      { ...config({ WEBHOOK_ALLOW_PRIVATE_URLS: 'false' }), databaseUrl: strictDatabase.url },
      { crediting: false },
    );
  });
  afterAll(async () => {
    await strict?.close();
    await strictDatabase?.drop();
  });

  it('outside the devnet, refuses http and private, loopback and link-local targets', async () => {
    const wallet = privateKeyToAccount(generatePrivateKey());
    const session = await signIn(strict.url, wallet, CHAIN_ID);
    for (const url of [
      'http://203.0.113.10/hook',
      'https://127.0.0.1/hook',
      'https://localhost/hook',
      'https://[::1]/hook',
      'https://[::ffff:127.0.0.1]/hook',
      'https://169.254.169.254/latest/meta-data',
      'https://10.1.2.3/hook',
      'https://192.168.1.1/hook',
      'https://[fd00::1]/hook',
      'https://user:pw@203.0.113.10/hook',
      `https://203.0.113.10/${'a'.repeat(2_100)}`,
      'not a url',
      'ftp://203.0.113.10/hook',
    ]) {
      const result = await gql(strict.url, CREATE, { input: { url, events: ['DEPOSIT_CREDITED'] } }, session);
      expect({ url, code: result.errors?.[0]?.extensions?.code }).toEqual({ url, code: 'BAD_USER_INPUT' });
    }
    const noEvents = await gql(
      strict.url,
      CREATE,
      { input: { url: 'https://127.0.0.1/', events: [] } },
      session,
    );
    expect(noEvents.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const me = await gqlData<{ me: { webhookEndpoints: unknown[] } }>(
      strict.url,
      '{ me { webhookEndpoints { id } } }',
      {},
      session,
    );
    expect(me.me.webhookEndpoints).toEqual([]);
  });

  it('allows at most 10 endpoints per account, even created in parallel', async () => {
    const { session } = await user();
    const results = await Promise.all(
      Array.from({ length: 14 }, (_, i) =>
        gql(
          apiA.url,
          CREATE,
          { input: { url: `http://127.0.0.1:1/hook/${i}`, events: ['BALANCE_LOW'] } },
          session,
        ),
      ),
    );
    expect(results.filter((r) => !r.errors).length).toBe(10);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'BAD_USER_INPUT').length).toBe(4);
  });
});

describe('/metrics', () => {
  it('counts webhook attempts', async () => {
    const text = (await scrape(apiA.url)) + (await scrape(apiB.url));
    const delivered =
      (sample(await scrape(apiA.url), 'chainmeter_webhook_attempts_total', { outcome: 'delivered' }) ?? 0) +
      (sample(await scrape(apiB.url), 'chainmeter_webhook_attempts_total', { outcome: 'delivered' }) ?? 0);
    expect(delivered).toBeGreaterThan(0);
    expect(text).toContain('chainmeter_webhook_event_to_delivery_seconds_bucket');
  });
});
