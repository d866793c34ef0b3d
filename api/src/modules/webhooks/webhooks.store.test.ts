import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestOrm } from '../../../test/support/database.ts';
import type { Orm } from '../../db/orm.ts';
import { sqlFor, sqlOf } from '../../db/sql.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import { enqueueWebhookEvents } from './webhook-events.store.ts';
import { claimDueDeliveries, insertEndpointWithin, recordAttempt } from './webhooks.store.ts';

let db: Awaited<ReturnType<typeof createTestOrm>>;
let orm: Orm;

beforeAll(async () => {
  db = await createTestOrm();
  orm = db.orm;
});
afterAll(() => db.close());

async function accountWithEndpoint(): Promise<string> {
  const accountId = (await findOrCreateAccount(orm.em.fork(), privateKeyToAddress(generatePrivateKey()))).id;
  await sqlFor(orm).transaction((query) =>
    insertEndpointWithin(
      query,
      { accountId, url: 'http://127.0.0.1:9/hook', secret: 'whsec_AAAA', events: ['DEPOSIT_CREDITED'] },
      10,
    ),
  );
  return accountId;
}

describe('claimDueDeliveries', () => {
  it('never gives one delivery to two claimers at once (replicas claiming in parallel)', async () => {
    const accountId = await accountWithEndpoint();
    const count = 300;
    await orm.em.fork().transactional(async (tx) =>
      enqueueWebhookEvents(
        sqlOf(tx).query,
        Array.from({ length: count }, (_, i) => ({
          accountId,
          type: 'DEPOSIT_CREDITED' as const,
          data: { i },
        })),
      ),
    );
    const sql = sqlFor(orm);
    const claimed: string[] = [];
    // Eight claimers, each taking small batches until nothing is left, all at the same time.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (;;) {
          const batch = await claimDueDeliveries(sql.query, 7, 60_000);
          if (batch.length === 0) return;
          claimed.push(...batch.map((delivery) => delivery.id));
        }
      }),
    );
    expect(claimed).toHaveLength(count);
    expect(new Set(claimed).size).toBe(count);
  });

  it('claims a delivery again once its lease has run out (its worker died), and records only the live claim', async () => {
    const accountId = await accountWithEndpoint();
    await orm.em
      .fork()
      .transactional(async (tx) =>
        enqueueWebhookEvents(sqlOf(tx).query, [{ accountId, type: 'DEPOSIT_CREDITED', data: {} }]),
      );
    const sql = sqlFor(orm);
    const [first] = await claimDueDeliveries(sql.query, 1_000, 1);
    if (!first) throw new Error('nothing claimed');
    // A 1 ms lease: the next claim (the "other replica") takes it again.
    const [second] = await claimDueDeliveries(sql.query, 1_000, 60_000);
    expect(second?.id).toBe(first.id);
    expect(second?.eventId).toBe(first.eventId);
    expect(second?.attempts).toBe(2);
    const attempt = {
      responseCode: 200,
      latencyMs: 3,
      error: null,
      responseExcerpt: 'ok',
      attemptedAt: new Date(),
    };
    // The first claimer comes back late: its attempt is logged, but the delivery belongs to the second.
    expect(await recordAttempt(sql.query, first, attempt, { status: 'DELIVERED', nextAttemptAt: null })).toBe(
      false,
    );
    expect(
      await recordAttempt(sql.query, second as typeof first, attempt, {
        status: 'DELIVERED',
        nextAttemptAt: null,
      }),
    ).toBe(true);
    expect(await claimDueDeliveries(sql.query, 1_000, 60_000)).toEqual([]);
  });
});
