/**
 * A reorg deeper than CONFIRMATIONS that removes x402 settlements: the payer's signed authorization is unused
 * again on the new chain, so the platform submits it again, and every call ends charged against a settlement
 * on chain, whether the removed settlement had been credited (the call BILLED, its deposit reversed into a
 * debt the new transfer pays) or not (the call AWAITING_PAYMENT). An authorization that expired first leaves
 * the call UNPAID. The books end exact and the audit clean. Official `@x402/fetch` clients, real anvil
 * (`anvil_reorg`), real Ponder, PostgreSQL.
 */

import { mineBlocks, reorg, setAutomine } from '@chainmeter/testkit/anvil';
import { createGaslessPayer, type GaslessPayer } from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import type { x402Client } from '@x402/core/client';
import { wrapFetchWithPayment } from '@x402/fetch';
import pg from 'pg';
import { type Address, createPublicClient, getAddress, type Hash, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIndexerClient } from '../src/modules/deposits/indexer.client.ts';
import type { RunningApi } from '../src/server.ts';
import { auditPlatform } from './support/audit.ts';
import { type Platform, startPlatform, UNLIMITED_RATES } from './support/platform.ts';
import { waitFor } from './support/wait-for.ts';

const CONFIRMATIONS = 3;

let platform: Platform;
let api: RunningApi;
let db: pg.Client;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: CONFIRMATIONS });
  api = await platform.startApi({ ...UNLIMITED_RATES, X402_RESUBMIT_MS: '100' });
  if (!platform.database) throw new Error('these tests run on PostgreSQL');
  db = new pg.Client({ connectionString: platform.database.url });
  await db.connect();
}, 120_000);

afterAll(async () => {
  await db?.end();
  await platform?.close();
});

const chain = () => createPublicClient({ transport: http(platform.anvil.rpcUrl) });

function client(payer: GaslessPayer, scheme: 'exact' | 'upto'): x402Client {
  return devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token], scheme });
}

async function payCall(payer: GaslessPayer, scheme: 'exact' | 'upto') {
  const response = await wrapFetchWithPayment(fetch, client(payer, scheme))(
    `${api.url}/v1/chat/completions`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'chainmeter-dev-large',
        max_tokens: 64,
        messages: [{ role: 'user', content: 'Say something short.' }],
      }),
    },
  );
  expect(response.status).toBe(200);
  await response.text();
}

interface PaidRow {
  status: string;
  payment_tx_hash: string;
  user_price: string;
  hold_amount: string;
  payment_scheme: string;
}

async function callOf(payer: Address): Promise<PaidRow> {
  const { rows } = await db.query(
    `select status, payment_tx_hash, user_price::text as user_price, hold_amount::text as hold_amount,
       payment_scheme from usage_records where payer_address = $1`,
    [getAddress(payer)],
  );
  expect(rows).toHaveLength(1);
  return rows[0] as PaidRow;
}

/** A fresh wallet with USDC and no ETH, its mint buried deeper than any reorg of this file. */
async function payers(n: number): Promise<GaslessPayer[]> {
  const made: GaslessPayer[] = [];
  for (let i = 0; i < n; i++) {
    made.push(await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n));
  }
  await mineBlocks(platform.anvil.rpcUrl, 20);
  return made;
}

async function blockOf(txHash: string): Promise<bigint> {
  return (await chain().getTransactionReceipt({ hash: txHash as Hash })).blockNumber;
}

/**
 * Mines an empty block and waits until the indexer has it. A reorg that lands while Ponder is fetching a
 * block with a transfer (its logs by block hash) leaves Ponder retrying a block the chain no longer has for
 * a minute or two (Ponder 0.17's RPC retries): a race of the node's, not the platform's, kept out of tests
 * that are about the platform. With an empty block on top, the head Ponder polls has no logs to fetch.
 */
async function settleIndexer(): Promise<void> {
  await mineBlocks(platform.anvil.rpcUrl, 1);
  const head = await chain().getBlockNumber({ cacheTime: 0 });
  const indexer = createIndexerClient(platform.indexer.url);
  await waitFor('the indexer at the head', async () => (await indexer.head()).blockNumber === head, 60_000);
}

