/**
 * Crediting against a hostile chain RPC. Ponder reads the chain through a JSON-RPC proxy
 * (`@chainmeter/testkit/rpc-proxy`) that answers the way a load-balanced RPC whose nodes disagree does: a
 * head that lags or goes backwards, RPC errors and stalls, a log missing from `eth_getLogs`. Credits must
 * follow the chain, not the RPC: a transfer still on chain is never taken back, one a reorg removed is.
 * Real anvil, real Ponder, real PostgreSQL; the API's own RPC (the audit's) is anvil, honest.
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { mineBlocks, reorg, setAutomine, setIntervalMining } from '@chainmeter/testkit/anvil';
import {
  delayedCalls,
  droppedLogs,
  laggingHead,
  type RpcCall,
  type RpcProxy,
  rpcErrors,
  startRpcProxy,
} from '@chainmeter/testkit/rpc-proxy';
import {
  type MinedTransaction,
  mintUsdc,
  submitUsdcMint,
  submitUsdcTransfer,
  transferUsdc,
  waitMined,
} from '@chainmeter/testkit/token';
import { type Address, type Hash, type PrivateKeyAccount, pad } from 'viem';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getAccountByWallet } from '../src/modules/accounts/accounts.service.ts';
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

afterEach((context) => {
  proxy.reset();
  if (context.task.result?.state === 'fail') console.log(platform.indexer.logs().slice(-12_000));
});

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

/** Waits until the account's balance is `balance` credits, with no deposit PENDING. */
function settledAt(token: string, balance: string, timeoutMs = 30_000): Promise<Me['me']> {
  return eventually(
    async () => {
      const account = await me(token);
      const credited = account.deposits.edges.every((e) => e.node.status !== 'PENDING');
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

/** Pays `amount`, mines 2 blocks (CONFIRMATIONS) and waits for the balance to be `balance` credits. */
async function payAndSettle(
  payer: PrivateKeyAccount,
  token: string,
  amount: bigint,
  balance: string,
): Promise<Me['me']> {
  await pay(payer, amount);
  await mineBlocks(platform.anvil.rpcUrl, 2);
  return settledAt(token, balance);
}

async function indexerHead(): Promise<bigint> {
  return (await createIndexerClient(platform.indexer.url).head()).blockNumber;
}

interface AuditReport {
  head: string;
  consistent: boolean;
  discrepancies: { kind: string; txHash: string | null; message: string }[];
  summary: { transfersNotCreditable: number };
}

/**
 * The auditor's report over GraphQL: the chain read through the API's (honest) RPC against the records, up
 * to a head at least `head` (the API's client may answer a head read a few seconds ago).
 */
async function auditReport(head: bigint): Promise<AuditReport> {
  const token = await signIn(api.url, auditor, platform.chainId);
  const query = `{ auditReport { head consistent discrepancies { kind txHash message }
    summary { transfersNotCreditable } } }`;
  return eventually(
    async () => {
      const { auditReport } = await gqlData<{ auditReport: AuditReport }>(api.url, query, {}, token);
      return BigInt(auditReport.head) >= head ? auditReport : undefined;
    },
    15_000,
    `an audit up to block ${head}`,
  );
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
    // A payment still unconfirmed at the head: crediting looks at an unchanged head again every 2 s.
    const pending = await pay(payer, 1_000_000n);

    // One stale answer: `latest` is the block before the first transfer's. Ponder takes it for a reorg and
    // deletes its rows above it; until it has fetched the blocks back (slowly here: a busy node), its
    // checkpoint still names the old head, 6 blocks above the credited transfer.
    proxy.intercept(delayedCalls(blockByNumber, 3_000));
    proxy.intercept(laggingHead({ at: paid.blockNumber - 1n }, { times: 1 }));
    await eventually(
      async () => ((await indexed(paid)) ? undefined : true),
      15_000,
      'Ponder to drop the transfer on the stale head',
    );
    await eventually(
      async () => ((await indexed(pending)) ? true : undefined),
      30_000,
      'Ponder to index them again',
    );
    proxy.reset();

    await mineBlocks(platform.anvil.rpcUrl, 2);
    const account = await settledAt(token, '5000');
    expect(entries(account)).toEqual([
      ['DEPOSIT', '1000'],
      ['DEPOSIT', '4000'],
    ]);
    expect(account.debt).toBe('0');
  });
});

