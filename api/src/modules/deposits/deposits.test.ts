import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestOrm } from '../../../test/support/database.ts';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from '../../../test/support/fake-indexer.ts';
import { checkLedgerInvariants } from '../../../test/support/ledger-invariants.ts';
import { waitFor } from '../../../test/support/wait-for.ts';
import { createOrm, type Orm } from '../../db/orm.ts';
import { Account } from '../accounts/accounts.entity.ts';
import { getAccountByWallet } from '../accounts/accounts.service.ts';
import { listAllLedgerEntries } from '../ledger/ledger.service.ts';
import {
  type CreditingEvent,
  creditConfirmedTransfers,
  getCreditingCursor,
  listDeposits,
  syncPendingDeposits,
} from './crediting.service.ts';
import { startCreditingWorker } from './crediting.worker.ts';
import { Deposit } from './deposits.entity.ts';
import { createIndexerClient, IndexerUnavailableError } from './indexer.client.ts';

let db: Awaited<ReturnType<typeof createTestOrm>>;
let orm: Orm;
const indexers: FakeIndexer[] = [];

beforeAll(async () => {
  db = await createTestOrm();
  orm = db.orm;
});
afterAll(async () => {
  await Promise.all(indexers.map((indexer) => indexer.close()));
  await db.close();
});

// Each test runs on its own chain id, so cursors and deposits never collide between tests.
let nextChainId = 90_000;
async function setup(confirmations = 2) {
  const chainId = nextChainId++;
  const indexer = await startFakeIndexer(chainId);
  indexers.push(indexer);
  const events: CreditingEvent[] = [];
  const worker = startCreditingWorker({
    orm,
    // The fake indexer shares this process: on a loaded machine a 5,000-transfer page can take seconds.
    indexer: createIndexerClient(indexer.url, { timeoutMs: 30_000 }),
    chainId,
    confirmations,
    // The tests drive rounds with runOnce; the background loop only has to not get in the way.
    pollIntervalMs: 60_000,
    onEvents: (batch) => {
      events.push(...batch);
    },
  });
  return { chainId, indexer, worker, events };
}

const wallet = () => privateKeyToAddress(generatePrivateKey());

async function depositOf(chainId: number, txHash: string) {
  return orm.em.fork().findOne(Deposit, { chainId, txHash });
}

