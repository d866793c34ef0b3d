/**
 * Crediting against a hostile chain RPC. Ponder reads the chain through a JSON-RPC proxy
 * (`@chainmeter/testkit/rpc-proxy`) that answers the way a load-balanced RPC whose nodes disagree does: a
 * head that lags or goes backwards, RPC errors and stalls, a log missing from `eth_getLogs`. Credits must
 * follow the chain, not the RPC: a transfer still on chain is never taken back, one a reorg removed is.
 * Real anvil, real Ponder, real PostgreSQL; the API's own RPC (the audit's) is anvil, honest.
 */
import { mineBlocks } from '@chainmeter/testkit/anvil';
import {
  delayedCalls,
  laggingHead,
  type RpcCall,
  type RpcProxy,
  startRpcProxy,
} from '@chainmeter/testkit/rpc-proxy';
import { type MinedTransaction, mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import type { PrivateKeyAccount } from 'viem';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIndexerClient } from '../src/modules/deposits/indexer.client.ts';
import type { RunningApi } from '../src/server.ts';
import { eventually, gqlData, signIn } from './support/graphql.ts';
import { devPayer, type Platform, startPlatform } from './support/platform.ts';

const ME = `{ me { id balance debt deposits { edges { node { txHash blockNumber status } } }
  ledger(first: 20) { edges { node { amount reason } } } } }`;
interface Me {
  me: {
    id: string;
    balance: string;
    debt: string;
    deposits: { edges: { node: { txHash: string; blockNumber: string; status: string } }[] };
    ledger: { edges: { node: { amount: string; reason: string } }[] };
  };
}

let platform: Platform;
let api: RunningApi;
let proxy: RpcProxy;
const auditor = devPayer(7);

beforeAll(async () => {
  platform = await startPlatform({
    confirmations: 2,
    indexerRpcUrl: async (anvilRpcUrl) => {
      proxy = await startRpcProxy(anvilRpcUrl);
      return proxy.url;
    },
  });
  api = await platform.startApi({ AUDITOR_ADDRESSES: auditor.address });
}, 180_000);

afterEach(() => proxy.reset());

afterAll(async () => {
  await platform?.close();
  await proxy?.close();
});

/** A fresh payer holding 100 USDC, signed in. */
async function payerWithFunds(index: number): Promise<{ payer: PrivateKeyAccount; token: string }> {
  const payer = devPayer(index);
  await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 100_000_000n);
  return { payer, token: await signIn(api.url, payer, platform.chainId) };
}

function pay(payer: PrivateKeyAccount, amount: bigint): Promise<MinedTransaction> {
  return transferUsdc(platform.anvil.rpcUrl, platform.token, payer, platform.treasury, amount);
}

async function me(token: string): Promise<Me['me']> {
  return (await gqlData<Me>(api.url, ME, {}, token)).me;
}

/** Waits until the account's balance is `balance` credits, with every deposit CREDITED. */
function settledAt(token: string, balance: string, timeoutMs = 30_000): Promise<Me['me']> {
  return eventually(
    async () => {
      const account = await me(token);
      const credited = account.deposits.edges.every((e) => e.node.status === 'CREDITED');
      return account.balance === balance && credited ? account : undefined;
    },
    timeoutMs,
    `a balance of ${balance} credits`,
  );
}

const entries = (account: Me['me']) => account.ledger.edges.map((e) => [e.node.reason, e.node.amount]);

/** Whether Ponder's rows hold this transfer now (read through the indexer's own routes). */
async function indexed(transfer: MinedTransaction): Promise<boolean> {
  const window = await createIndexerClient(platform.indexer.url).window(transfer.blockNumber);
  return window.transfers.some((t) => t.txHash === transfer.txHash.toLowerCase());
}

/** Block fetches by number (not the `latest` polls), the way Ponder fetches the blocks it missed. */
const blockByNumber = (call: RpcCall) =>
  call.method === 'eth_getBlockByNumber' &&
  typeof call.params[0] === 'string' &&
  call.params[0].startsWith('0x');

describe('a head that goes backwards', () => {
  it('keeps a credit when the RPC answers once with a head below its transfer', async () => {
    const { payer, token } = await payerWithFunds(0);
    const paid = await pay(payer, 4_000_000n);
    await mineBlocks(platform.anvil.rpcUrl, 5);
    await settledAt(token, '4000');

    // One stale answer: `latest` is the block before the transfer's. Ponder takes it for a reorg and
    // deletes its rows above it; until it has fetched the blocks back (slowly here: a busy node), its
    // checkpoint still names the old head, 7 blocks above the transfer.
    proxy.intercept(delayedCalls(blockByNumber, 1_000));
    proxy.intercept(laggingHead({ at: paid.blockNumber - 1n }, { times: 1 }));
    await eventually(
      async () => ((await indexed(paid)) ? undefined : true),
      15_000,
      'Ponder to drop the transfer on the stale head',
    );
    await eventually(
      async () => ((await indexed(paid)) ? true : undefined),
      30_000,
      'Ponder to index it again',
    );
    proxy.reset();

    // A later payment credited: the crediting rounds of the whole episode have run.
    await pay(payer, 1_000_000n);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    const account = await settledAt(token, '5000');
    expect(entries(account)).toEqual([
      ['DEPOSIT', '1000'],
      ['DEPOSIT', '4000'],
    ]);
    expect(account.debt).toBe('0');
  });
});
