/**
 * The same indexer on Ponder's embedded PGlite (what `npm start` uses without PONDER_DATABASE_URL),
 * including a restart on the same data directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, mineBlocks, startAnvil } from '@chainmeter/testkit/anvil';
import { type StartIndexerOptions, startIndexer, waitForIndexedBlock } from '@chainmeter/testkit/indexer';
import { deployTestUsdc, mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TransferJson } from './api/transfer-json.ts';

const payer = devAccounts.payers[0] as (typeof devAccounts.payers)[0];
const treasury = devAccounts.treasury.address;
let anvil: Anvil;
let dataDir: string;

beforeAll(async () => {
  anvil = await startAnvil();
  dataDir = mkdtempSync(join(tmpdir(), 'cm-ponder-pglite-'));
});

afterAll(async () => {
  await anvil?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function transfers(url: string): Promise<TransferJson[]> {
  const response = await fetch(`${url}/chainmeter/transfers`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { transfers: TransferJson[] }).transfers;
}

async function window(url: string, fromBlock: bigint) {
  const response = await fetch(`${url}/chainmeter/window?fromBlock=${fromBlock}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { indexedTo: string; transfers: TransferJson[] };
}

it('indexes on PGlite and keeps its data across a restart', async () => {
  const usdc = await deployTestUsdc(anvil.rpcUrl);
  await mintUsdc(anvil.rpcUrl, usdc, payer.address, 10_000_000n);
  // Paid before the indexer starts: it must find it when it catches up.
  const early = await transferUsdc(anvil.rpcUrl, usdc, payer, treasury, 1_000_000n);
  const options: StartIndexerOptions = {
    rpcUrl: anvil.rpcUrl,
    chainId: 31337,
    usdcAddress: usdc,
    treasuryAddress: treasury,
    dataDir: join(dataDir, 'pglite'),
    logFile: join(dataDir, 'ponder.log'),
  };

  let started = Date.now();
  let indexer = await startIndexer(options);
  console.info(`ponder start (PGlite) ready and caught up in ${Date.now() - started} ms`);
  try {
    expect((await transfers(indexer.url)).map((t) => t.txHash)).toEqual([early.txHash]);
    const late = await transferUsdc(anvil.rpcUrl, usdc, payer, treasury, 2_000_000n);
    await waitForIndexedBlock(indexer.url, late.blockNumber);
    expect((await transfers(indexer.url)).map((t) => t.value)).toEqual(['1000000', '2000000']);
  } finally {
    await indexer.stop();
  }

  // Blocks and a transfer while it is down; a restart on the same directory resumes.
  await mineBlocks(anvil.rpcUrl, 3);
  const whileDown = await transferUsdc(anvil.rpcUrl, usdc, payer, treasury, 3_000_000n);
  started = Date.now();
  indexer = await startIndexer(options);
  console.info(`ponder restart (PGlite, same data directory) caught up in ${Date.now() - started} ms`);
  try {
    const head = await waitForIndexedBlock(indexer.url, whileDown.blockNumber);
    expect((await transfers(indexer.url)).map((t) => t.value)).toEqual(['1000000', '2000000', '3000000']);
    // The window and the block it is complete up to, read in one statement, work on PGlite too.
    const all = await window(indexer.url, 0n);
    expect(all.transfers.map((t) => t.value)).toEqual(['1000000', '2000000', '3000000']);
    expect(BigInt(all.indexedTo)).toBeGreaterThanOrEqual(BigInt(head.blockNumber));
    const empty = await window(indexer.url, BigInt(all.indexedTo) + 1n);
    expect(empty.transfers).toEqual([]);
    expect(BigInt(empty.indexedTo)).toBeGreaterThanOrEqual(BigInt(all.indexedTo));
  } finally {
    await indexer.stop();
  }
});
