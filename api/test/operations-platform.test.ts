/**
 * Operations against the real platform (anvil, Ponder, PostgreSQL): after a real payment `/metrics`
 * shows it credited with the chain's and the indexer's heads, and `/readyz` turns 503 when the indexer
 * process stops and 200 again once an indexer answers on its address again.
 */

import { mineBlocks } from '@chainmeter/testkit/anvil';
import { type Indexer, startIndexer } from '@chainmeter/testkit/indexer';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import { devPayer, type Platform, startPlatform } from './support/platform.ts';
import { sample, scrape } from './support/prometheus.ts';
import { waitFor } from './support/wait-for.ts';

let platform: Platform;
let api: RunningApi;
let replacement: { indexer: Indexer; database: TestDatabase } | null = null;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi({ METRICS_CACHE_MS: '0', READY_MAX_INDEXER_LAG_BLOCKS: '10' });
});

afterAll(async () => {
  await replacement?.indexer.stop();
  await replacement?.database.drop();
  await platform?.close();
});

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  return (await waitFor(what, check, timeoutMs)) as T;
}

describe('operations on the real platform', () => {
  it('a payment shows in /metrics: credited, heads equal, no crediting lag', async () => {
    const before = await scrape(api.url);
    const creditedBefore = sample(before, 'chainmeter_deposits', { status: 'CREDITED' }) ?? 0;
    const payer = devPayer(3);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 10_000_000n);
    const paid = await transferUsdc(
      platform.anvil.rpcUrl,
      platform.token,
      payer,
      platform.treasury,
      1_250_000n,
    );
    await mineBlocks(platform.anvil.rpcUrl, 2);

    const after = await until('the payment credited in /metrics', async () => {
      const text = await scrape(api.url);
      return sample(text, 'chainmeter_deposits', { status: 'CREDITED' }) === creditedBefore + 1
        ? text
        : undefined;
    });
    expect(sample(after, 'chainmeter_deposits_micro_usd', { status: 'CREDITED' })).toBe(1_250_000);
    expect(sample(after, 'chainmeter_crediting_lag_blocks')).toBe(0);
    expect(sample(after, 'chainmeter_crediting_cursor_block')).toBe(Number(paid.blockNumber));
    const chainHead = sample(after, 'chainmeter_chain_head_block') ?? -1;
    const indexerHead = sample(after, 'chainmeter_indexer_head_block') ?? -1;
    expect(indexerHead).toBeGreaterThanOrEqual(Number(paid.blockNumber) + 2);
    expect(chainHead).toBeGreaterThanOrEqual(indexerHead);
    expect(sample(after, 'chainmeter_indexer_lag_blocks')).toBe(chainHead - indexerHead);
    expect(sample(after, 'chainmeter_dependency_up', { dependency: 'chain' })).toBe(1);
  });

  it('/readyz is 503 naming the indexer while it is stopped, and 200 once one answers again', async () => {
    await until('ready', async () => ((await fetch(`${api.url}/readyz`)).status === 200 ? true : undefined));
    const port = platform.indexer.port;
    await platform.indexer.stop();

    const response = await fetch(`${api.url}/readyz`);
    expect(response.status).toBe(503);
    const body = (await response.json()) as { failing: string[]; checks: { indexer: { error: string } } };
    expect(body.failing).toEqual(['indexer']);
    expect(body.checks.indexer.error).toMatch(/indexer unreachable/);
    const metrics = await scrape(api.url);
    expect(sample(metrics, 'chainmeter_dependency_up', { dependency: 'indexer' })).toBe(0);
    expect(sample(metrics, 'chainmeter_dependency_up', { dependency: 'database' })).toBe(1);

    // A new indexer (its own database: it indexes the chain again from block 0) on the same address.
    const database = await createTestDatabase('cm_ponder_again');
    const indexer = await startIndexer({
      rpcUrl: platform.anvil.rpcUrl,
      chainId: platform.chainId,
      usdcAddress: platform.token,
      treasuryAddress: platform.treasury,
      databaseUrl: database.url,
      port,
    });
    replacement = { indexer, database };
    expect(indexer.port).toBe(port);
    await until('ready again', async () =>
      (await fetch(`${api.url}/readyz`)).status === 200 ? true : undefined,
    );
  });
});
