/**
 * The payment loop end to end, through the public GraphQL API: real anvil, real Ponder, real PostgreSQL.
 * A wallet pays USDC to the treasury -> PENDING with live confirmation counts -> CREDITED exactly once,
 * with both subscriptions firing; replays, restarts, reorgs and look-alike transfers never credit twice
 * or wrongly.
 */

import { mineBlocks, reorg } from '@chainmeter/testkit/anvil';
import { deployTestUsdc, mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import { createTestClient, http } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import { eventually, gqlData, signIn, subscribe } from './support/graphql.ts';
import { connectApiDatabase, devPayer, type Platform, startPlatform } from './support/platform.ts';
import { countSql } from './support/sql-counter.ts';

const ME = `{ me { walletAddress balance
  deposits(first: 50) { edges { node { txHash logIndex status confirmations credits amountToken from creditedAt } } }
  ledger(first: 50) { edges { node { amount balanceAfter reason hash deposit { txHash } } } } } }`;

interface MeResult {
  me: {
    walletAddress: string;
    balance: string;
    deposits: { edges: { node: DepositJson }[] };
    ledger: {
      edges: {
        node: { amount: string; balanceAfter: string; reason: string; deposit: { txHash: string } | null };
      }[];
    };
  } | null;
}
interface DepositJson {
  txHash: string;
  logIndex: number;
  status: string;
  confirmations: number;
  credits: string;
  amountToken: string;
  from: string;
  creditedAt: string | null;
}

let platform: Platform;
let api: RunningApi;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi();
});

afterAll(async () => {
  await platform?.close();
});

function platformDatabase() {
  if (!platform.database) throw new Error('these tests run on PostgreSQL');
  return platform.database;
}

const usdc = (whole: number) => BigInt(Math.round(whole * 1_000_000));

/** `payer` sends `whole` test USDC to the treasury; resolves with the mined transfer. */
const pay = (payer: Parameters<typeof transferUsdc>[2], whole: number) =>
  transferUsdc(platform.anvil.rpcUrl, platform.token, payer, platform.treasury, usdc(whole));

