/**
 * The indexer end to end on real processes: anvil, `ponder start`, and a fresh PostgreSQL database
 * for this file. Each test waits on the indexer's own head, never on a sleep.
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, mineBlocks, reorg, setAutomine, startAnvil } from '@chainmeter/testkit/anvil';
import { type Indexer, serveIndexer, startIndexer, waitForIndexedBlock } from '@chainmeter/testkit/indexer';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { deployTestUsdc, mintUsdc, submitUsdcTransfer, transferUsdc } from '@chainmeter/testkit/token';
import { createPublicClient, getAddress, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransferJson } from './api/transfer-json.ts';

const treasury = devAccounts.treasury.address;
const [alice, bob, carol] = devAccounts.payers as [
  (typeof devAccounts.payers)[0],
  (typeof devAccounts.payers)[0],
  (typeof devAccounts.payers)[0],
];

let anvil: Anvil;
let database: TestDatabase;
let indexer: Indexer;
let usdc: `0x${string}`;
let otherToken: `0x${string}`;

const SCHEMA = 'indexer_test';
const indexerOptions = () => ({
  rpcUrl: anvil.rpcUrl,
  chainId: 31337,
  usdcAddress: usdc,
  treasuryAddress: treasury,
  databaseUrl: database.url,
  databaseSchema: SCHEMA,
});

async function getJson<T>(path: string, base = indexer.url): Promise<{ status: number; body: T }> {
  const response = await fetch(`${base}${path}`);
  return { status: response.status, body: (await response.json()) as T };
}

async function transfers(query = ''): Promise<TransferJson[]> {
  const { status, body } = await getJson<{ transfers: TransferJson[] }>(`/chainmeter/transfers${query}`);
  expect(status).toBe(200);
  return body.transfers;
}

async function chainHead(): Promise<bigint> {
  return createPublicClient({ transport: http(anvil.rpcUrl) }).getBlockNumber();
}

beforeAll(async () => {
  [anvil, database] = await Promise.all([startAnvil(), createTestDatabase('cm_indexer')]);
  usdc = await deployTestUsdc(anvil.rpcUrl);
  otherToken = await deployTestUsdc(anvil.rpcUrl);
  for (const payer of [alice, bob, carol]) {
    await mintUsdc(anvil.rpcUrl, usdc, payer.address, 1_000_000_000n);
    await mintUsdc(anvil.rpcUrl, otherToken, payer.address, 1_000_000_000n);
  }
  const started = Date.now();
  indexer = await startIndexer(indexerOptions());
  console.info(`ponder start (PostgreSQL) ready and caught up in ${Date.now() - started} ms`);
});

afterAll(async () => {
  await indexer?.stop();
  await anvil?.stop();
  await database?.drop();
});

describe('indexer on PostgreSQL', () => {
  it('stores a treasury transfer with the chain fields, and nothing else', async () => {
    // Noise first: a transfer to someone else, and the other token's transfer to the treasury.
    await transferUsdc(anvil.rpcUrl, usdc, alice, bob.address, 5n);
    const foreign = await transferUsdc(anvil.rpcUrl, otherToken, alice, treasury, 7n);

    const paid = await transferUsdc(anvil.rpcUrl, usdc, alice, treasury, 1_234_567n);
    const minedAt = Date.now();
    let rows: TransferJson[] = [];
    while (Date.now() - minedAt < 10_000) {
      rows = await transfers();
      if (rows.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    console.info(`mined -> visible in /transfers: ${Date.now() - minedAt} ms`);
    await waitForIndexedBlock(indexer.url, paid.blockNumber);

    const client = createPublicClient({ transport: http(anvil.rpcUrl) });
    const receipt = await client.getTransactionReceipt({ hash: paid.txHash });
    const block = await client.getBlock({ blockNumber: paid.blockNumber });
    expect(rows).toEqual([
      {
        chainId: 31337,
        txHash: paid.txHash,
        logIndex: receipt.logs[0]?.logIndex,
        blockNumber: paid.blockNumber.toString(),
        blockHash: block.hash,
        from: alice.address,
        to: treasury,
        value: '1234567',
        timestamp: block.timestamp.toString(),
      },
    ]);
    // Checksummed on the wire.
    expect(rows[0]?.from).toBe(getAddress(alice.address));
    expect(foreign.blockNumber).toBeLessThan(paid.blockNumber);
  });

  it('pages by (blockNumber, logIndex) cursor, toBlock and limit', async () => {
    // Three transfers in one block (log indexes 0, 1, 2), then one in the next block.
    await setAutomine(anvil.rpcUrl, false);
    try {
      for (const [payer, amount] of [
        [alice, 10n],
        [bob, 20n],
        [carol, 30n],
      ] as const) {
        await submitUsdcTransfer(anvil.rpcUrl, usdc, payer, treasury, amount);
      }
      await mineBlocks(anvil.rpcUrl, 1);
    } finally {
      await setAutomine(anvil.rpcUrl, true);
    }
    const sameBlock = await chainHead();
    const later = await transferUsdc(anvil.rpcUrl, usdc, bob, treasury, 40n);
    await waitForIndexedBlock(indexer.url, later.blockNumber);

    const all = await transfers();
    expect(all.map((t) => t.value)).toEqual(['1234567', '10', '20', '30', '40']);
    const inBlock = all.filter((t) => t.blockNumber === sameBlock.toString());
    expect(inBlock.map((t) => t.logIndex)).toEqual([0, 1, 2]);

    // Strictly after (block, logIndex 0): the rest of that block, then the next one.
    const afterFirst = await transfers(`?afterBlock=${sameBlock}&afterLogIndex=0`);
    expect(afterFirst.map((t) => t.value)).toEqual(['20', '30', '40']);
    // A cursor without a log index stands after the whole block.
    expect((await transfers(`?afterBlock=${sameBlock}`)).map((t) => t.value)).toEqual(['40']);
    // toBlock is inclusive.
    expect(
      (await transfers(`?afterBlock=${sameBlock}&afterLogIndex=0&toBlock=${sameBlock}`)).map((t) => t.value),
    ).toEqual(['20', '30']);
    // limit, then resume from the last row's cursor.
    const page1 = await transfers('?limit=2');
    expect(page1.map((t) => t.value)).toEqual(['1234567', '10']);
    const last = page1[1] as TransferJson;
    const page2 = await transfers(`?afterBlock=${last.blockNumber}&afterLogIndex=${last.logIndex}&limit=2`);
    expect(page2.map((t) => t.value)).toEqual(['20', '30']);
    expect(await transfers(`?afterBlock=${later.blockNumber}`)).toEqual([]);

    // The window: everything at or above a block.
    const { status, body } = await getJson<{ transfers: TransferJson[] }>(
      `/chainmeter/window?fromBlock=${sameBlock}`,
    );
    expect(status).toBe(200);
    expect(body.transfers.map((t) => t.value)).toEqual(['10', '20', '30', '40']);
  });

  it('advances /head over empty blocks', async () => {
    const before = BigInt((await getJson<{ blockNumber: string }>('/chainmeter/head')).body.blockNumber);
    await mineBlocks(anvil.rpcUrl, 5);
    const target = await chainHead();
    expect(target).toBeGreaterThanOrEqual(before + 5n);
    const head = await waitForIndexedBlock(indexer.url, target);
    const block = await createPublicClient({ transport: http(anvil.rpcUrl) }).getBlock({
      blockNumber: target,
    });
    expect(head).toEqual({
      chainId: 31337,
      blockNumber: target.toString(),
      blockHash: block.hash,
      timestamp: block.timestamp.toString(),
    });
  });

  it('forgets a transfer that a reorg removed', async () => {
    const doomed = await transferUsdc(anvil.rpcUrl, usdc, carol, treasury, 999n);
    await mineBlocks(anvil.rpcUrl, 2);
    await waitForIndexedBlock(indexer.url, doomed.blockNumber + 2n);
    expect((await transfers(`?afterBlock=${doomed.blockNumber - 1n}`)).map((t) => t.value)).toEqual(['999']);

    // Replace the transfer's block and the two above it, then move the head past the old height.
    await reorg(anvil.rpcUrl, 3);
    await mineBlocks(anvil.rpcUrl, 2);
    const head = await chainHead();
    const headBlock = await createPublicClient({ transport: http(anvil.rpcUrl) }).getBlock({
      blockNumber: head,
    });
    await waitForIndexedBlock(indexer.url, head, { blockHash: headBlock.hash });

    expect(await transfers(`?afterBlock=${doomed.blockNumber - 1n}`)).toEqual([]);
    const window = await getJson<{ transfers: TransferJson[] }>(
      `/chainmeter/window?fromBlock=${doomed.blockNumber - 1n}`,
    );
    expect(window.body.transfers).toEqual([]);
    expect((await transfers()).map((t) => t.value)).toEqual(['1234567', '10', '20', '30', '40']);
  });

  it('after a crash recovery, claims only the blocks whose transfers survived it', async () => {
    // A transfer inside Ponder's reorg window: its reorg table can still undo it.
    const recent = await transferUsdc(anvil.rpcUrl, usdc, alice, treasury, 4_321n);
    await mineBlocks(anvil.rpcUrl, 2);
    await waitForIndexedBlock(indexer.url, recent.blockNumber + 2n);
    const before = await transfers();
    await indexer.stop();
    try {
      await checkServedAfterCrashRecovery(recent.blockNumber, before);
    } finally {
      // Started again, Ponder re-indexes what it reverted.
      indexer = await startIndexer(indexerOptions());
    }
    expect(await transfers()).toEqual(before);
    const window = await getJson<{ indexedTo: string; transfers: TransferJson[] }>(
      `/chainmeter/window?fromBlock=${recent.blockNumber}`,
    );
    expect(window.body.transfers.map((t) => t.value)).toEqual(['4321']);
    expect(BigInt(window.body.indexedTo)).toBeGreaterThanOrEqual(recent.blockNumber + 2n);
  });

  it('answers bad query parameters with 400 and a JSON error', async () => {
    for (const path of [
      '/chainmeter/transfers?afterBlock=-1',
      '/chainmeter/transfers?afterBlock=abc',
      '/chainmeter/transfers?afterLogIndex=3',
      '/chainmeter/transfers?limit=0',
      '/chainmeter/transfers?limit=5001',
      '/chainmeter/transfers?toBlock=1.5',
      '/chainmeter/transfers?afterBlock=1e3',
      '/chainmeter/transfers?limit=10&unknown=1',
      '/chainmeter/window',
      '/chainmeter/window?fromBlock=',
      `/chainmeter/window?fromBlock=${'9'.repeat(30)}`,
    ]) {
      const { status, body } = await getJson<{ error?: string }>(path);
      expect({ path, status }).toEqual({ path, status: 400 });
      expect(typeof body.error).toBe('string');
    }
  });
});

/**
 * Puts the stopped indexer's schema in the state Ponder's crash recovery leaves, serves it with
 * `ponder serve`, and checks that the head and the window claim only what survived.
 */
