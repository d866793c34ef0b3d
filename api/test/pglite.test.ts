/**
 * The embedded default: the API on PGlite (no DATABASE_URL) and Ponder on its own PGlite, running the same
 * payment flow as PostgreSQL does, through GraphQL and a subscription.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mineBlocks } from '../../scripts/src/devnet/anvil.ts';
import { mintUsdc, transferUsdc } from '../../scripts/src/devnet/token.ts';
import type { RunningApi } from '../src/server.ts';
import { gqlData, signIn, subscribe } from './support/graphql.ts';
import { devPayer, type Platform, startPlatform } from './support/platform.ts';

let platform: Platform;
let api: RunningApi;

beforeAll(async () => {
  platform = await startPlatform({ pglite: true, confirmations: 2 });
  api = await platform.startApi();
});

afterAll(async () => {
  await platform?.close();
});

it('credits a confirmed payment exactly once on embedded PGlite', async () => {
  expect(platform.database).toBeUndefined();
  expect(api.services.config.databaseUrl).toBeUndefined();
  const payer = devPayer(0);
  const token = await signIn(api.url, payer, platform.chainId);
  const balances = await subscribe<{ balanceUpdated: { balance: string } }>(
    api.url,
    'subscription { balanceUpdated { balance } }',
    token,
  );
  await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 5_000_000n);
  const paid = await transferUsdc(
    platform.anvil.rpcUrl,
    platform.token,
    payer,
    platform.treasury,
    3_000_000n,
  );
  await mineBlocks(platform.anvil.rpcUrl, 2);
  expect((await balances.waitFor(() => true)).balanceUpdated.balance).toBe('3000');
  await mineBlocks(platform.anvil.rpcUrl, 2);
  const me = await gqlData<{
    me: { balance: string; deposits: { edges: { node: { txHash: string; status: string } }[] } };
  }>(api.url, '{ me { balance deposits { edges { node { txHash status } } } } }', {}, token);
  expect(me.me.balance).toBe('3000');
  expect(me.me.deposits.edges.map((edge) => edge.node)).toEqual([
    { txHash: paid.txHash, status: 'CREDITED' },
  ]);
  expect(balances.events).toHaveLength(1);
  await balances.close();
});