describe('a head that lags', () => {
  it('credits each payment once behind a load balancer that sends one request in two to a node 4 blocks behind', async () => {
    const { payer, token } = await payerWithFunds(1);
    await payAndSettle(payer, token, 3_000_000n, '3000');
    const rpcUrl = platform.anvil.rpcUrl;
    // A block a second (transactions wait for it), as on a live chain: Ponder skips a head whose fetch
    // failed until the next block (its sync-realtime `latestFetchedBlock`), and the lagging node fails
    // some of its fetches.
    await setIntervalMining(rpcUrl, 1);
    const lagging = laggingHead(4, { every: 2 });
    proxy.intercept(lagging);
    try {
      await payAndSettle(payer, token, 2_000_000n, '5000');
      await payAndSettle(payer, token, 1_000_000n, '6000');
      await eventually(async () => (lagging.lagged >= 10 ? true : undefined), 10_000, 'lagging answers');
    } finally {
      proxy.reset();
      await setIntervalMining(rpcUrl, 0);
      await setAutomine(rpcUrl, true);
    }
    const account = await payAndSettle(payer, token, 500_000n, '6500');
    expect(entries(account)).toEqual([
      ['DEPOSIT', '500'],
      ['DEPOSIT', '1000'],
      ['DEPOSIT', '2000'],
      ['DEPOSIT', '3000'],
    ]);
  });

  it('keeps credits while the head is stuck below them, and credits what was paid meanwhile once it moves', async () => {
    const { payer, token } = await payerWithFunds(2);
    const first = await pay(payer, 2_000_000n);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await settledAt(token, '2000');
    // The RPC goes back below the credited transfer and stays there: Ponder's head follows it down.
    const stuckAt = first.blockNumber - 1n;
    proxy.intercept(laggingHead({ at: stuckAt }));
    await eventually(
      async () => ((await indexerHead()) === stuckAt ? true : undefined),
      15_000,
      'the stuck head',
    );
    // Paid meanwhile: on chain, invisible through this RPC.
    const second = await pay(payer, 1_000_000n);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    expect(await indexerHead()).toBe(stuckAt);
    proxy.reset();
    const account = await settledAt(token, '3000');
    expect(entries(account)).toEqual([
      ['DEPOSIT', '1000'],
      ['DEPOSIT', '2000'],
    ]);
    expect(account.deposits.edges.map((e) => e.node.txHash).sort()).toEqual(
      [first.txHash, second.txHash].map((h) => h.toLowerCase()).sort(),
    );
  });
});

describe('an RPC that fails or stalls', () => {
  it('credits a payment once though block and log requests fail and stall while it is indexed', async () => {
    const { payer, token } = await payerWithFunds(3);
    const slow = (call: RpcCall) => call.method !== 'eth_chainId';
    proxy.intercept(delayedCalls(slow, 150));
    proxy.intercept(rpcErrors(['eth_getLogs', 'eth_getBlockByHash', 'eth_getBlockByNumber'], 6));
    const account = await payAndSettle(payer, token, 4_000_000n, '4000');
    proxy.reset();
    expect(entries(account)).toEqual([['DEPOSIT', '4000']]);
    expect(account.deposits.edges.map((e) => e.node.status)).toEqual(['CREDITED']);
  });
});

