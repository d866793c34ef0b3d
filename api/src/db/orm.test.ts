import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTransfer, startFakeIndexer } from '../../test/support/fake-indexer.ts';
import { checkLedgerInvariants } from '../../test/support/ledger-invariants.ts';
import { getAccountByWallet } from '../modules/accounts/accounts.service.ts';
import { startCreditingWorker } from '../modules/deposits/crediting.worker.ts';
import { Deposit } from '../modules/deposits/deposits.entity.ts';
import { createIndexerClient } from '../modules/deposits/indexer.client.ts';
import { appendLedgerEntry } from '../modules/ledger/ledger.service.ts';
import { createOrm, migrateUp, type Orm } from './orm.ts';

/** The embedded mode: PGlite in memory, one session. PostgreSQL is covered by the module tests. */
let orm: Orm;

beforeAll(async () => {
  orm = await createOrm({});
  await migrateUp(orm);
});
afterAll(() => orm.close(true));

describe('PGlite', () => {
  it('runs concurrent transactions one after another instead of hanging', async () => {
    await orm.em.fork().execute('create table counter (n int not null)');
    await orm.em.fork().execute('insert into counter values (0)');
    const order: string[] = [];
    // Each transaction reads, yields to the event loop, then writes: interleaved on one session this
    // would lose updates (or nest BEGINs); serialized, every increment lands.
    const increments = Array.from({ length: 20 }, (_, i) =>
      orm.em.fork().transactional(async (tx) => {
        order.push(`begin ${i}`);
        const [row] = await tx.execute<{ n: number }[]>('select n from counter');
        await new Promise((resolve) => setTimeout(resolve, 2));
        await tx.execute('update counter set n = ?', [(row?.n ?? 0) + 1]);
        order.push(`commit ${i}`);
      }),
    );
    // A plain query issued meanwhile waits its turn rather than landing inside someone's transaction.
    const outside = orm.em.fork().execute<{ n: number }[]>('select n from counter');
    await Promise.all(increments);
    const [final] = await orm.em.fork().execute<{ n: number }[]>('select n from counter');
    expect(final?.n).toBe(20);
    expect((await outside)[0]?.n).toBeGreaterThanOrEqual(0);
    for (let i = 0; i < order.length; i += 2) {
      expect(order[i]?.replace('begin', '')).toBe(order[i + 1]?.replace('commit', ''));
    }
  });

  it('rolls a failed transaction back completely', async () => {
    const wallet = privateKeyToAddress(generatePrivateKey());
    await expect(
      orm.em.fork().transactional(async (tx) => {
        await tx.execute('insert into accounts (wallet_address) values (?)', [wallet]);
        throw new Error('crash mid-way');
      }),
    ).rejects.toThrow('crash mid-way');
    expect(await getAccountByWallet(orm.em.fork(), wallet)).toBeNull();
  });

  it('runs the credit flow: pending, credited once, replay-safe, debits refused below zero', async () => {
    const chainId = 31337;
    const indexer = await startFakeIndexer(chainId);
    try {
      const payer = privateKeyToAddress(generatePrivateKey());
      const transfer = makeTransfer(chainId, payer, 3_000_000n, 5n, 0);
      indexer.transfers.push(transfer, makeTransfer(chainId, payer, 1_000n, 6n, 2));
      indexer.setHead(6n);
      const worker = startCreditingWorker({
        orm,
        indexer: createIndexerClient(indexer.url),
        chainId,
        confirmations: 2,
        pollIntervalMs: 60_000,
      });
      await worker.runOnce();
      expect(await orm.em.fork().findOne(Deposit, { txHash: transfer.txHash })).toMatchObject({
        status: 'PENDING',
        confirmations: 1,
      });
      indexer.setHead(8n);
      await worker.runOnce();
      await worker.runOnce();
      await worker.stop();
      const account = await getAccountByWallet(orm.em.fork(), payer);
      expect(account?.balance).toBe(3_001_000n);
      await expect(
        appendLedgerEntry(orm.em.fork(), {
          accountId: account!.id,
          amount: -3_001_001n,
          reason: 'USAGE',
          referenceId: 'x',
        }),
      ).rejects.toThrow(/cannot apply/);
      await appendLedgerEntry(orm.em.fork(), {
        accountId: account!.id,
        amount: -1n,
        reason: 'USAGE',
        referenceId: 'y',
      });
      const report = await checkLedgerInvariants(orm.em.fork());
      expect(report.problems).toEqual([]);
      expect(report.creditedDeposits).toBe(2);

      // The throughput on PGlite, for the record (npm start's embedded mode).
      const payers = Array.from({ length: 200 }, () => privateKeyToAddress(generatePrivateKey()));
      for (let i = 0; i < 2_000; i++) {
        indexer.transfers.push(makeTransfer(chainId, payers[i % 200]!, 10n, 10n + BigInt(i >> 4), i & 15));
      }
      indexer.setHead(200n);
      const bulk = startCreditingWorker({
        orm,
        indexer: createIndexerClient(indexer.url),
        chainId,
        confirmations: 2,
        pollIntervalMs: 60_000,
      });
      const started = performance.now();
      await bulk.runOnce();
      const seconds = (performance.now() - started) / 1000;
      await bulk.stop();
      console.log(
        `[throughput] PGlite: 2,000 transfers credited in ${seconds.toFixed(2)} s = ${Math.round(2_000 / seconds)} credits/s`,
      );
      expect((await checkLedgerInvariants(orm.em.fork())).creditedDeposits).toBe(2_002);
    } finally {
      await indexer.close();
    }
  });
});