/** `anvil_reorg` of every block from `fromBlock` to the head (new empty blocks at the same heights). */
async function reorgFrom(fromBlock: bigint, minDepth = 1): Promise<void> {
  const head = await chain().getBlockNumber();
  const depth = Number(head - fromBlock + 1n);
  expect(depth).toBeGreaterThanOrEqual(minDepth);
  await reorg(platform.anvil.rpcUrl, depth);
}

/** Every figure the books must agree on, worked out from the rows themselves. */
async function books(accountWallets: Address[]) {
  const { rows } = await db.query(
    `select a.wallet_address, a.balance::text as balance, a.debt::text as debt, a.held::text as held,
       (select coalesce(sum(amount), 0) from deposits d where d.account_id = a.id and d.status = 'CREDITED')::text
         as credited,
       (select coalesce(sum(user_price), 0) from usage_records u where u.account_id = a.id
         and u.status in ('BILLED', 'NEEDS_REVIEW'))::text as charged
     from accounts a where a.wallet_address = any($1::text[]) order by a.wallet_address`,
    [accountWallets.map((w) => getAddress(w))],
  );
  return rows as { balance: string; debt: string; held: string; credited: string; charged: string }[];
}

function audit() {
  return auditPlatform(
    platform,
    async (text, values) => (await db.query(text, [...values])).rows,
    CONFIRMATIONS,
  );
}

/**
 * Mines a block every 200 ms at most (so new settlements confirm; a block on every 25 ms poll left Ponder
 * hundreds of blocks to catch up with) until `ready`.
 */
async function mineUntil<T>(what: string, ready: () => Promise<T>): Promise<T> {
  let minedAt = 0;
  return waitFor(
    what,
    async () => {
      const value = await ready();
      if (!value && Date.now() - minedAt >= 200) {
        await mineBlocks(platform.anvil.rpcUrl, 1);
        minedAt = Date.now();
      }
      return value;
    },
    60_000,
  );
}

