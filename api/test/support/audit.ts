/** The audit of a test platform, as the audit CLI runs it with `--database`: the chain read through its RPC. */
import { checkAudit, fetchTreasuryTransfers, readAllAuditRecords } from '@chainmeter/schema';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import type pg from 'pg';
import { createPublicClient, http } from 'viem';
import type { Platform } from './platform.ts';
import { waitFor } from './wait-for.ts';

/** Runs the audit of `platform`'s chain against the records `query` reads (the API's database). */
export async function auditPlatform(
  platform: Pick<Platform, 'anvil' | 'chainId' | 'token' | 'treasury'>,
  query: (text: string, values: readonly unknown[]) => Promise<unknown[]>,
  confirmations: number,
) {
  const chain = createPublicClient({ transport: http(platform.anvil.rpcUrl) });
  const head = await chain.getBlockNumber();
  const records = await readAllAuditRecords((statement, values) => query(statement.text, values));
  const transfers = await fetchTreasuryTransfers(chain, {
    chainId: platform.chainId,
    token: platform.token,
    treasury: platform.treasury,
    fromBlock: 0n,
    toBlock: head,
  });
  return checkAudit({
    chainId: platform.chainId,
    tokenAddress: platform.token,
    treasuryAddress: platform.treasury,
    confirmations,
    fromBlock: 0n,
    head,
    transfers,
    ...records,
  });
}

/**
 * The audit once everything paid has settled: mines the confirmations, waits until every deposit is credited
 * and no paid call runs or awaits its payment, then audits `platform` against the API's database (`db`).
 */
export async function auditOnceSettled(
  platform: Pick<Platform, 'anvil' | 'chainId' | 'token' | 'treasury'>,
  db: pg.Client,
  confirmations: number,
) {
  await mineBlocks(platform.anvil.rpcUrl, confirmations + 1);
  await waitFor(
    'every deposit credited, no paid call running or awaiting',
    async () => {
      const { rows } = await db.query(
        `select (select count(*) from deposits where status <> 'CREDITED')::int
           + (select count(*) from usage_records where status in ('HELD', 'AWAITING_PAYMENT'))::int as open`,
      );
      return rows[0].open === 0;
    },
    30_000,
  );
  return auditPlatform(
    platform,
    async (text, values) => (await db.query(text, [...values])).rows,
    confirmations,
  );
}
