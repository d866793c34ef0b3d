/**
 * Two API processes on one PostgreSQL database, both running the crediting worker against the same
 * indexer: every transfer is credited exactly once, and each account's balance equals its ledger. Then
 * one replica is killed with SIGKILL mid-stream and the survivor carries on with nothing lost.
 */

import { mineBlocks, setAutomine } from '@chainmeter/testkit/anvil';
import { mintUsdc, submitUsdcTransfer } from '@chainmeter/testkit/token';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/graphql.ts';
import {
  type ApiProcess,
  devPayer,
  type Platform,
  spawnApiProcess,
  startPlatform,
} from './support/platform.ts';

let platform: Platform;
let replicas: ApiProcess[] = [];

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  replicas = await Promise.all([spawnApiProcess(platform.apiEnv()), spawnApiProcess(platform.apiEnv())]);
});

afterAll(async () => {
  for (const replica of replicas) await replica.stop().catch(() => {});
  await platform?.close();
});

async function query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: platform.database?.url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function payFromEveryPayer(rounds: number, amount: bigint): Promise<number> {
  const payers = [0, 1, 2, 3, 4, 5].map(devPayer);
  await setAutomine(platform.anvil.rpcUrl, false);
  let sent = 0;
  for (let round = 0; round < rounds; round++) {
    // Several transfers per block, from several wallets, so both replicas see contended batches.
    for (const payer of payers) {
      await submitUsdcTransfer(platform.anvil.rpcUrl, platform.token, payer, platform.treasury, amount);
      sent++;
    }
    await mineBlocks(platform.anvil.rpcUrl, 1);
  }
  await mineBlocks(platform.anvil.rpcUrl, 3);
  await setAutomine(platform.anvil.rpcUrl, true);
  return sent;
}

describe('two API replicas crediting at once', () => {
  it('credit each transfer exactly once', async () => {
    for (const index of [0, 1, 2, 3, 4, 5]) {
      await mintUsdc(platform.anvil.rpcUrl, platform.token, devPayer(index).address, 1_000_000_000n);
    }
    const sent = await payFromEveryPayer(5, 1_234_567n);
    const credited = await eventually(
      async () => {
        const [row] = await query<{ count: string }>(
          "select count(*) from deposits where status = 'CREDITED'",
        );
        return Number(row?.count) === sent ? sent : undefined;
      },
      60_000,
      `${sent} credited deposits`,
    );
    expect(credited).toBe(30);
    await expectExactlyOnce(sent);
  });

  it('lose nothing when one replica is killed with SIGKILL', async () => {
    const [doomed] = replicas;
    doomed?.child.kill('SIGKILL');
    const before = Number((await query<{ count: string }>('select count(*) from ledger_entries'))[0]?.count);
    const sent = await payFromEveryPayer(3, 7_000n);
    await eventually(
      async () => {
        const [row] = await query<{ count: string }>('select count(*) from ledger_entries');
        return Number(row?.count) === before + sent ? true : undefined;
      },
      60_000,
      'the surviving replica to credit everything',
    );
    await expectExactlyOnce(before + sent);
  });
});

async function expectExactlyOnce(expectedEntries: number): Promise<void> {
  const duplicates = await query(
    "select deposit_id from ledger_entries where reason = 'DEPOSIT' group by deposit_id having count(*) > 1",
  );
  expect(duplicates).toEqual([]);
  const [entries] = await query<{ count: string }>('select count(*) from ledger_entries');
  expect(Number(entries?.count)).toBe(expectedEntries);
  const mismatched = await query(
    `select a.wallet_address from accounts a
       left join ledger_entries l on l.account_id = a.id
      group by a.id having a.balance <> coalesce(sum(l.amount), 0)`,
  );
  expect(mismatched).toEqual([]);
  const deposits = await query<{ amount: string; credited: string }>(
    `select d.amount::text, coalesce(l.amount, 0)::text as credited
       from deposits d left join ledger_entries l on l.deposit_id = d.id where d.status = 'CREDITED'`,
  );
  for (const deposit of deposits) expect(deposit.credited).toBe(deposit.amount);
}