describe('crediting', () => {
  it('credits a confirmed transfer once: account created, balance, DEPOSIT entry, hash chain, events', async () => {
    const { chainId, indexer, worker, events } = await setup(2);
    const alice = wallet();
    const bob = wallet();
    expect(await getAccountByWallet(orm.em.fork(), alice)).toBeNull();
    indexer.transfers.push(
      makeTransfer(chainId, alice, 5_000_000n, 10n, 0),
      makeTransfer(chainId, alice, 1_500_000n, 11n, 3),
      makeTransfer(chainId, bob, 42n, 11n, 4),
    );
    indexer.setHead(13n);
    await worker.runOnce();
    await worker.stop();

    const em = orm.em.fork();
    const aliceAccount = await getAccountByWallet(em, alice);
    const bobAccount = await getAccountByWallet(em, bob.toLowerCase());
    expect(aliceAccount?.balance).toBe(6_500_000n);
    expect(bobAccount?.balance).toBe(42n);
    const entries = await listAllLedgerEntries(em, aliceAccount!.id);
    expect(entries.map((e) => [e.seq, e.amount, e.balanceAfter, e.reason])).toEqual([
      [1, 5_000_000n, 5_000_000n, 'DEPOSIT'],
      [2, 1_500_000n, 6_500_000n, 'DEPOSIT'],
    ]);
    const first = await depositOf(chainId, indexer.transfers[0]!.txHash);
    expect(first).toMatchObject({
      status: 'CREDITED',
      amount: 5_000_000n,
      amountToken: 5_000_000n,
      confirmations: 3,
    });
    expect(first?.creditedAt).toBeInstanceOf(Date);
    expect(entries[0]?.deposit?.id).toBe(first?.id);
    expect(entries[0]?.referenceId).toBe(first?.id);
    expect(await getCreditingCursor(em, chainId)).toEqual({ blockNumber: 11n, logIndex: 4 });
    expect(events.filter((e) => e.type === 'depositUpdated')).toHaveLength(3);
    expect(
      events
        .filter((e) => e.type === 'balanceUpdated')
        .map((e) => e.accountId)
        .sort(),
    ).toEqual([aliceAccount!.id, bobAccount!.id].sort());
    expect((await checkLedgerInvariants(em)).problems).toEqual([]);
  });

  it('never credits twice: replayed transfers, a rewound cursor, a restarted worker', async () => {
    const { chainId, indexer, worker } = await setup(1);
    const payer = wallet();
    indexer.transfers.push(
      makeTransfer(chainId, payer, 700n, 5n, 0),
      makeTransfer(chainId, payer, 300n, 6n, 1),
    );
    indexer.setHead(7n);
    await worker.runOnce();
    const balance = async () => (await getAccountByWallet(orm.em.fork(), payer))?.balance;
    expect(await balance()).toBe(1_000n);

    // The same batch handed to the service again.
    const replay = await orm.em
      .fork()
      .transactional((tx) => creditConfirmedTransfers(tx, chainId, indexer.transfers, 7n));
    expect(replay).toEqual([]);
    // A lost cursor (a restore, a bug): the worker re-reads everything and credits nothing.
    await orm.em.fork().execute('delete from crediting_cursors where chain_id = ?', [chainId]);
    await worker.runOnce();
    await worker.stop();
    const restarted = startCreditingWorker({
      orm,
      indexer: createIndexerClient(indexer.url),
      chainId,
      confirmations: 1,
      pollIntervalMs: 60_000,
    });
    await restarted.runOnce();
    await restarted.stop();
    expect(await balance()).toBe(1_000n);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('shows a deposit PENDING with its confirmations, then CREDITED', async () => {
    const { chainId, indexer, worker, events } = await setup(3);
    const payer = wallet();
    const transfer = makeTransfer(chainId, payer, 2_000_000n, 10n, 0);
    indexer.transfers.push(transfer);
    indexer.setHead(10n);
    await worker.runOnce();
    expect(await depositOf(chainId, transfer.txHash)).toMatchObject({ status: 'PENDING', confirmations: 0 });
    const account = await getAccountByWallet(orm.em.fork(), payer);
    expect(account?.balance).toBe(0n);
    expect(events).toEqual([
      { type: 'depositUpdated', accountId: account!.id, depositId: expect.any(String) },
    ]);

    indexer.setHead(12n);
    await worker.runOnce();
    expect(await depositOf(chainId, transfer.txHash)).toMatchObject({ status: 'PENDING', confirmations: 2 });
    expect(events).toHaveLength(2);
    // An unchanged head is a no-op round: no event.
    await worker.runOnce();
    expect(events).toHaveLength(2);

    indexer.setHead(13n);
    await worker.runOnce();
    await worker.stop();
    expect(await depositOf(chainId, transfer.txHash)).toMatchObject({ status: 'CREDITED', confirmations: 3 });
    expect((await getAccountByWallet(orm.em.fork(), payer))?.balance).toBe(2_000_000n);
    expect(events.slice(2).map((e) => e.type)).toEqual(['depositUpdated', 'balanceUpdated']);
  });

  it('marks a pending transfer that left the window REORGED and never credits it; a re-mined one moves', async () => {
    const { chainId, indexer, worker } = await setup(3);
    const payer = wallet();
    const orphaned = makeTransfer(chainId, payer, 1_000n, 20n, 0);
    const remined = makeTransfer(chainId, payer, 2_000n, 20n, 1);
    indexer.transfers.push(orphaned, remined);
    indexer.setHead(21n);
    await worker.runOnce();
    expect(await depositOf(chainId, orphaned.txHash)).toMatchObject({ status: 'PENDING', confirmations: 1 });

    // Reorg at block 20: the first transfer is gone, the second lands in the new block 21.
    indexer.transfers.splice(0, 2, { ...remined, blockNumber: 21n, blockHash: `0x${'b'.repeat(64)}` });
    indexer.setHead(21n);
    indexer.head.blockHash = `0x${'c'.repeat(64)}`;
    await worker.runOnce();
    expect(await depositOf(chainId, orphaned.txHash)).toMatchObject({ status: 'REORGED' });
    expect(await depositOf(chainId, remined.txHash)).toMatchObject({
      status: 'PENDING',
      blockNumber: 21n,
      blockHash: `0x${'b'.repeat(64)}`,
      confirmations: 0,
    });

    indexer.setHead(30n);
    await worker.runOnce();
    await worker.stop();
    expect(await depositOf(chainId, orphaned.txHash)).toMatchObject({ status: 'REORGED', creditedAt: null });
    expect(await depositOf(chainId, remined.txHash)).toMatchObject({ status: 'CREDITED' });
    expect((await getAccountByWallet(orm.em.fork(), payer))?.balance).toBe(2_000n);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('takes nothing back while the indexer re-indexes after a crash, only what the chain really lost', async () => {
    const { chainId, indexer, worker, events } = await setup(2);
    const payer = wallet();
    const early = makeTransfer(chainId, payer, 1_000n, 10n, 0);
    const recent = makeTransfer(chainId, payer, 2_000n, 20n, 0);
    const pending = makeTransfer(chainId, payer, 4_000n, 25n, 0);
    indexer.transfers.push(early, recent, pending);
    indexer.setHead(25n);
    await worker.runOnce();
    expect(await depositOf(chainId, recent.txHash)).toMatchObject({ status: 'CREDITED' });
    expect(await depositOf(chainId, pending.txHash)).toMatchObject({ status: 'PENDING' });
    const credited = events.length;

    // Ponder restarted between this round's /head and /window: its rows now end at block 15.
    indexer.setHead(26n);
    indexer.windowIndexedTo = 15n;
    await worker.runOnce();
    expect(await depositOf(chainId, recent.txHash)).toMatchObject({ status: 'CREDITED' });
    expect(await depositOf(chainId, pending.txHash)).toMatchObject({ status: 'PENDING' });
    expect(events).toHaveLength(credited);
    // The same head once the rows are back is looked at again, and is still fine.
    indexer.windowIndexedTo = null;
    await worker.runOnce();
    expect(await depositOf(chainId, pending.txHash)).toMatchObject({ status: 'PENDING', confirmations: 1 });
    expect((await getAccountByWallet(orm.em.fork(), payer))?.balance).toBe(3_000n);

    // A transfer the chain really lost, in blocks the window covers: its credit is taken back.
    indexer.transfers.splice(indexer.transfers.indexOf(recent), 1);
    indexer.setHead(27n);
    await worker.runOnce();
    await worker.stop();
    expect(await depositOf(chainId, recent.txHash)).toMatchObject({ status: 'REORGED' });
    expect(await depositOf(chainId, pending.txHash)).toMatchObject({ status: 'CREDITED' });
    expect((await getAccountByWallet(orm.em.fork(), payer))?.balance).toBe(5_000n);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('survives the indexer being down and credits once it is back', async () => {
    const { chainId, indexer, worker } = await setup(1);
    await worker.stop();
    indexer.down = true;
    await expect(worker.runOnce()).rejects.toBeInstanceOf(IndexerUnavailableError);
    const down = createIndexerClient('http://127.0.0.1:9', { timeoutMs: 500 });
    await expect(down.head()).rejects.toThrow(/indexer unreachable/);

    const payer = wallet();
    const looping = startCreditingWorker({
      orm,
      indexer: createIndexerClient(indexer.url),
      chainId,
      confirmations: 1,
      pollIntervalMs: 20,
    });
    const before = indexer.requests;
    await waitFor('the worker to retry against the down indexer', () => indexer.requests >= before + 3);
    indexer.transfers.push(makeTransfer(chainId, payer, 77n, 3n, 0));
    indexer.setHead(4n);
    indexer.down = false;
    await waitFor('the credit after the indexer came back', async () => {
      return (await getAccountByWallet(orm.em.fork(), payer))?.balance === 77n;
    });
    await looping.stop();
  });

  it('leaves nothing half-done when the transaction fails after the crediting statements', async () => {
    const chainId = nextChainId++;
    const payer = wallet();
    const transfers = [makeTransfer(chainId, payer, 9_000n, 3n, 0)];
    await expect(
      orm.em.fork().transactional(async (tx) => {
        const events = await creditConfirmedTransfers(tx, chainId, transfers, 10n);
        expect(events).toHaveLength(2);
        throw new Error('process killed before commit');
      }),
    ).rejects.toThrow('process killed before commit');
    const em = orm.em.fork();
    expect(await getAccountByWallet(em, payer)).toBeNull();
    expect(await depositOf(chainId, transfers[0]!.txHash)).toBeNull();
    expect(await getCreditingCursor(em, chainId)).toBeNull();
    // The retry credits it, once.
    await orm.em.fork().transactional((tx) => creditConfirmedTransfers(tx, chainId, transfers, 10n));
    await orm.em.fork().transactional((tx) => creditConfirmedTransfers(tx, chainId, transfers, 10n));
    expect((await getAccountByWallet(orm.em.fork(), payer))?.balance).toBe(9_000n);
  });

  it('does not mark a pending deposit REORGED when its transfer is confirmed but still on chain', async () => {
    const chainId = nextChainId++;
    const payer = wallet();
    const transfer = makeTransfer(chainId, payer, 5n, 10n, 0);
    await orm.em.fork().transactional((tx) => syncPendingDeposits(tx, chainId, [transfer], 10n, 3));
    await orm.em.fork().transactional((tx) => syncPendingDeposits(tx, chainId, [transfer], 14n, 3));
    expect(await depositOf(chainId, transfer.txHash)).toMatchObject({ status: 'PENDING' });
    await orm.em.fork().transactional((tx) => syncPendingDeposits(tx, chainId, [], 14n, 3));
    expect(await depositOf(chainId, transfer.txHash)).toMatchObject({ status: 'REORGED' });
  });

  it('pages deposits newest first by keyset', async () => {
    const { chainId, indexer, worker } = await setup(1);
    const payer = wallet();
    for (let i = 0; i < 5; i++)
      indexer.transfers.push(makeTransfer(chainId, payer, 10n + BigInt(i), 40n + BigInt(i), i));
    indexer.setHead(50n);
    await worker.runOnce();
    await worker.stop();
    const account = await getAccountByWallet(orm.em.fork(), payer);
    const page1 = await listDeposits(orm.em.fork(), account!.id, { first: 2 });
    expect(page1.entries.map((d) => d.blockNumber)).toEqual([44n, 43n]);
    expect(page1.hasNextPage).toBe(true);
    const page2 = await listDeposits(orm.em.fork(), account!.id, { first: 2, after: page1.endCursor });
    expect(page2.entries.map((d) => d.blockNumber)).toEqual([42n, 41n]);
    const page3 = await listDeposits(orm.em.fork(), account!.id, { first: 2, after: page2.endCursor });
    expect(page3.entries.map((d) => d.blockNumber)).toEqual([40n]);
    expect(page3.hasNextPage).toBe(false);
  });
});

describe('concurrency', () => {
  it('two services crediting the same transfers at once credit each exactly once', async () => {
    const chainId = nextChainId++;
    const other = await createOrm({ databaseUrl: db.url });
    try {
      const payers = Array.from({ length: 10 }, wallet);
      const transfers = Array.from({ length: 400 }, (_, i) =>
        makeTransfer(chainId, payers[i % payers.length]!, BigInt(1_000 + i), 100n + BigInt(i), 0),
      );
      // No worker lock here: the guarded upsert alone must make the second credit a no-op.
      const results = await Promise.all(
        [orm, other, orm, other].map((instance) =>
          instance.em.fork().transactional((tx) => creditConfirmedTransfers(tx, chainId, transfers, 1_000n)),
        ),
      );
      const deposits = results.flat().filter((e) => e.type === 'depositUpdated');
      expect(deposits).toHaveLength(400);
      expect(new Set(deposits.map((e) => (e as { depositId: string }).depositId)).size).toBe(400);
      const total = transfers.reduce((sum, t) => sum + t.value, 0n);
      const [row] = await orm.em
        .fork()
        .execute<{ sum: string }[]>(
          'select sum(e.amount)::text as sum from ledger_entries e join deposits d on d.id = e.deposit_id where d.chain_id = ?',
          [chainId],
        );
      expect(BigInt(row!.sum)).toBe(total);
      expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
    } finally {
      await other.close(true);
    }
  });

  it('two workers (two ORM instances) running rounds over one backlog credit it exactly once', async () => {
    const chainId = nextChainId++;
    const indexer = await startFakeIndexer(chainId);
    indexers.push(indexer);
    const other = await createOrm({ databaseUrl: db.url });
    try {
      const payers = Array.from({ length: 25 }, wallet);
      for (let i = 0; i < 3_000; i++) {
        indexer.transfers.push(
          makeTransfer(chainId, payers[i % 25]!, BigInt(1 + (i % 97)), 1n + BigInt(i >> 3), i & 7),
        );
      }
      indexer.setHead(1_000n);
      const workers = [orm, other].map((instance) =>
        startCreditingWorker({
          orm: instance,
          indexer: createIndexerClient(indexer.url),
          chainId,
          confirmations: 2,
          pollIntervalMs: 60_000,
          batchSize: 250,
        }),
      );
      const credited = async () => {
        const [row] = await orm.em
          .fork()
          .execute<{ n: number }[]>(
            `select count(*)::int as n from deposits where chain_id = ? and status = 'CREDITED'`,
            [chainId],
          );
        return row!.n;
      };
      // Both run rounds back to back, concurrently, until the backlog is done.
      await Promise.all(
        workers.map(async (worker) => {
          const deadline = Date.now() + 30_000;
          while ((await credited()) < 3_000 && Date.now() < deadline) await worker.runOnce();
        }),
      );
      await Promise.all(workers.map((w) => w.stop()));
      expect(await credited()).toBe(3_000);
      const em = orm.em.fork();
      const accounts = await em.find(Account, { walletAddress: { $in: payers } });
      const expected = new Map<string, bigint>();
      for (const t of indexer.transfers) expected.set(t.from, (expected.get(t.from) ?? 0n) + t.value);
      for (const account of accounts) expect(account.balance).toBe(expected.get(account.walletAddress));
      const report = await checkLedgerInvariants(em);
      expect(report.problems).toEqual([]);
    } finally {
      await other.close(true);
    }
  });
});

describe('throughput', () => {
  it('credits a backlog of 10,000 confirmed transfers (figure printed)', async () => {
    const { chainId, indexer, worker } = await setup(2);
    const payers = Array.from({ length: 1_000 }, wallet);
    for (let i = 0; i < 10_000; i++) {
      indexer.transfers.push(
        makeTransfer(chainId, payers[i % 1_000]!, 1_000_000n, 1n + BigInt(i >> 4), i & 15),
      );
    }
    indexer.setHead(700n);
    const started = performance.now();
    await worker.runOnce();
    const seconds = (performance.now() - started) / 1000;
    await worker.stop();
    const [row] = await orm.em
      .fork()
      .execute<{ n: number }[]>(
        `select count(*)::int as n from deposits where chain_id = ? and status = 'CREDITED'`,
        [chainId],
      );
    expect(row?.n).toBe(10_000);
    console.log(
      `[throughput] PostgreSQL: 10,000 transfers credited in ${seconds.toFixed(2)} s = ${Math.round(10_000 / seconds)} credits/s (worker round incl. HTTP)`,
    );
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });
});