describe('a reorg deeper than CONFIRMATIONS while the head lags', () => {
  it('takes the removed credit back exactly once', async () => {
    const { payer, token } = await payerWithFunds(4);
    await payAndSettle(payer, token, 1_000_000n, '1000');
    const removed = await pay(payer, 3_000_000n);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await settledAt(token, '4000');
    proxy.intercept(laggingHead(2, { every: 2 }));
    // Replaces the transfer's block and the two on top: 3 deep, past CONFIRMATIONS = 2.
    await reorg(platform.anvil.rpcUrl, 3);
    await mineBlocks(platform.anvil.rpcUrl, 3);
    const reversed = await eventually(
      async () => {
        const account = await me(token);
        const gone = account.deposits.edges.find((e) => e.node.txHash === removed.txHash.toLowerCase());
        return gone?.node.status === 'REORGED' && account.balance === '1000' ? account : undefined;
      },
      30_000,
      'the removed credit to be taken back',
    );
    expect(reversed.debt).toBe('0');
    await mineBlocks(platform.anvil.rpcUrl, 4);
    proxy.reset();
    // A later payment credited: every round of the episode has run.
    const account = await payAndSettle(payer, token, 500_000n, '1500');
    expect(entries(account)).toEqual([
      ['DEPOSIT', '500'],
      ['ADJUSTMENT', '-3000'],
      ['DEPOSIT', '3000'],
      ['DEPOSIT', '1000'],
    ]);
  });
});

describe('the treasury paying itself', () => {
  it('credits nothing, and the audit expects nothing for it', async () => {
    const treasury = devAccounts.treasury;
    await mintUsdc(platform.anvil.rpcUrl, platform.token, treasury.address, 5_000_000n);
    const self = await pay(treasury, 5_000_000n);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await eventually(
      async () => ((await indexed(self)) ? true : undefined),
      15_000,
      'the self-transfer indexed',
    );
    // A payment after it credited: crediting has gone past the self-transfer.
    const { payer, token } = await payerWithFunds(5);
    await payAndSettle(payer, token, 1_000_000n, '1000');
    expect(await getAccountByWallet(api.services.orm.em.fork(), treasury.address)).toBeNull();
    const report = await auditReport(self.blockNumber + 2n);
    expect(report.discrepancies).toEqual([]);
    // The self-transfer, and the mint that funded the treasury (from the zero address).
    expect(report.summary.transfersNotCreditable).toBe(2);
  });
});

describe('a log missing from eth_getLogs', () => {
  // Known limit: Ponder checks the logs it gets against the block only roughly (no logs at all for a block
  // whose bloom filter is not empty is retried), so a node that leaves one log out of several is believed,
  // and only indexed transfers are credited. The audit, reading the chain through its own RPC, reports it.
  it('is not credited when other logs of its block come back, and the audit reports TRANSFER_NOT_CREDITED', async () => {
    const { payer, token } = await payerWithFunds(6);
    const sender = pad(payer.address.toLowerCase() as Address);
    proxy.intercept(droppedLogs((log) => log.topics?.[1] === sender));
    // The payment and another token log (a mint) in one block: the answer for that block is not empty.
    const rpcUrl = platform.anvil.rpcUrl;
    await setAutomine(rpcUrl, false);
    let hash: Hash;
    try {
      await submitUsdcMint(rpcUrl, platform.token, devPayer(7).address, 1n);
      hash = await submitUsdcTransfer(rpcUrl, platform.token, payer, platform.treasury, 2_000_000n);
      await mineBlocks(rpcUrl, 1);
    } finally {
      await setAutomine(rpcUrl, true);
    }
    const dropped = await waitMined(rpcUrl, hash);
    await mineBlocks(rpcUrl, 2);
    await eventually(
      async () => ((await indexerHead()) >= dropped.blockNumber + 2n ? true : undefined),
      15_000,
      'Ponder past the block',
    );
    proxy.reset();
    await payAndSettle(payer, token, 1_000_000n, '1000');
    expect(await indexed(dropped)).toBe(false);
    const report = await auditReport(dropped.blockNumber + 2n);
    expect(report.discrepancies.map((d) => [d.kind, d.txHash])).toEqual([
      ['TRANSFER_NOT_CREDITED', dropped.txHash.toLowerCase()],
    ]);
  });
});
