/**
 * A reorg deeper than CONFIRMATIONS (but inside Ponder's 30-block window) removes a transfer that was
 * already credited: the ledger is never edited, a compensating ADJUSTMENT takes the credit back as far as
 * the account holds it (the rest is a debt its next credits pay), the deposit turns REORGED, and
 * subscribers hear both. If the same transfer is mined again it gives back what was taken, never more; a
 * transfer the reorg put below the crediting cursor is still credited. The auditor's report stays clean.
 * Real anvil (`anvil_reorg`, `evm_snapshot`/`evm_revert`), real Ponder, real PostgreSQL.
 */
import { PONDER_FINALITY_BLOCKS, usdcAbi, verifyLedgerChain } from '@chainmeter/schema';
import { mineBlocks, reorg, revert, snapshot } from '@chainmeter/testkit/anvil';
import { mintUsdc } from '@chainmeter/testkit/token';
import { createPublicClient, encodeFunctionData, type Hex, http, keccak256 } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIndexerClient } from '../src/modules/deposits/indexer.client.ts';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import type { RunningApi } from '../src/server.ts';
import { eventually, gqlData, signIn, subscribe } from './support/graphql.ts';
import { devPayer, type Platform, startPlatform } from './support/platform.ts';
import { listAllLedgerEntries } from './support/records.ts';

const ME = `{ me { id balance debt deposits { edges { node { txHash logIndex blockNumber status } } }
  ledger(first: 20) { edges { node { amount reason balanceAfter deposit { txHash } } } } } }`;
interface Me {
  me: {
    id: string;
    balance: string;
    debt: string;
    deposits: {
      edges: { node: { txHash: string; logIndex: number; blockNumber: string; status: string } }[];
    };
    ledger: {
      edges: {
        node: { amount: string; reason: string; balanceAfter: string; deposit: { txHash: string } | null };
      }[];
    };
  };
}

let platform: Platform;
let api: RunningApi;
const auditor = devPayer(7);

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi({ AUDITOR_ADDRESSES: auditor.address });
});

afterAll(async () => {
  await platform?.close();
});

/** Signs a USDC transfer to the treasury once, so the very same transaction can be sent again. */
async function signedPayment(payerIndex: number, amount: bigint): Promise<Hex> {
  const payer = devPayer(payerIndex);
  const client = createPublicClient({ transport: http(platform.anvil.rpcUrl) });
  return payer.signTransaction({
    type: 'legacy',
    chainId: platform.chainId,
    to: platform.token,
    data: encodeFunctionData({ abi: usdcAbi, functionName: 'transfer', args: [platform.treasury, amount] }),
    gas: 100_000n,
    gasPrice: 10_000_000_000n,
    nonce: await client.getTransactionCount({ address: payer.address, blockTag: 'pending' }),
  });
}

async function send(raw: Hex): Promise<bigint> {
  const client = createPublicClient({ transport: http(platform.anvil.rpcUrl), pollingInterval: 50 });
  const hash = await client.sendRawTransaction({ serializedTransaction: raw });
  return (await client.waitForTransactionReceipt({ hash })).blockNumber;
}

/** The auditor's report over GraphQL: the chain read through the RPC against every account's records. */
async function auditReport() {
  const token = await signIn(api.url, auditor, platform.chainId);
  const { auditReport } = await gqlData<{
    auditReport: {
      consistent: boolean;
      discrepancies: { kind: string; message: string }[];
      reversedCredits: { txHash: string; amount: string; owed: string }[];
      head: string;
    };
  }>(
    api.url,
    '{ auditReport { head consistent discrepancies { kind message } reversedCredits { txHash amount owed } } }',
    {},
    token,
  );
  return auditReport;
}

async function ledgerVerifies(accountId: string): Promise<void> {
  const entries = await listAllLedgerEntries(api.services.orm.em.fork(), accountId);
  expect(verifyLedgerChain(entries.map((e) => ({ ...e, accountId })))).toBeNull();
}

