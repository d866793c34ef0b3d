/**
 * Two API replicas on one PostgreSQL database and one Redis (REDIS_URL), on a real anvil chain with a real
 * Ponder indexer. Replica A runs the crediting worker, replica B does not: every subscription event a
 * client on B receives for a payment was published by A and crossed Redis. A session revoked through A is
 * refused by B on the very next request (sessions live in PostgreSQL, not in a replica's memory).
 *
 * Redis pub/sub channels are global to the Redis server, and other test files may use it at the same time:
 * the channels are `<event>:<account id>`, and account ids are random UUIDs of this file's own fresh
 * database, so no other file can publish on (or hear) these channels. Rate-limit keys get a prefix of their
 * own too.
 */
import { randomUUID } from 'node:crypto';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import { mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiConfig, loadConfig } from '../src/env.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { gql, gqlData, signIn, subscribe } from './support/graphql.ts';
import { devPayer, type Platform, startPlatform } from './support/platform.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let platform: Platform;
let replicaA: RunningApi;
let replicaB: RunningApi;

function replicaConfig(keyPrefix: string): ApiConfig {
  const config = loadConfig(platform.apiEnv({ REDIS_URL, LOG_LEVEL: 'silent' }));
  return { ...config, rateLimits: { ...config.rateLimits, keyPrefix } };
}

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  const keyPrefix = `cm:rl:test:${randomUUID()}`;
  replicaA = await startApi(replicaConfig(keyPrefix), { crediting: true });
  replicaB = await startApi(replicaConfig(keyPrefix), { crediting: false });
});

afterAll(async () => {
  await replicaB?.close();
  await replicaA?.close();
  await platform?.close();
});

interface DepositEvent {
  depositUpdated: { txHash: string; status: string; confirmations: number; credits: string };
}
interface BalanceEvent {
  balanceUpdated: { balance: string; entry: { amount: string; reason: string; deposit: { txHash: string } } };
}

describe('two replicas sharing Redis', () => {
  it('a client subscribed on B receives the events of a payment credited by A', async () => {
    const payer = devPayer(0);
    const token = await signIn(replicaB.url, payer, platform.chainId);
    const { me } = await gqlData<{ me: { id: string } }>(replicaB.url, '{ me { id } }', {}, token);
    // The channel names carry this id: unique to this file's database, so no cross-talk with other files.
    expect(me.id).toMatch(UUID);

    const deposits = await subscribe<DepositEvent>(
      replicaB.url,
      'subscription { depositUpdated { txHash status confirmations credits } }',
      token,
    );
    const balances = await subscribe<BalanceEvent>(
      replicaB.url,
      'subscription { balanceUpdated { balance entry { amount reason deposit { txHash } } } }',
      token,
    );
    // A control subscriber on A, the publishing replica.
    const balancesOnA = await subscribe<BalanceEvent>(
      replicaA.url,
      'subscription { balanceUpdated { balance } }',
      token,
    );

    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 50_000_000n);
    const paid = await transferUsdc(
      platform.anvil.rpcUrl,
      platform.token,
      payer,
      platform.treasury,
      2_500_000n,
    );
    const pending = await deposits.waitFor((event) => event.depositUpdated.txHash === paid.txHash);
    expect(pending.depositUpdated).toMatchObject({ status: 'PENDING', credits: '2500' });

    await mineBlocks(platform.anvil.rpcUrl, 2);
    const credited = await deposits.waitFor(
      (event) => event.depositUpdated.txHash === paid.txHash && event.depositUpdated.status === 'CREDITED',
    );
    expect(credited.depositUpdated).toMatchObject({ confirmations: 2, credits: '2500' });
    const balance = await balances.waitFor(() => true);
    expect(balance.balanceUpdated).toEqual({
      balance: '2500',
      entry: { amount: '2500', reason: 'DEPOSIT', deposit: { txHash: paid.txHash } },
    });
    await balancesOnA.waitFor((event) => event.balanceUpdated.balance === '2500');

    // Only this payment's events reached this account's channels, each balance event once.
    expect(deposits.events.every((event) => event.depositUpdated.txHash === paid.txHash)).toBe(true);
    expect(balances.events).toHaveLength(1);
    expect(deposits.errors).toEqual([]);
    for (const subscription of [deposits, balances, balancesOnA]) await subscription.close();
  });

  it('a session revoked through A is refused by B on the next request', async () => {
    const payer = devPayer(1);
    const token = await signIn(replicaA.url, payer, platform.chainId);
    const before = await gqlData<{ me: { walletAddress: string } | null }>(
      replicaB.url,
      '{ me { walletAddress } }',
      {},
      token,
    );
    expect(before.me?.walletAddress).toBe(payer.address);

    expect(
      (await gqlData<{ signOut: boolean }>(replicaA.url, 'mutation { signOut }', {}, token)).signOut,
    ).toBe(true);

    const after = await gqlData<{ me: unknown }>(replicaB.url, '{ me { walletAddress } }', {}, token);
    expect(after.me).toBeNull();
    const mutation = await gql(replicaB.url, 'mutation { signOut }', {}, token);
    expect(mutation.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const subscription = await subscribe(replicaB.url, 'subscription { balanceUpdated { balance } }', token);
    await expect(subscription.waitFor(() => true, 10_000)).rejects.toThrow(/UNAUTHENTICATED/);
    await subscription.close();
  });
});
