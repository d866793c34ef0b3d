/**
 * The auto top-up claim against a replacement of the authorizations committed while the claim runs, on the
 * real PostgreSQL: the claim must not mark an account in flight for an authorization that is gone.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { untilALockIsWaitedFor } from '../../../test/support/lock-waits.ts';
import { fundedAccount } from '../../../test/support/users.ts';
import { sqlFor } from '../../db/sql.ts';
import { claimDueTopUps, type StoredAuthorization, storeAutoTopUp } from './topup.store.ts';

const { orm, url } = await testOrmForFile();

const NOW = new Date('2026-12-04T00:00:00Z');
const hex = (bytes: number) => `0x${randomBytes(bytes).toString('hex')}`;

function authorization(): StoredAuthorization {
  return {
    from: hex(20),
    value: 5_000_000n,
    validAfter: 0n,
    validBefore: 4_000_000_000n,
    nonce: hex(32),
    signature: hex(65),
  };
}

/** An account below its threshold (balance 100, threshold 1,000) with `count` stored authorizations. */
async function dueAccount(count: number): Promise<string> {
  const accountId = await fundedAccount(orm, 100n);
  const authorizations = Array.from({ length: count }, authorization);
  await sqlFor(orm).transaction((query) => storeAutoTopUp(query, accountId, 1_000n, authorizations));
  return accountId;
}

async function inFlight(accountId: string): Promise<string | null> {
  const [row] = await orm.em
    .fork()
    .execute<{ in_flight_id: string | null }[]>(
      'select in_flight_id from auto_top_ups where account_id = ?',
      [accountId],
    );
  return row?.in_flight_id ?? null;
}

describe('claimDueTopUps', () => {
  it('claims the first stored authorization of an account below its threshold, once', async () => {
    const accountId = await dueAccount(2);
    const claimed = await claimDueTopUps(sqlFor(orm).query, NOW, 0n, 20);
    const mine = claimed.filter((c) => c.accountId === accountId);
    expect(mine).toHaveLength(1);
    expect(await inFlight(accountId)).toBe(mine[0]?.id);
    // In flight: nothing more is claimed for it.
    const again = await claimDueTopUps(sqlFor(orm).query, NOW, 0n, 20);
    expect(again.filter((c) => c.accountId === accountId)).toEqual([]);
  });

  it('does not mark an account in flight for an authorization a replacement deleted while the claim ran', async () => {
    const accountId = await dueAccount(1);
    const replacing = new pg.Client({ connectionString: url });
    await replacing.connect();
    try {
      // The wallet replaces its authorizations (none left): the delete holds the row until it commits.
      await replacing.query('begin');
      await replacing.query(
        `delete from auto_top_up_authorizations where account_id = $1 and status = 'STORED'`,
        [accountId],
      );
      const claim = claimDueTopUps(sqlFor(orm).query, NOW, 0n, 20);
      await untilALockIsWaitedFor(orm);
      await replacing.query('commit');
      const claimed = await claim;
      expect(claimed.filter((c) => c.accountId === accountId)).toEqual([]);
      expect(await inFlight(accountId)).toBeNull();
    } finally {
      await replacing.end();
    }
  });
});