describe('a reorg deeper than CONFIRMATIONS', () => {
  it('reverses a credited deposit with an ADJUSTMENT, and credits it again when it is mined again', async () => {
    const payer = devPayer(0);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 10_000_000n);
    const token = await signIn(api.url, payer, platform.chainId);
    const deposits = await subscribe<{ depositUpdated: { status: string } }>(
      api.url,
      'subscription { depositUpdated { status } }',
      token,
    );
    const raw = await signedPayment(0, 4_000_000n);
    await send(raw);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await deposits.waitFor((e) => e.depositUpdated.status === 'CREDITED');
    expect((await gqlData<Me>(api.url, ME, {}, token)).me.balance).toBe('4000');

    // Replace the transfer's block and the two on top of it: 3 blocks deep, past CONFIRMATIONS = 2.
    await reorg(platform.anvil.rpcUrl, 3);
    await mineBlocks(platform.anvil.rpcUrl, 1);
    await deposits.waitFor((e) => e.depositUpdated.status === 'REORGED');
    const reversed = await eventually(async () => {
      const { me } = await gqlData<Me>(api.url, ME, {}, token);
      return me.balance === '0' ? me : undefined;
    });
    expect(reversed.ledger.edges.map((e) => [e.node.reason, e.node.amount, e.node.balanceAfter])).toEqual([
      ['ADJUSTMENT', '-4000', '0'],
      ['DEPOSIT', '4000', '4000'],
    ]);
    expect(reversed.deposits.edges.map((e) => e.node.status)).toEqual(['REORGED']);
    await ledgerVerifies(reversed.id);

    // The same signed transaction mined again: the same log, credited again (by an ADJUSTMENT, since its
    // DEPOSIT entry exists), never twice.
    const sentAgain = await send(raw).catch(() => null);
    if (sentAgain === null) throw new Error('anvil did not accept the same transaction again');
    await mineBlocks(platform.anvil.rpcUrl, 2);
    const recredited = await eventually(async () => {
      const { me } = await gqlData<Me>(api.url, ME, {}, token);
      return me.balance === '4000' ? me : undefined;
    });
    expect(recredited.ledger.edges.map((e) => [e.node.reason, e.node.amount])).toEqual([
      ['ADJUSTMENT', '4000'],
      ['ADJUSTMENT', '-4000'],
      ['DEPOSIT', '4000'],
    ]);
    expect(recredited.deposits.edges.map((e) => e.node.status)).toEqual(['CREDITED']);
    await ledgerVerifies(recredited.id);
    await deposits.close();
  });

  it('takes back only what the account still has: the rest is a debt', async () => {
    const payer = devPayer(1);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 10_000_000n);
    const token = await signIn(api.url, payer, platform.chainId);
    await send(await signedPayment(1, 2_000_000n));
    await mineBlocks(platform.anvil.rpcUrl, 2);
    const { me } = await eventually(async () => {
      const result = await gqlData<Me>(api.url, ME, {}, token);
      return result.me.balance === '2000' ? result : undefined;
    });
    // Spent 1,500 credits before the reorg (as an LLM call would).
    await appendLedgerEntry(api.services.orm.em.fork(), {
      accountId: me.id,
      amount: -1_500_000n,
      reason: 'USAGE',
      referenceId: 'spent-before-the-reorg',
    });
    await reorg(platform.anvil.rpcUrl, 3);
    await mineBlocks(platform.anvil.rpcUrl, 1);
    // One GraphQL response reads the balance and the deposits in separate statements: wait for both.
    const after = await eventually(async () => {
      const result = await gqlData<Me>(api.url, ME, {}, token);
      const reversed = result.me.deposits.edges[0]?.node.status === 'REORGED' && result.me.balance === '0';
      return reversed ? result.me : undefined;
    });
    expect(after.ledger.edges[0]?.node).toMatchObject({
      reason: 'ADJUSTMENT',
      amount: '-500',
      balanceAfter: '0',
    });
    // 2,000 credited - 500 taken back = the 1,500 spent, owed.
    expect(after.debt).toBe('1500');
    await ledgerVerifies(after.id);
  });

  it('re-credits a re-mined transfer with only what was taken back: what had been spent was a debt', async () => {
    const payer = devPayer(2);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 10_000_000n);
    const token = await signIn(api.url, payer, platform.chainId);
    // 500 token units = 500 micro-USD = 0.5 credits.
    const raw = await signedPayment(2, 500n);
    const txHash = keccak256(raw);
    await send(raw);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    const credited = await eventually(async () => {
      const { me } = await gqlData<Me>(api.url, ME, {}, token);
      return me.balance === '0.5' ? me : undefined;
    });
    // Spent 350 micro-USD of it (as an LLM call would): 150 left.
    await appendLedgerEntry(api.services.orm.em.fork(), {
      accountId: credited.id,
      amount: -350n,
      reason: 'USAGE',
      referenceId: 'spent-before-the-reorg',
    });

    // 3 blocks deep, past CONFIRMATIONS = 2: the reversal takes the 150 left, the 350 spent is owed.
    await reorg(platform.anvil.rpcUrl, 3);
    await mineBlocks(platform.anvil.rpcUrl, 1);
    const reversed = await eventually(async () => {
      const { me } = await gqlData<Me>(api.url, ME, {}, token);
      const done = me.deposits.edges[0]?.node.status === 'REORGED' && me.balance === '0';
      return done ? me : undefined;
    });
    expect(reversed.debt).toBe('0.35');
    expect(reversed.ledger.edges[0]?.node).toEqual({
      reason: 'ADJUSTMENT',
      amount: '-0.15',
      balanceAfter: '0',
      deposit: { txHash },
    });
    const chainHead = await createPublicClient({ transport: http(platform.anvil.rpcUrl) }).getBlockNumber();
    const owing = await auditReport();
    // The head as the chain has it now (or newer), not one read earlier and cached (a stale head left the
    // reorged credit "after the head", unchecked).
    expect(BigInt(owing.head)).toBeGreaterThanOrEqual(chainHead);
    expect(owing.discrepancies).toEqual([]);
    expect(owing.reversedCredits).toContainEqual({ txHash, amount: '0.5', owed: '0.35' });

    // The same transaction mined again: 150 comes back and the 350 owed is cancelled. 500 paid - 350
    // spent = 150, not 500.
    await send(raw);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await eventually(async () => {
      const { me } = await gqlData<Me>(api.url, ME, {}, token);
      return me.deposits.edges[0]?.node.status === 'CREDITED' ? me : undefined;
    });
    // Read again: one response reads the deposits after the balance, and the credit may land between.
    const recredited = (await gqlData<Me>(api.url, ME, {}, token)).me;
    expect([recredited.balance, recredited.debt]).toEqual(['0.15', '0']);
    expect(recredited.ledger.edges.map((e) => [e.node.reason, e.node.amount, e.node.balanceAfter])).toEqual([
      ['ADJUSTMENT', '0.15', '0.15'],
      ['ADJUSTMENT', '-0.15', '0'],
      ['USAGE', '-0.35', '0.15'],
      ['DEPOSIT', '0.5', '0.5'],
    ]);
    // Every correction names the deposit it corrects.
    expect(recredited.ledger.edges.map((e) => e.node.deposit?.txHash ?? null)).toEqual([
      txHash,
      txHash,
      null,
      txHash,
    ]);
    await ledgerVerifies(recredited.id);
    expect(await auditReport()).toMatchObject({ consistent: true, discrepancies: [] });
  });

  it('credits a new payment and a re-mined one that a deep reorg put below the crediting cursor', async () => {
    const rpcUrl = platform.anvil.rpcUrl;
    const client = createPublicClient({ transport: http(rpcUrl) });
    const alice = devPayer(3);
    const bob = devPayer(4);
    await mintUsdc(rpcUrl, platform.token, alice.address, 10_000_000n);
    await mintUsdc(rpcUrl, platform.token, bob.address, 10_000_000n);
    const aliceToken = await signIn(api.url, alice, platform.chainId);
    const bobToken = await signIn(api.url, bob, platform.chainId);

    // Old chain: three empty blocks, then Alice pays 3 USDC, credited at 2 confirmations. The crediting
    // cursor is now at her transfer, block S + 4.
    const fork = await snapshot(rpcUrl);
    const forkBlock = await client.getBlockNumber({ cacheTime: 0 });
    await mineBlocks(rpcUrl, 3);
    const aliceRaw = await signedPayment(3, 3_000_000n);
    const oldBlock = await send(aliceRaw);
    await mineBlocks(rpcUrl, 2);
    const oldHead = await client.getBlockNumber({ cacheTime: 0 });
    await eventually(async () => {
      const { me } = await gqlData<Me>(api.url, ME, {}, aliceToken);
      return me.balance === '3000' ? me : undefined;
    });

    // The reorg: back to S, Bob pays 1 USDC in S + 1, Alice's same transaction is mined again in S + 2:
    // both below the old cursor. Then the new chain outgrows the old one (S + 6) by 3 > CONFIRMATIONS
    // blocks; 6 blocks deep in all, inside Ponder's 30.
    await revert(rpcUrl, fork);
    const bobBlock = await send(await signedPayment(4, 1_000_000n));
    const aliceBlock = await send(aliceRaw);
    expect([bobBlock, aliceBlock]).toEqual([forkBlock + 1n, forkBlock + 2n]);
    expect(aliceBlock).toBeLessThan(oldBlock);
    await mineBlocks(rpcUrl, Number(oldHead + 3n - aliceBlock));

    // Bob: 1 USDC = 1,000 credits, once.
    const bobMe = await eventually(
      async () => {
        const { me } = await gqlData<Me>(api.url, ME, {}, bobToken);
        return me.balance === '1000' ? me : undefined;
      },
      30_000,
      "Bob's payment below the old cursor to be credited",
    );
    expect(bobMe.ledger.edges.map((e) => [e.node.reason, e.node.amount])).toEqual([['DEPOSIT', '1000']]);
    expect(bobMe.deposits.edges.map((e) => e.node.status)).toEqual(['CREDITED']);
    // Alice: 3 USDC = 3,000 credits, one DEPOSIT, her deposit CREDITED in the block her transaction is in
    // now, and never taken back: Ponder reverts its rows on a reorg before it moves its checkpoint
    // (ponder's runtime/omnichain.ts, case "reorg"), but the indexed block the API trusts is reverted with
    // the rows (indexer/ponder.schema.ts, `indexed_block`), so her credit is compared only with a window
    // that holds her transaction again.
    await eventually(
      async () => {
        const { me } = await gqlData<Me>(api.url, ME, {}, aliceToken);
        const deposit = me.deposits.edges[0]?.node;
        return deposit?.status === 'CREDITED' && deposit.blockNumber === String(aliceBlock) ? me : undefined;
      },
      30_000,
      "Alice's deposit to follow her transaction",
    );
    const aliceMe = (await gqlData<Me>(api.url, ME, {}, aliceToken)).me;
    expect([aliceMe.balance, aliceMe.debt]).toEqual(['3000', '0']);
    expect(aliceMe.ledger.edges.map((e) => [e.node.reason, e.node.amount])).toEqual([['DEPOSIT', '3000']]);
    await ledgerVerifies(bobMe.id);
    await ledgerVerifies(aliceMe.id);
    const audit = await eventually(
      async () => {
        const report = await auditReport();
        return report.consistent ? report : undefined;
      },
      30_000,
      'a clean audit',
    );
    expect(audit.discrepancies).toEqual([]);
  });

  it("reverses a credit that a reorg removed while no API ran, the chain then moving on past Ponder's window", async () => {
    const rpcUrl = platform.anvil.rpcUrl;
    const client = createPublicClient({ transport: http(rpcUrl) });
    const payer = devPayer(5);
    await mintUsdc(rpcUrl, platform.token, payer.address, 10_000_000n);
    const token = await signIn(api.url, payer, platform.chainId);
    await send(await signedPayment(5, 2_000_000n));
    await mineBlocks(rpcUrl, 2);
    await eventually(async () => {
      const { me } = await gqlData<Me>(api.url, ME, {}, token);
      return me.balance === '2000' ? me : undefined;
    });

    // Every API is down (a deploy, a crash) while a reorg 3 blocks deep removes the transfer, and the chain
    // goes on for more than Ponder's 30 blocks before one comes back: the credit is now further below the
    // head than the window a round looks at, yet it is gone and must be taken back.
    await api.close();
    await reorg(rpcUrl, 3);
    await mineBlocks(rpcUrl, PONDER_FINALITY_BLOCKS + 10);
    const chainHead = await client.getBlockNumber({ cacheTime: 0 });
    const indexer = createIndexerClient(platform.indexer.url);
    await eventually(
      async () => ((await indexer.head()).blockNumber === chainHead ? true : undefined),
      30_000,
      'the indexer to catch up with the chain',
    );
    api = await platform.startApi({ AUDITOR_ADDRESSES: auditor.address });

    const reversed = await eventually(
      async () => {
        const { me } = await gqlData<Me>(api.url, ME, {}, token);
        return me.balance === '0' ? me : undefined;
      },
      30_000,
      'the removed credit to be taken back',
    );
    expect(reversed.ledger.edges.map((e) => [e.node.reason, e.node.amount, e.node.balanceAfter])).toEqual([
      ['ADJUSTMENT', '-2000', '0'],
      ['DEPOSIT', '2000', '2000'],
    ]);
    expect(reversed.deposits.edges.map((e) => e.node.status)).toEqual(['REORGED']);
    await ledgerVerifies(reversed.id);
    const audit = await auditReport();
    expect(audit.discrepancies).toEqual([]);
  });
});