async function checkServedAfterCrashRecovery(recentBlock: bigint, before: TransferJson[]) {
  // What `ponder start` does first when it finds its schema again (Ponder's `crashRecovery`, in one
  // transaction): revert every row its reorg table can undo and mark the app not ready, leaving
  // `latest_checkpoint` where it was until re-indexing moves it. `ponder serve` then shows that
  // state without indexing anything, for as long as the test needs.
  const [undoable] = await database.query<{ first: string | null }>(
    `select min(block_number)::text as first from "${SCHEMA}"."_reorg__transfer" where operation = 0`,
  );
  expect(undoable?.first).not.toBeNull();
  const firstReverted = BigInt(undoable?.first as string);
  expect(firstReverted).toBeLessThanOrEqual(recentBlock);
  // Ponder drops its triggers before reverting; replica mode keeps them quiet the same way.
  await database.query(`begin;
    set local session_replication_role = replica;
    delete from "${SCHEMA}"."transfer" where id in (select id from "${SCHEMA}"."_reorg__transfer" where operation = 0);
    delete from "${SCHEMA}"."_reorg__transfer";
    update "${SCHEMA}"."_ponder_meta" set value = jsonb_set(value, '{is_ready}', '0') where key = 'app';
    commit;`);
  const [checkpoint] = await database.query<{ latest: string }>(
    `select substring(latest_checkpoint, 27, 16)::bigint::text as latest from "${SCHEMA}"."_ponder_checkpoint"`,
  );
  expect(BigInt(checkpoint?.latest as string)).toBeGreaterThanOrEqual(recentBlock + 2n);

  const served = await serveIndexer({ ...indexerOptions(), port: indexer.port });
  try {
    const head = await getJson<{ blockNumber: string }>('/chainmeter/head', served.url);
    expect(head.status).toBe(200);
    // Not the stale latest checkpoint: only blocks whose rows are all still there.
    expect(BigInt(head.body.blockNumber)).toBeLessThan(firstReverted);
    const window = await getJson<{ indexedTo: string; transfers: TransferJson[] }>(
      '/chainmeter/window?fromBlock=0',
      served.url,
    );
    expect(window.status).toBe(200);
    expect(BigInt(window.body.indexedTo)).toBe(BigInt(head.body.blockNumber));
    const survivors = before.filter((t) => BigInt(t.blockNumber) < firstReverted);
    expect(window.body.transfers).toEqual(survivors);
  } finally {
    await served.stop();
  }
}
