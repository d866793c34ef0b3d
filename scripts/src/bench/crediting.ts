/**
 * Benchmark of the payment loop on the devnet (issue: foundation and payment loop):
 * 1. deposit-to-credit latency: from the moment the block that completes the required confirmations is
 *    mined to the `balanceUpdated` event on a graphql-ws subscription, over 60 deposits;
 * 2. the crediting worker's throughput on a backlog of 10,000 confirmed transfers from 100 wallets, already
 *    indexed by Ponder, credited by a freshly started API.
 * Real anvil, real Ponder, real PostgreSQL, the API in-process. Not a test: it prints figures.
 */

import { gqlData, signIn, subscribe } from '@chainmeter/api/testing/graphql';
import { startPlatform } from '@chainmeter/api/testing/platform';
import { usdcAbi } from '@chainmeter/schema';
import { ANVIL_MNEMONIC } from '@chainmeter/testkit/accounts';
import { mineBlocks, setAutomine } from '@chainmeter/testkit/anvil';
import { waitForIndexedBlock } from '@chainmeter/testkit/indexer';
import { mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import pg from 'pg';
import { createTestClient, encodeFunctionData, http, type PrivateKeyAccount, publicActions } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { countCreditedDeposits } from './crediting.store.ts';
import { ms, percentile, printTable } from './stats.ts';

const LATENCY_SAMPLES = 50;
const BLOCK_TIME_MS = 1_000;
const BACKLOG = 10_000;
const WALLETS = 100;

export async function benchCrediting(): Promise<void> {
  const platform = await startPlatform({ confirmations: 2 });
  try {
    await latency(platform);
    await throughput(platform);
  } finally {
    await platform.close();
  }
}

async function latency(platform: Awaited<ReturnType<typeof startPlatform>>): Promise<void> {
  // The default CREDITING_POLL_MS (200 ms), as `npm start` runs it.
  const api = await platform.startApi();
  const payer = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 1 });
  await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 1_000_000_000n);
  const token = await signIn(api.url, payer as unknown as PrivateKeyAccount, platform.chainId);
  const balances = await subscribe<{ balanceUpdated: { balance: string } }>(
    api.url,
    'subscription { balanceUpdated { balance } }',
    token,
  );
  const samples: number[] = [];
  // Blocks one second apart, as on the devnet (DEVNET_BLOCK_TIME=1): mining them back to back measures
  // Ponder catching up on a burst of blocks (up to ~1 s more), not the steady-state path.
  const nextBlock = () => new Promise((resolve) => setTimeout(resolve, BLOCK_TIME_MS));
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    await transferUsdc(platform.anvil.rpcUrl, platform.token, payer, platform.treasury, 1_000n);
    await nextBlock();
    await mineBlocks(platform.anvil.rpcUrl, 1);
    const seen = balances.events.length;
    await nextBlock();
    await mineBlocks(platform.anvil.rpcUrl, 1); // this block completes the 2 confirmations
    const minedAt = performance.now();
    await balances.waitFor(() => balances.events.length > seen, 10_000);
    samples.push(performance.now() - minedAt);
  }
  await balances.close();
  const me = await gqlData<{ me: { balance: string } }>(api.url, '{ me { balance } }', {}, token);
  printTable(
    'Deposit-to-credit latency (confirming block mined -> balanceUpdated received), CONFIRMATIONS=2, 1 s blocks, CREDITING_POLL_MS=200',
    [
      {
        deposits: samples.length,
        p50: ms(percentile(samples, 50)),
        p95: ms(percentile(samples, 95)),
        max: ms(Math.max(...samples)),
        'target p95': '< 1000 ms (one block at 1 s)',
        'final balance': me.me.balance,
      },
    ],
  );
  await api.close();
}

async function throughput(platform: Awaited<ReturnType<typeof startPlatform>>): Promise<void> {
  const rpc = platform.anvil.rpcUrl;
  const test = createTestClient({ mode: 'anvil', transport: http(rpc) }).extend(publicActions);
  const wallets = Array.from({ length: WALLETS }, (_, i) =>
    mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 100 + i }),
  );
  for (const wallet of wallets) {
    await test.setBalance({ address: wallet.address, value: 10n ** 20n });
    await mintUsdc(rpc, platform.token, wallet.address, 1_000_000_000n);
  }
  const submitStart = performance.now();
  await setAutomine(rpc, false);
  const perWallet = BACKLOG / WALLETS;
  // Signed locally with fixed gas and nonce, sent raw: a few RPC calls per transfer instead of a dozen.
  for (let round = 0; round < perWallet; round++) {
    const raw = await Promise.all(
      wallets.map((wallet) =>
        wallet.signTransaction({
          type: 'legacy',
          chainId: platform.chainId,
          to: platform.token,
          data: encodeFunctionData({
            abi: usdcAbi,
            functionName: 'transfer',
            args: [platform.treasury, 1_000n + BigInt(round)],
          }),
          gas: 80_000n,
          gasPrice: 100_000_000_000n,
          nonce: round,
        }),
      ),
    );
    await Promise.all(raw.map((serializedTransaction) => test.sendRawTransaction({ serializedTransaction })));
    await mineBlocks(rpc, 1);
  }
  await mineBlocks(rpc, 3);
  await setAutomine(rpc, true);
  const head = await test.getBlockNumber();
  await waitForIndexedBlock(platform.indexer.url, head, { timeoutMs: 300_000 });
  const indexedAfter = (performance.now() - submitStart) / 1000;

  const client = new pg.Client({ connectionString: platform.database?.url });
  await client.connect();
  const countCredited = () => countCreditedDeposits(client);
  const before = await countCredited();
  const started = performance.now();
  const api = await platform.startApi({ CREDITING_POLL_MS: '50' });
  let credited = before;
  while (credited < before + BACKLOG && performance.now() - started < 300_000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    credited = await countCredited();
  }
  const seconds = (performance.now() - started) / 1000;
  await client.end();
  await api.close();
  printTable('Crediting throughput on a backlog of confirmed, indexed transfers (API started cold)', [
    {
      transfers: credited - before,
      wallets: WALLETS,
      seconds: seconds.toFixed(2),
      'credits/s': ((credited - before) / seconds).toFixed(0),
      target: '> 1000/s',
      'backlog built + indexed in': `${indexedAfter.toFixed(1)} s`,
    },
  ]);
}