describe('a payment', () => {
  it('goes PENDING with live confirmations, then CREDITED once, pushing both subscriptions', async () => {
    const payer = devPayer(0);
    const token = await signIn(api.url, payer, platform.chainId);
    const deposits = await subscribe<{ depositUpdated: DepositJson }>(
      api.url,
      'subscription { depositUpdated { txHash status confirmations credits } }',
      token,
    );
    const balances = await subscribe<{
      balanceUpdated: { balance: string; entry: { amount: string; reason: string } };
    }>(api.url, 'subscription { balanceUpdated { balance entry { amount reason } } }', token);

    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(100));
    const paid = await pay(payer, 1.5);

    const pending = await deposits.waitFor((e) => e.depositUpdated.txHash === paid.txHash);
    expect(pending.depositUpdated).toMatchObject({ status: 'PENDING', confirmations: 0, credits: '1500' });
    const before = await gqlData<MeResult>(api.url, ME, {}, token);
    expect(before.me?.balance).toBe('0');

    await mineBlocks(platform.anvil.rpcUrl, 1);
    await deposits.waitFor(
      (e) => e.depositUpdated.status === 'PENDING' && e.depositUpdated.confirmations === 1,
    );
    await mineBlocks(platform.anvil.rpcUrl, 1);
    const credited = await deposits.waitFor((e) => e.depositUpdated.status === 'CREDITED');
    expect(credited.depositUpdated).toMatchObject({ txHash: paid.txHash, confirmations: 2, credits: '1500' });
    const balance = await balances.waitFor(() => true);
    expect(balance.balanceUpdated).toEqual({ balance: '1500', entry: { amount: '1500', reason: 'DEPOSIT' } });

    const after = await gqlData<MeResult>(api.url, ME, {}, token);
    expect(after.me?.balance).toBe('1500');
    expect(after.me?.deposits.edges).toHaveLength(1);
    expect(after.me?.deposits.edges[0]?.node).toMatchObject({
      txHash: paid.txHash,
      status: 'CREDITED',
      amountToken: '1500000',
      from: payer.address,
    });
    expect(after.me?.ledger.edges.map((edge) => edge.node)).toEqual([
      expect.objectContaining({
        amount: '1500',
        balanceAfter: '1500',
        reason: 'DEPOSIT',
        deposit: { txHash: paid.txHash },
      }),
    ]);

    // More blocks change nothing: still one credit, no further balance events.
    await mineBlocks(platform.anvil.rpcUrl, 3);
    await eventually(async () => (api.services.indexedHead() ?? 0n) >= paid.blockNumber + 5n || undefined);
    expect((await gqlData<MeResult>(api.url, ME, {}, token)).me?.balance).toBe('1500');
    expect(balances.events).toHaveLength(1);
    await deposits.close();
    await balances.close();
  });

  it('credits a wallet that paid before it ever signed in, at its first sign-in', async () => {
    const payer = devPayer(1);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(10));
    const paid = await pay(payer, 2.25);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await eventually(async () =>
      (api.services.indexedHead() ?? 0n) >= paid.blockNumber + 2n ? true : undefined,
    );
    const token = await signIn(api.url, payer, platform.chainId);
    const me = await eventually(async () => {
      const result = await gqlData<MeResult>(api.url, ME, {}, token);
      return result.me?.balance === '2250' ? result.me : undefined;
    });
    expect(me.deposits.edges[0]?.node.status).toBe('CREDITED');
  });

  it('ignores a transfer to another address and a Transfer of another token to the treasury', async () => {
    const payer = devPayer(2);
    const token = await signIn(api.url, payer, platform.chainId);
    const otherToken = await deployTestUsdc(platform.anvil.rpcUrl);
    await mintUsdc(platform.anvil.rpcUrl, otherToken, payer.address, usdc(10));
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(10));
    await transferUsdc(platform.anvil.rpcUrl, otherToken, payer, platform.treasury, usdc(5));
    const elsewhere = await transferUsdc(
      platform.anvil.rpcUrl,
      platform.token,
      payer,
      devPayer(3).address,
      usdc(5),
    );
    await mineBlocks(platform.anvil.rpcUrl, 3);
    await eventually(async () =>
      (api.services.indexedHead() ?? 0n) >= elsewhere.blockNumber + 3n ? true : undefined,
    );
    // A sentinel payment after them, credited, proves the worker has looked past both.
    const sentinel = await pay(payer, 1);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    // One response reads the balance (with the credential) before the deposits: wait for both to show it.
    const me = await eventually(async () => {
      const { me } = await gqlData<MeResult>(api.url, ME, {}, token);
      const credited = me?.deposits.edges.some((e) => e.node.status === 'CREDITED');
      return me && credited && me.balance !== '0' ? me : undefined;
    });
    expect(me.deposits.edges.map((e) => e.node.txHash)).toEqual([sentinel.txHash]);
    expect(me.balance).toBe('1000');
  });

  it('marks a pending deposit REORGED when the chain drops it, and never credits it', async () => {
    const payer = devPayer(4);
    const token = await signIn(api.url, payer, platform.chainId);
    const deposits = await subscribe<{ depositUpdated: DepositJson }>(
      api.url,
      'subscription { depositUpdated { txHash status confirmations } }',
      token,
    );
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(10));
    const paid = await pay(payer, 3);
    await deposits.waitFor(
      (e) => e.depositUpdated.txHash === paid.txHash && e.depositUpdated.status === 'PENDING',
    );
    // Replace the transfer's block with an empty one, then build past the confirmation depth.
    await reorg(platform.anvil.rpcUrl, 1);
    await mineBlocks(platform.anvil.rpcUrl, 4);
    const reorged = await deposits.waitFor((e) => e.depositUpdated.status === 'REORGED');
    expect(reorged.depositUpdated.txHash).toBe(paid.txHash);
    const head = await eventually(async () => {
      const h = api.services.indexedHead();
      return h !== null && h >= paid.blockNumber + 4n ? h : undefined;
    });
    expect(head).toBeGreaterThanOrEqual(paid.blockNumber + 4n);
    const me = await gqlData<MeResult>(api.url, ME, {}, token);
    expect(me.me?.balance).toBe('0');
    expect(me.me?.ledger.edges).toHaveLength(0);
    expect(me.me?.deposits.edges.map((e) => e.node.status)).toEqual(['REORGED']);
    expect(deposits.events.some((e) => e.depositUpdated.status === 'CREDITED')).toBe(false);
    await deposits.close();
  });

  it("never shows one account another's data, nor pushes it another's events", async () => {
    const alice = devPayer(5);
    const bob = privateKeyToAccount(devPayer(6).privateKey);
    const aliceToken = await signIn(api.url, alice, platform.chainId);
    const bobToken = await signIn(api.url, bob, platform.chainId);
    const bobEvents = await subscribe<{ depositUpdated: DepositJson }>(
      api.url,
      'subscription { depositUpdated { txHash status } }',
      bobToken,
    );
    const aliceEvents = await subscribe<{ depositUpdated: DepositJson }>(
      api.url,
      'subscription { depositUpdated { txHash status } }',
      aliceToken,
    );
    await mintUsdc(platform.anvil.rpcUrl, platform.token, alice.address, usdc(10));
    const paid = await pay(alice, 4);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await aliceEvents.waitFor(
      (e) => e.depositUpdated.txHash === paid.txHash && e.depositUpdated.status === 'CREDITED',
    );
    const bobView = await gqlData<MeResult>(api.url, ME, {}, bobToken);
    expect(bobView.me?.walletAddress).toBe(bob.address);
    expect(bobView.me?.balance).toBe('0');
    expect(bobView.me?.deposits.edges).toEqual([]);
    expect(bobEvents.events).toEqual([]);
    await bobEvents.close();
    await aliceEvents.close();
  });
});

