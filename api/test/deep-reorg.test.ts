/**
 * A reorg deeper than CONFIRMATIONS (but inside Ponder's 30-block window) removes a transfer that was
 * already credited: the ledger is never edited, a compensating ADJUSTMENT takes the credit back, the deposit
 * turns REORGED, and subscribers hear both. If the same transfer is mined again it is credited again.
 * Real anvil (`anvil_reorg`), real Ponder, real PostgreSQL.
 */
import { usdcAbi, verifyLedgerChain } from '@chainmeter/schema';
import { createPublicClient, encodeFunctionData, type Hex, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mineBlocks, reorg } from '../../scripts/src/devnet/anvil.ts';
import { mintUsdc } from '../../scripts/src/devnet/token.ts';
import { appendLedgerEntry, listAllLedgerEntries } from '../src/modules/ledger/ledger.service.ts';
import type { RunningApi } from '../src/server.ts';
import { eventually, gqlData, signIn, subscribe } from './support/graphql.ts';
import { devPayer, type Platform, startPlatform } from './support/platform.ts';

const ME = `{ me { id balance deposits { edges { node { txHash logIndex status } } }
  ledger(first: 20) { edges { node { amount reason balanceAfter } } } } }`;
interface Me {
  me: {
    id: string;
    balance: string;
    deposits: { edges: { node: { txHash: string; logIndex: number; status: string } }[] };
    ledger: { edges: { node: { amount: string; reason: string; balanceAfter: string } }[] };
  };
}

let platform: Platform;
let api: RunningApi;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi();
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

  it('takes back only what the account still has (the rest is a logged shortfall)', async () => {
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
    expect(after.ledger.edges[0]?.node).toEqual({ reason: 'ADJUSTMENT', amount: '-500', balanceAfter: '0' });
    await ledgerVerifies(after.id);
  });
});