describe('a reorg deeper than CONFIRMATIONS removing x402 settlements', () => {
  it('submits each payment again: credited (BILLED) and uncredited (AWAITING) calls end charged on chain', async () => {
    const [billedExact, billedUpto, awaitingExact, awaitingUpto] = await payers(4);
    if (!billedExact || !billedUpto || !awaitingExact || !awaitingUpto) throw new Error('no payers');
    const wallets = [billedExact, billedUpto, awaitingExact, awaitingUpto].map((p) => p.address);

    // Two calls whose settlements are credited (the calls BILLED) before the reorg...
    await payCall(billedExact, 'exact');
    await payCall(billedUpto, 'upto');
    const firstBlock = await blockOf((await callOf(billedExact.address)).payment_tx_hash);
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS + 1);
    await waitFor('the first two calls billed', async () => {
      const calls = await Promise.all([callOf(billedExact.address), callOf(billedUpto.address)]);
      return calls.every((c) => c.status === 'BILLED');
    });
    // ...and two whose settlements are not credited yet (the calls AWAITING_PAYMENT).
    await payCall(awaitingExact, 'exact');
    await payCall(awaitingUpto, 'upto');
    expect((await callOf(awaitingExact.address)).status).toBe('AWAITING_PAYMENT');
    expect((await callOf(awaitingUpto.address)).status).toBe('AWAITING_PAYMENT');
    const removed = await Promise.all(wallets.map(async (w) => (await callOf(w)).payment_tx_hash));

    await settleIndexer();
    await reorgFrom(firstBlock, CONFIRMATIONS + 1);
    for (const hash of removed) {
      await expect(chain().getTransactionReceipt({ hash: hash as Hash })).rejects.toThrow();
    }

    // Done when every call is BILLED against a settlement that is on chain now and credited (until crediting
    // has taken the reorg in, the removed credits still count as CREDITED: not enough).
    const final = await mineUntil<PaidRow[] | undefined>(
      'every call billed against a settlement on chain',
      async () => {
        const calls: PaidRow[] = [];
        for (const wallet of wallets) calls.push(await callOf(wallet));
        for (const call of calls) {
          if (call.status !== 'BILLED') return undefined;
          const mined = await chain()
            .getTransactionReceipt({ hash: call.payment_tx_hash as Hash })
            .catch(() => null);
          if (!mined) return undefined;
          const { rows } = await db.query(
            `select 1 from deposits where tx_hash = $1 and lower(block_hash) = $2 and status = 'CREDITED'`,
            [call.payment_tx_hash, mined.blockHash.toLowerCase()],
          );
          if (rows.length !== 1) return undefined;
        }
        return calls;
      },
    );
    if (!final) throw new Error('unreachable');
    for (const call of final) {
      // A settlement on chain (the same authorization submitted again: the same hash when the relayer's
      // nonce and fees came out the same), moving what was signed (exact) or the price (upto).
      const receipt = await chain().getTransactionReceipt({ hash: call.payment_tx_hash as Hash });
      expect(receipt.status).toBe('success');
      const { rows } = await db.query(
        `select amount::text as amount from deposits where tx_hash = $1 and status = 'CREDITED'`,
        [call.payment_tx_hash],
      );
      expect(rows).toEqual([
        { amount: call.payment_scheme === 'exact' ? call.hold_amount : call.user_price },
      ]);
    }
    // The books exact: each balance is its credited deposits less its charged calls, no debt left.
    for (const account of await books(wallets)) {
      expect(account.debt).toBe('0');
      expect(account.held).toBe('0');
      expect(BigInt(account.balance)).toBe(BigInt(account.credited) - BigInt(account.charged));
    }
    // Worked out from the calls alone: exact keeps hold - price as credits, upto nothing.
    const balances = (await books([billedExact.address])).map((a) => a.balance);
    const billed = final[0] as PaidRow;
    expect(balances).toEqual([(BigInt(billed.hold_amount) - BigInt(billed.user_price)).toString()]);
    const report = await audit();
    expect(report.discrepancies).toEqual([]);
    expect(report.consistent).toBe(true);
  }, 120_000);

  // Last: it moves the chain's clock an hour ahead.
  it('leaves a call UNPAID when its authorization expired before it could be submitted again', async () => {
    const [payer] = await payers(1);
    if (!payer) throw new Error('no payer');
    await payCall(payer, 'exact');
    const { payment_tx_hash: removed } = await callOf(payer.address);
    expect((await callOf(payer.address)).status).toBe('AWAITING_PAYMENT');
    const paidBlock = await blockOf(removed);
    await settleIndexer();
    // The reorg removes the settlement before it is credited (the call awaits a payment that is gone); its
    // new blocks are mined at the old times, so automine is off: whatever the platform submits again waits
    // for the next block, which is an hour later, past the payment's validBefore, and reverts.
    await setAutomine(platform.anvil.rpcUrl, false);
    await reorgFrom(paidBlock);
    const { timestamp } = await chain().getBlock({ blockTag: 'latest' });
    await chain().request({
      method: 'evm_setNextBlockTimestamp' as never,
      params: [Number(timestamp) + 3_600] as never,
    });
    const unpaid = await mineUntil('the call unpaid', async () => {
      const call = await callOf(payer.address);
      return call.status === 'UNPAID' ? call : undefined;
    });
    if (!unpaid) throw new Error('unreachable');
    await setAutomine(platform.anvil.rpcUrl, true);
    expect(unpaid.payment_tx_hash).toBe(removed);
    const [account] = await books([payer.address]);
    expect(account).toMatchObject({ balance: '0', debt: '0', held: '0', credited: '0', charged: '0' });
    const report = await audit();
    expect(report.discrepancies).toEqual([]);
    expect(report.consistent).toBe(true);
    expect(report.unpaidCalls.map((c) => c.userPrice)).toEqual([BigInt(unpaid.user_price)]);
  }, 120_000);
});