// The records behind a fragment spread inside an inline fragment: `me` must find them there too.
const ME_IN_FRAGMENTS = `query { me { ...Figures } }
  fragment Figures on Account { balance ... on Account { ...Records } }
  fragment Records on Account {
    deposits(first: 50) { edges { node { txHash status } } }
    ledger(first: 50) { edges { node { amount balanceAfter } } }
  }`;

describe('one response, one moment', () => {
  it.each([
    ['fields', ME],
    ['fragments', ME_IN_FRAGMENTS],
  ])(
    'shows a credit that lands while the response is read in both the balance and the deposit (%s)',
    async (_, document) => {
      const payer = privateKeyToAccount(generatePrivateKey());
      await createTestClient({ mode: 'anvil', transport: http(platform.anvil.rpcUrl) }).setBalance({
        address: payer.address,
        value: 10n ** 18n,
      });
      const token = await signIn(api.url, payer, platform.chainId);
      const { createApiKey } = await gqlData<{ createApiKey: { apiKey: { id: string }; secret: string } }>(
        api.url,
        'mutation { createApiKey(input: { name: "one moment" }) { apiKey { id } secret } }',
        {},
        token,
      );
      await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(10));
      const paid = await pay(payer, 2);

      // The key's lookup reads the account, then records the key's first use: with that row locked here, the
      // lookup's statement has read the balance (0) and waits, while the crediting worker goes on.
      const locker = await connectApiDatabase(platform);
      try {
        await locker.query('begin');
        await locker.query('select 1 from api_keys where id = $1 for update', [createApiKey.apiKey.id]);
        const response = gqlData<MeResult>(api.url, document, {}, createApiKey.secret);
        await eventually(
          async () => {
            const { rows } = await locker.query(
              `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
            );
            return rows.length > 0 ? true : undefined;
          },
          10_000,
          "the key's lookup waiting for its row",
        );
        await mineBlocks(platform.anvil.rpcUrl, 2);
        await eventually(
          async () => {
            const { rows } = await locker.query('select status from deposits where tx_hash = $1', [
              paid.txHash,
            ]);
            return rows[0]?.status === 'CREDITED' ? true : undefined;
          },
          30_000,
          'the deposit credited',
        );
        await locker.query('rollback');
        // 2 USDC = 2,000 credits, credited after the lookup read the balance and before the deposits were read.
        const { me } = await response;
        expect(me?.deposits.edges.map((edge) => [edge.node.txHash, edge.node.status])).toEqual([
          [paid.txHash, 'CREDITED'],
        ]);
        expect(me?.balance).toBe('2000');
        expect(me?.ledger.edges.map((edge) => [edge.node.amount, edge.node.balanceAfter])).toEqual([
          ['2000', '2000'],
        ]);
      } finally {
        await locker.end();
      }
    },
  );

  it('reads the account again only when the selection reads it by more than one statement', async () => {
    const token = await signIn(api.url, privateKeyToAccount(generatePrivateKey()), platform.chainId);
    const counter = await countSql(api);
    const statementsOf = async (document: string) => {
      counter.requests.length = 0;
      await gqlData(api.url, document, {}, token);
      return counter.requests.filter((request) => request.path === '/graphql').map((r) => r.statements);
    };
    const deposits = 'deposits(first: 5) { edges { node { status } } }';
    const ledger = 'ledger(first: 5) { edges { node { amount } } }';
    // 1: the session's lookup, which reads the account's row.
    expect(await statementsOf('{ me { id walletAddress balance debt lowBalanceThreshold } }')).toEqual([1]);
    // 2: the lookup and the one list.
    expect(await statementsOf(`{ me { id walletAddress ${ledger} } }`)).toEqual([2]);
    // 3: the lookup, the list and the account read again (unchanged: the operation does not run again).
    expect(await statementsOf(`{ me { balance ${ledger} } }`)).toEqual([3]);
    // 4: the lookup, two lists, the account again.
    expect(await statementsOf(`{ me { ${deposits} ${ledger} } }`)).toEqual([4]);
    expect(await statementsOf(`{ me { first: ${ledger} again: ${ledger} } }`)).toEqual([4]);
    // `me` twice: one operation, one moment.
    expect(await statementsOf(`{ figures: me { balance } entries: me { ${ledger} } }`)).toEqual([3]);
    expect(await statementsOf(`{ a: me { ${ledger} } b: me { ${ledger} } }`)).toEqual([4]);
  });
});

describe('exactly once', () => {
  it('credits nothing twice when the API restarts and replays the chain from the start', async () => {
    const payer = devPayer(7);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(10));
    const paid = await pay(payer, 1.25);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    const token = await signIn(api.url, payer, platform.chainId);
    await eventually(async () =>
      (await gqlData<MeResult>(api.url, ME, {}, token)).me?.balance === '1250' ? true : undefined,
    );
    const totalsBefore = await ledgerTotals(api);

    // Restart with the crediting cursor erased: the new process replays every confirmed transfer.
    await api.close();
    await platformDatabase().query('delete from crediting_cursors');
    api = await platform.startApi();
    await mineBlocks(platform.anvil.rpcUrl, 1);
    await eventually(async () => {
      const cursor = await platformDatabase().query('select block_number from crediting_cursors');
      return cursor.length > 0 && BigInt(cursor[0]?.block_number as string) >= paid.blockNumber
        ? true
        : undefined;
    });
    expect(await ledgerTotals(api)).toEqual(totalsBefore);
    expect((await gqlData<MeResult>(api.url, ME, {}, token)).me?.balance).toBe('1250');
  });
});

describe('restarts', () => {
  it('credits nothing twice across an indexer restart, and credits what was paid while it was down', async () => {
    const payer = devPayer(3);
    const token = await signIn(api.url, payer, platform.chainId);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(10));
    const totalsBefore = await ledgerTotals(api);
    await platform.indexer.stop();
    // Paid while the indexer is down: the API keeps serving and credits it once the indexer is back.
    const paid = await pay(payer, 0.5);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    expect((await gqlData<MeResult>(api.url, ME, {}, token)).me?.balance).toBe('0');
    await platform.restartIndexer();
    await mineBlocks(platform.anvil.rpcUrl, 1);
    const me = await eventually(async () => {
      const result = await gqlData<MeResult>(api.url, ME, {}, token);
      return result.me?.balance === '500' ? result.me : undefined;
    });
    expect(me.deposits.edges.map((edge) => edge.node.txHash)).toEqual([paid.txHash]);
    const totalsAfter = await ledgerTotals(api);
    const others = (rows: typeof totalsAfter) => rows.filter((row) => row.wallet_address !== payer.address);
    expect(others(totalsAfter)).toEqual(others(totalsBefore));
  });
});

/** Per account: entries, their sum and the stored balance; the invariant is sum == balance. */
async function ledgerTotals(api: RunningApi) {
  const rows = await api.services.orm.em
    .fork()
    .getConnection()
    .execute<{ wallet_address: string; entries: string; total: string; balance: string }[]>(
      `select a.wallet_address, count(l.id)::text as entries, coalesce(sum(l.amount), 0)::text as total,
              a.balance::text as balance
         from accounts a left join ledger_entries l on l.account_id = a.id
        group by a.id order by a.wallet_address`,
    );
  for (const row of rows) expect(row.total).toBe(row.balance);
  return rows;
}
