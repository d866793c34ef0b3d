import { checkAudit } from '@chainmeter/schema';
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { afterAll, describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import {
  blockHash,
  type FakeIndexer,
  makeTransfer,
  startFakeIndexer,
} from '../../../test/support/fake-indexer.ts';
import { checkLedgerInvariants } from '../../../test/support/ledger-invariants.ts';
import { listAllLedgerEntries } from '../../../test/support/records.ts';
import { waitFor } from '../../../test/support/wait-for.ts';
import { createOrm } from '../../db/orm.ts';
import { sqlFor } from '../../db/sql.ts';
import { Account } from '../accounts/accounts.entity.ts';
import { getAccountByWallet } from '../accounts/accounts.service.ts';
import { readAuditRecords } from '../audit/audit.service.ts';
import { appendLedgerEntry, listLedger } from '../ledger/ledger.service.ts';
import { depositIdOf } from '../ledger/ledger.store.ts';
import {
  type CreditingEvent,
  creditConfirmedTransfers,
  getCreditingCursor,
  syncPendingDeposits,
} from './crediting.service.ts';
import { startCreditingWorker } from './crediting.worker.ts';
import { Deposit } from './deposits.entity.ts';
import { getDepositsByIds, listDeposits } from './deposits.service.ts';
import { createIndexerClient, IndexerUnavailableError } from './indexer.client.ts';

const { orm, url } = await testOrmForFile();
const indexers: FakeIndexer[] = [];
afterAll(() => Promise.all(indexers.map((indexer) => indexer.close())));

// Each test runs on its own chain id, so cursors and deposits never collide between tests.
let nextChainId = 90_000;
async function setup(confirmations = 2, headRecheckMs?: number) {
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
    headRecheckMs,
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

  it('looks again at an unchanged head: a reorg at the same height whose rows the indexer had not rolled back yet', async () => {
    const { chainId, indexer, worker } = await setup(3, 50);
    const payer = wallet();
    const orphaned = makeTransfer(chainId, payer, 1_000n, 20n, 0);
    indexer.transfers.push(orphaned);
    indexer.setHead(21n);
    await worker.runOnce();
    // The reorg's new hash is seen (the RPC's) while the rows are still the old chain's.
    indexer.head.blockHash = blockHash(21n, 1);
    await worker.runOnce();
    expect(await depositOf(chainId, orphaned.txHash)).toMatchObject({ status: 'PENDING' });

    // Ponder rolls the rows back; the head it reports does not change. No block comes meanwhile.
    indexer.transfers.splice(0, 1);
    await waitFor(
      'the deposit the reorg removed to be REORGED',
      async () => {
        await worker.runOnce();
        return (await depositOf(chainId, orphaned.txHash))?.status === 'REORGED';
      },
      5_000,
    );
    await worker.stop();
    expect((await getAccountByWallet(orm.em.fork(), payer))?.balance ?? 0n).toBe(0n);
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

  it('credits nothing for the treasury paying itself: no deposit, no account, the cursor moves on', async () => {
    const { chainId, indexer, worker } = await setup(2);
    const payer = wallet();
    const self = makeTransfer(chainId, payer, 7_000_000n, 10n, 0);
    const treasury = self.to;
    indexer.transfers.push({ ...self, from: treasury }, makeTransfer(chainId, payer, 2_000n, 10n, 1));
    indexer.setHead(12n);
    await worker.runOnce();
    indexer.setHead(13n);
    await worker.runOnce();
    await worker.stop();
    const em = orm.em.fork();
    expect(await getAccountByWallet(em, treasury)).toBeNull();
    expect(await depositOf(chainId, self.txHash)).toBeNull();
    expect(await getCreditingCursor(em, chainId)).toEqual({ blockNumber: 10n, logIndex: 1 });
    expect((await getAccountByWallet(em, payer))?.balance).toBe(2_000n);
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

/** The audit of one test's chain: the fake indexer's transfers against these wallets' records. */
async function auditOf(chainId: number, indexer: FakeIndexer, wallets: string[]) {
  const records = await readAuditRecords(orm.em.fork());
  const accounts = records.accounts.filter((a) => wallets.includes(a.walletAddress));
  const ids = new Set(accounts.map((a) => a.accountId));
  return checkAudit({
    chainId,
    tokenAddress: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    treasuryAddress: '0x000000000000000000000000000000000000dA0a',
    confirmations: 2,
    fromBlock: 0n,
    head: indexer.head.blockNumber,
    transfers: indexer.transfers.filter((t) => t.blockNumber <= indexer.head.blockNumber),
    accounts,
    entries: records.entries.filter((e) => ids.has(e.accountId)),
  });
}

async function ledgerOf(accountId: string) {
  const entries = await listAllLedgerEntries(orm.em.fork(), accountId);
  return entries.map((e) => [e.reason, e.amount, e.balanceAfter, e.referenceId]);
}

describe('a reorg deeper than CONFIRMATIONS', () => {
  it('re-credits a transfer mined again with only what its reversal took: the rest was owed as a debt', async () => {
    const { chainId, indexer, worker } = await setup(2);
    const payer = wallet();
    const paid = makeTransfer(chainId, payer, 500n, 10n, 0);
    indexer.transfers.push(paid);
    indexer.setHead(12n);
    await worker.runOnce();
    const account = (await getAccountByWallet(orm.em.fork(), payer))!;
    const deposit = (await depositOf(chainId, paid.txHash))!;
    expect(account.balance).toBe(500n);
    // Spent 350 of the 500 (as an LLM call would).
    await appendLedgerEntry(orm.em.fork(), {
      accountId: account.id,
      amount: -350n,
      reason: 'USAGE',
      referenceId: 'spent-before-the-reorg',
    });

    // A reorg replaces block 10 and the two on top of it (3 deep, past CONFIRMATIONS = 2): the payment is
    // gone. The reversal takes the 150 left (500 - 350); the 350 spent is a debt.
    indexer.transfers.splice(0, 1);
    indexer.setHead(13n);
    await worker.runOnce();
    let now = (await getAccountByWallet(orm.em.fork(), payer))!;
    expect([now.balance, now.debt]).toEqual([0n, 350n]);
    expect(await depositOf(chainId, paid.txHash)).toMatchObject({ status: 'REORGED' });
    const audit = await auditOf(chainId, indexer, [payer]);
    expect(audit.discrepancies).toEqual([]);
    expect(audit.reversedCredits).toMatchObject([{ amount: 500n, owed: 350n }]);

    // The same transaction mined again in block 14, confirmed at 16: it gives back the 150 taken and
    // cancels the 350 owed. 500 paid - 350 spent = 150.
    indexer.transfers.push({ ...paid, blockNumber: 14n, blockHash: blockHash(14n, 1) });
    indexer.setHead(16n);
    await worker.runOnce();
    await worker.stop();
    now = (await getAccountByWallet(orm.em.fork(), payer))!;
    expect([now.balance, now.debt]).toEqual([150n, 0n]);
    expect(await ledgerOf(account.id)).toEqual([
      ['DEPOSIT', 500n, 500n, deposit.id],
      ['USAGE', -350n, 150n, 'spent-before-the-reorg'],
      ['ADJUSTMENT', -150n, 0n, deposit.id],
      ['ADJUSTMENT', 150n, 150n, deposit.id],
    ]);
    expect(await depositOf(chainId, paid.txHash)).toMatchObject({ status: 'CREDITED', blockNumber: 14n });
    // The ledger's page reads each entry's deposit with it (one statement): the DEPOSIT entry's and the
    // ADJUSTMENTs' that correct it, none for the USAGE; the same deposit the loader gives an entry read alone.
    const page = await listLedger(sqlFor(orm), account.id, { first: 10 });
    expect(page.entries.map((entry) => [entry.reason, entry.deposit?.id ?? null])).toEqual([
      ['ADJUSTMENT', deposit.id],
      ['ADJUSTMENT', deposit.id],
      ['USAGE', null],
      ['DEPOSIT', deposit.id],
    ]);
    const [loaded] = await getDepositsByIds(orm.em.fork(), [deposit.id]);
    expect(loaded).toMatchObject({ status: 'CREDITED', blockNumber: 14n, amount: 500n });
    for (const entry of page.entries) {
      expect(depositIdOf(entry)).toBe(entry.deposit?.id ?? null);
      if (entry.deposit) expect(entry.deposit).toEqual(loaded);
    }
    expect((await auditOf(chainId, indexer, [payer])).discrepancies).toEqual([]);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('pays a debt from the next credit before the balance, and a later re-mine gives all back', async () => {
    const { chainId, indexer, worker } = await setup(2);
    const payer = wallet();
    const first = makeTransfer(chainId, payer, 500n, 10n, 0);
    indexer.transfers.push(first);
    indexer.setHead(12n);
    await worker.runOnce();
    const account = (await getAccountByWallet(orm.em.fork(), payer))!;
    const firstDeposit = (await depositOf(chainId, first.txHash))!;
    await appendLedgerEntry(orm.em.fork(), {
      accountId: account.id,
      amount: -350n,
      reason: 'USAGE',
      referenceId: 'spent',
    });
    indexer.transfers.splice(0, 1);
    indexer.setHead(13n);
    await worker.runOnce();
    expect((await getAccountByWallet(orm.em.fork(), payer))?.debt).toBe(350n);

    // A new payment of 1,000 in block 15: 350 of it pays the debt (an ADJUSTMENT referencing the first
    // deposit), 650 reaches the balance.
    const second = makeTransfer(chainId, payer, 1_000n, 15n, 0);
    indexer.transfers.push(second);
    indexer.setHead(17n);
    await worker.runOnce();
    let now = (await getAccountByWallet(orm.em.fork(), payer))!;
    expect([now.balance, now.debt]).toEqual([650n, 0n]);
    const secondDeposit = (await depositOf(chainId, second.txHash))!;
    expect((await ledgerOf(account.id)).slice(3)).toEqual([
      ['DEPOSIT', 1_000n, 1_000n, secondDeposit.id],
      ['ADJUSTMENT', -350n, 650n, firstDeposit.id],
    ]);
    expect((await auditOf(chainId, indexer, [payer])).discrepancies).toEqual([]);

    // The first payment mined again in block 18: the reversal took 150 and the debt 350, so all 500
    // comes back. 1,500 paid - 350 spent = 1,150.
    indexer.transfers.push({ ...first, blockNumber: 18n, blockHash: blockHash(18n, 1) });
    indexer.setHead(20n);
    await worker.runOnce();
    await worker.stop();
    now = (await getAccountByWallet(orm.em.fork(), payer))!;
    expect([now.balance, now.debt]).toEqual([1_150n, 0n]);
    expect((await ledgerOf(account.id)).at(-1)).toEqual(['ADJUSTMENT', 500n, 1_150n, firstDeposit.id]);
    expect((await auditOf(chainId, indexer, [payer])).discrepancies).toEqual([]);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('pays a debt from what a call in flight gives back when it ends cheaper than its hold', async () => {
    const { chainId, indexer, worker } = await setup(2);
    const payer = wallet();
    const paid = makeTransfer(chainId, payer, 1_000n, 10n, 0);
    indexer.transfers.push(paid);
    indexer.setHead(12n);
    await worker.runOnce();
    const account = (await getAccountByWallet(orm.em.fork(), payer))!;
    const deposit = (await depositOf(chainId, paid.txHash))!;
    // A call in flight holds 600 of the 1,000 (as placeHold leaves it).
    await orm.em.fork().execute('update accounts set held = 600 where id = ?', [account.id]);
    // The reorg can take only the 400 not held: 600 owed.
    indexer.transfers.splice(0, 1);
    indexer.setHead(13n);
    await worker.runOnce();
    let now = (await getAccountByWallet(orm.em.fork(), payer))!;
    expect([now.balance, now.held, now.debt]).toEqual([600n, 600n, 600n]);

    // The call ends costing 100: the hold is released and 100 charged (as settlement leaves it), 500 of
    // the hold is the account's again, and pays the debt before anything else: 600 - 100 - 500 = 0, and
    // 100 still owed.
    await orm.em.fork().execute('update accounts set held = 0 where id = ?', [account.id]);
    await appendLedgerEntry(orm.em.fork(), {
      accountId: account.id,
      amount: -100n,
      reason: 'USAGE',
      referenceId: 'the-call',
    });
    indexer.setHead(14n);
    await worker.runOnce();
    await worker.stop();
    now = (await getAccountByWallet(orm.em.fork(), payer))!;
    expect([now.balance, now.held, now.debt]).toEqual([0n, 0n, 100n]);
    expect(await ledgerOf(account.id)).toEqual([
      ['DEPOSIT', 1_000n, 1_000n, deposit.id],
      ['ADJUSTMENT', -400n, 600n, deposit.id],
      ['USAGE', -100n, 500n, 'the-call'],
      ['ADJUSTMENT', -500n, 0n, deposit.id],
    ]);
    const audit = await auditOf(chainId, indexer, [payer]);
    expect(audit.discrepancies).toEqual([]);
    expect(audit.reversedCredits).toMatchObject([{ amount: 1_000n, owed: 100n }]);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('moves the cursor back to credit a new payment the reorg put below it', async () => {
    const { chainId, indexer, worker } = await setup(2);
    const alice = wallet();
    const bob = wallet();
    const alicePaid = makeTransfer(chainId, alice, 1_000n, 10n, 0);
    indexer.transfers.push(alicePaid);
    indexer.setHead(12n);
    await worker.runOnce();
    expect(await getCreditingCursor(orm.em.fork(), chainId)).toEqual({ blockNumber: 10n, logIndex: 0 });

    // A reorg from block 9: Bob's new payment lands in block 9, below the cursor, and Alice's transaction
    // is mined again in block 11.
    indexer.transfers.splice(0, 1, makeTransfer(chainId, bob, 2_000n, 9n, 0, 1), {
      ...alicePaid,
      blockNumber: 11n,
      blockHash: blockHash(11n, 1),
    });
    indexer.setHead(14n);
    await worker.runOnce();
    await worker.runOnce();
    await worker.stop();
    const em = orm.em.fork();
    const aliceAccount = (await getAccountByWallet(em, alice))!;
    const bobAccount = (await getAccountByWallet(em, bob))!;
    expect(bobAccount?.balance).toBe(2_000n);
    expect(aliceAccount.balance).toBe(1_000n);
    expect((await ledgerOf(aliceAccount.id)).map((e) => e[0])).toEqual(['DEPOSIT']);
    expect((await ledgerOf(bobAccount.id)).map((e) => e[0])).toEqual(['DEPOSIT']);
    expect(await getCreditingCursor(em, chainId)).toEqual({ blockNumber: 11n, logIndex: 0 });
    // Alice's credit stands; its record follows her transfer to block 11.
    expect(await depositOf(chainId, alicePaid.txHash)).toMatchObject({
      status: 'CREDITED',
      blockNumber: 11n,
      blockHash: blockHash(11n, 1),
    });
    expect((await auditOf(chainId, indexer, [alice, bob])).discrepancies).toEqual([]);
    expect((await checkLedgerInvariants(em)).problems).toEqual([]);
  });
});

describe('concurrency', () => {
  it('two services crediting the same transfers at once credit each exactly once', async () => {
    const chainId = nextChainId++;
    const other = await createOrm({ databaseUrl: url });
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
    const other = await createOrm({ databaseUrl: url });
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
