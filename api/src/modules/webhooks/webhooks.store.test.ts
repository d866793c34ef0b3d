import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { waitFor } from '../../../test/support/wait-for.ts';
import { type Query, sqlFor, sqlOf } from '../../db/sql.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import { enqueueWebhookEvents } from './webhook-events.store.ts';
import { listDeliveriesOfEndpoints } from './webhooks.service.ts';
import {
  type ClaimedDelivery,
  claimDueDeliveries,
  deleteEndpoint,
  insertEndpointWithin,
  pruneFinishedDeliveries,
  readAttemptsOfDeliveries,
  readDeliveriesOfEndpoints,
  recordAttempt,
  recordAttempts,
  redeliver,
} from './webhooks.store.ts';

const { orm } = await testOrmForFile();

/** An attempt the receiver answered with `code`, just now. */
const answered = (code: number) => ({
  responseCode: code,
  latencyMs: 1,
  error: null,
  responseExcerpt: null,
  attemptedAt: new Date(),
});

/** A cap no test here reaches: the claims below are about other things. */
const NO_CAP = 1_000;

/** Enqueues `count` DEPOSIT_CREDITED events of the account (one delivery each, to its one endpoint). */
async function enqueue(accountId: string, count: number): Promise<void> {
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
}

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

/**
 * A new account with an endpoint and `count` events, once whatever earlier tests left due is claimed: its
 * deliveries are then the only ones due.
 */
async function aloneWithEvents(count: number): Promise<string> {
  await claimDueDeliveries(sqlFor(orm).query, 1_000, 60_000, NO_CAP);
  const accountId = await accountWithEndpoint();
  await enqueue(accountId, count);
  return accountId;
}

describe('claimDueDeliveries', () => {
  it('never gives one delivery to two claimers at once (replicas claiming in parallel)', async () => {
    const accountId = await accountWithEndpoint();
    const count = 300;
    await enqueue(accountId, count);
    const sql = sqlFor(orm);
    const claimed: string[] = [];
    // Eight claimers, each taking small batches until nothing is left, all at the same time.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (;;) {
          const batch = await claimDueDeliveries(sql.query, 7, 60_000, NO_CAP);
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
    // A lease that has already run out (0 ms; `now()` never goes back between two transactions): the next
    // claim (the "other replica") takes it again. A 1 ms lease raced the clock: a second claim within the same
    // millisecond found nothing due.
    const [first] = await claimDueDeliveries(sql.query, 1_000, 0, NO_CAP);
    if (!first) throw new Error('nothing claimed');
    const [second] = await claimDueDeliveries(sql.query, 1_000, 60_000, NO_CAP);
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
    expect(await claimDueDeliveries(sql.query, 1_000, 60_000, NO_CAP)).toEqual([]);
  });

  it("keeps an account's deliveries in flight within its cap, whoever claims them, so others still get slots", async () => {
    const sql = sqlFor(orm);
    // Whatever earlier tests left due is claimed first, so only this test's deliveries are due below.
    await claimDueDeliveries(sql.query, 1_000, 60_000, NO_CAP);
    const busy = await accountWithEndpoint();
    const other = await accountWithEndpoint();
    await enqueue(busy, 20);
    await enqueue(other, 2);
    // Oldest first, 16 slots: without a cap all 16 would be the busy account's.
    const first = await claimDueDeliveries(sql.query, 16, 60_000, 4);
    const countOf = (claimed: ClaimedDelivery[], accountId: string) =>
      claimed.filter((delivery) => delivery.accountId === accountId).length;
    expect([countOf(first, busy), countOf(first, other)]).toEqual([4, 2]);
    // Its 4 are in flight (this claimer's or another replica's, the same rows): nothing more of it.
    expect(await claimDueDeliveries(sql.query, 16, 60_000, 4)).toEqual([]);

    // Two attempts end (one delivered, one to be retried later): two slots of the busy account free up.
    const [done, failed] = first.filter((delivery) => delivery.accountId === busy) as [
      ClaimedDelivery,
      ClaimedDelivery,
    ];
    await recordAttempts(sql.query, [
      { delivery: done, result: answered(200), next: { status: 'DELIVERED', nextAttemptAt: null } },
      {
        delivery: failed,
        result: answered(500),
        next: { status: 'PENDING', nextAttemptAt: new Date(Date.now() + 60_000) },
      },
    ]);
    const next = await claimDueDeliveries(sql.query, 16, 60_000, 4);
    expect(next.map((delivery) => delivery.accountId)).toEqual([busy, busy]);

    // Leases that ran out (their worker died at once: a 0 ms lease) are not in flight any more.
    const third = await accountWithEndpoint();
    await enqueue(third, 6);
    const lapsed = await claimDueDeliveries(sql.query, 16, 0, 4);
    expect(lapsed.map((delivery) => delivery.accountId)).toEqual([third, third, third, third]);
    const again = await claimDueDeliveries(sql.query, 16, 60_000, 4);
    expect(again.map((delivery) => delivery.accountId)).toEqual([third, third, third, third]);
  });
});

/** Waits until `work` has settled or a statement of this database waits on a row lock (bounded). */
async function doneOrWaitingOnLock(work: Promise<unknown>): Promise<void> {
  let settled = false;
  void work.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await waitFor('the statement done or waiting on a lock', async () => {
    if (settled) return true;
    const waiting = await sqlFor(orm).query(
      {
        name: 'test_waiting_on_lock',
        text: `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
      },
      [],
    );
    return waiting.length > 0;
  });
}

/** Runs `work` in a transaction left open (its locks held) until `commit` is called. */
async function heldOpen(work: (query: Query) => Promise<void>): Promise<{ commit(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let ready!: () => void;
  const done = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const transaction = sqlFor(orm).transaction(async (query) => {
    await work(query);
    ready();
    await released;
  });
  await Promise.race([done, transaction]);
  return {
    commit() {
      release();
      return transaction;
    },
  };
}

/** The id of the account's one endpoint. */
async function endpointOf(accountId: string): Promise<string> {
  const [row] = (await sqlFor(orm).query(
    {
      name: 'test_endpoint_of_account',
      text: 'select id from webhook_endpoints where account_id = $1::uuid',
    },
    [accountId],
  )) as [{ id: string }];
  return row.id;
}

describe('deleteEndpoint', () => {
  it('an event written while the endpoint is being deleted is never sent to it (it ends FAILED)', async () => {
    const sql = sqlFor(orm);
    await claimDueDeliveries(sql.query, 1_000, 60_000, NO_CAP);
    const accountId = await accountWithEndpoint();
    const endpointId = await endpointOf(accountId);
    // A change (a deposit credited, a charge crossing the threshold) writes its event, not yet committed...
    const change = await heldOpen((query) =>
      enqueueWebhookEvents(query, [{ accountId, type: 'DEPOSIT_CREDITED', data: { late: true } }]),
    );
    // ...while the owner deletes the endpoint (it fails what it sees pending), then the change commits.
    const deleting = sql.transaction((query) => deleteEndpoint(query, accountId, endpointId));
    // The deletion either finishes before the change commits or waits for its row lock: wait for one of the two.
    await doneOrWaitingOnLock(deleting);
    await change.commit();
    expect((await deleting)?.deletedAt).not.toBeNull();
    // Nothing of the deleted endpoint is due: no worker sends the event to it.
    const claimed = await claimDueDeliveries(sql.query, 1_000, 60_000, NO_CAP);
    expect(claimed.filter((delivery) => delivery.accountId === accountId)).toEqual([]);
    const rows = await sql.query(
      {
        name: 'test_deliveries_of_account',
        text: 'select status from webhook_deliveries where account_id = $1::uuid',
      },
      [accountId],
    );
    expect(rows).toEqual([{ status: 'FAILED' }]);
  });

  it('a redelivery asked while the endpoint is being deleted is not sent to it either', async () => {
    const sql = sqlFor(orm);
    const accountId = await aloneWithEvents(1);
    const endpointId = await endpointOf(accountId);
    const [claimed] = await claimDueDeliveries(sql.query, 1_000, 60_000, NO_CAP);
    if (!claimed) throw new Error('nothing claimed');
    await recordAttempt(sql.query, claimed, answered(200), { status: 'DELIVERED', nextAttemptAt: null });
    // The owner deletes the endpoint (not yet committed: nothing pending, nothing to fail)...
    const deletion = await heldOpen(async (query) => {
      await deleteEndpoint(query, accountId, endpointId);
    });
    // ...while a redelivery of its delivered event is asked for (another tab, an API key's script).
    const redelivery = redeliver(sql.query, accountId, claimed.id);
    await doneOrWaitingOnLock(redelivery);
    await deletion.commit();
    // Either the redelivery saw the endpoint deleted (NOT_FOUND), or nothing of it is due.
    await redelivery;
    const due = await claimDueDeliveries(sql.query, 1_000, 60_000, NO_CAP);
    expect(due.filter((delivery) => delivery.accountId === accountId)).toEqual([]);
  });
});

describe('redeliver', () => {
  it("of a delivery in flight does not send it a second time at once, past the account's cap; a failed attempt then goes again now", async () => {
    const sql = sqlFor(orm);
    const accountId = await aloneWithEvents(1);
    // One attempt in flight (its receiver hangs), the account's cap being 1.
    const [inFlight] = await claimDueDeliveries(sql.query, 16, 60_000, 1);
    if (!inFlight) throw new Error('nothing claimed');
    // The owner asks for a redelivery, again and again (a script, an impatient click): each used to take the
    // attempt's claim back, so each next claim sent the event once more while the earlier attempts still held
    // their worker slots: one account's hanging receiver took every slot, past its cap.
    for (let i = 0; i < 3; i++) {
      expect((await redeliver(sql.query, accountId, inFlight.id))?.status).toBe('PENDING');
      expect(await claimDueDeliveries(sql.query, 16, 60_000, 1)).toEqual([]);
    }
    // The attempt in flight fails (the worker schedules its retry by the backoff, an hour away here): asked
    // for during the attempt, the redelivery goes now, as a new claim.
    expect(
      await recordAttempt(sql.query, inFlight, answered(500), {
        status: 'PENDING',
        nextAttemptAt: new Date(Date.now() + 3_600_000),
      }),
    ).toBe(true);
    const [again] = await claimDueDeliveries(sql.query, 16, 60_000, 1);
    expect(again?.id).toBe(inFlight.id);
    expect(again?.eventId).toBe(inFlight.eventId);
    expect(again?.attempts).toBe(2);
    // Answered 2xx without a redelivery in between: DELIVERED, nothing more due.
    expect(
      await recordAttempt(sql.query, again as ClaimedDelivery, answered(200), {
        status: 'DELIVERED',
        nextAttemptAt: null,
      }),
    ).toBe(true);
    expect(await claimDueDeliveries(sql.query, 16, 60_000, NO_CAP)).toEqual([]);
  });
});

describe('the delivery log, page by page', () => {
  it('lists every delivery once, also those written in the same millisecond by different transactions', async () => {
    const sql = sqlFor(orm);
    const accountId = await accountWithEndpoint();
    // Three events, each in its own transaction (as a charge, a deposit and a key's limit write theirs).
    for (let i = 0; i < 3; i++) await enqueue(accountId, 1);
    // PostgreSQL stamps them with now(), to the microsecond: here all in one millisecond, as happens under load.
    const rows = (await sql.query(
      {
        name: 'test_stamp_deliveries_in_one_ms',
        text: `update webhook_deliveries d set created_at = '2026-12-04T12:00:00.123Z'::timestamptz + n.us * interval '1 microsecond'
         from (select id, (row_number() over (order by id)) * 100 as us from webhook_deliveries
           where account_id = $1::uuid) n
         where d.id = n.id returning d.id, d.endpoint_id`,
      },
      [accountId],
    )) as { id: string; endpoint_id: string }[];
    expect(rows).toHaveLength(3);
    const endpointId = (rows[0] as { endpoint_id: string }).endpoint_id;
    // One delivery per page: each page's cursor must lead to the next one, newest first, none skipped.
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const result = (await listDeliveriesOfEndpoints(orm.em.fork(), [endpointId], { first: 1, after })).get(
        endpointId,
      );
      seen.push(...(result?.entries.map((delivery) => delivery.id) ?? []));
      if (!result?.hasNextPage) break;
      after = result.endCursor;
    }
    expect(seen.sort()).toEqual(rows.map((row) => row.id).sort());
  });
});

describe('the delivery log of a busy endpoint', () => {
  it('reads a page, not the whole log: a page of 5 of 2,000 deliveries fetches at most 6 of them', async () => {
    const accountId = await accountWithEndpoint();
    await enqueue(accountId, 2_000);
    const fetched = await sqlFor(orm).transaction(async (query) => {
      const [endpoint] = await query<{ id: string }>(
        {
          name: 'test_endpoint_of_account',
          text: 'select id from webhook_endpoints where account_id = $1::uuid',
        },
        [accountId],
      );
      // The heap rows this backend's index scans of the table fetched (PostgreSQL's own counter). It also
      // holds what earlier transactions on this connection fetched until the backend flushes its statistics,
      // which it never does inside a transaction: so the difference across the read, in one transaction.
      const fetchedSoFar = async () => {
        const [stats] = await query<{ fetched: string }>(
          {
            name: 'test_deliveries_fetched',
            text: `select pg_stat_get_xact_tuples_fetched('webhook_deliveries'::regclass)::text as fetched`,
          },
          [],
        );
        return Number(stats?.fetched);
      };
      const before = await fetchedSoFar();
      // 5 entries and one more, to tell whether there is a next page.
      const page = await readDeliveriesOfEndpoints(query, [endpoint?.id ?? ''], 6, null);
      expect(page).toHaveLength(6);
      return (await fetchedSoFar()) - before;
    });
    expect(fetched).toBeLessThanOrEqual(6);
  });
});

describe('pruneFinishedDeliveries', () => {
  it('deletes finished deliveries older than the retention with their attempts, never a pending one', async () => {
    const sql = sqlFor(orm);
    await aloneWithEvents(4);
    const [delivered, failed, recent, pending] = (
      await claimDueDeliveries(sql.query, 4, 60_000, NO_CAP)
    ).sort((x, y) => Number(x.data.i) - Number(y.data.i)) as [
      ClaimedDelivery,
      ClaimedDelivery,
      ClaimedDelivery,
      ClaimedDelivery,
    ];
    await recordAttempts(sql.query, [
      { delivery: delivered, result: answered(200), next: { status: 'DELIVERED', nextAttemptAt: null } },
      {
        delivery: failed,
        result: answered(500),
        next: { status: 'FAILED', nextAttemptAt: null },
      },
      { delivery: recent, result: answered(200), next: { status: 'DELIVERED', nextAttemptAt: null } },
      {
        delivery: pending,
        result: answered(503),
        next: { status: 'PENDING', nextAttemptAt: new Date(Date.now() + 60_000) },
      },
    ]);
    const day = 86_400_000;
    const aged = [delivered.id, failed.id, pending.id];
    await sql.query(
      {
        name: 'test_age_deliveries',
        text: 'update webhook_deliveries set created_at = $2 where id = any($1::uuid[])',
      },
      [aged, new Date(Date.now() - 40 * day).toISOString()],
    );

    const deleted = await pruneFinishedDeliveries(sql.query, new Date(Date.now() - 30 * day), 1_000);
    expect(deleted).toBe(2);
    const left = await readAttemptsOfDeliveries(sql.query, [delivered.id, failed.id, recent.id, pending.id]);
    expect(new Set(left.map((attempt) => attempt.deliveryId))).toEqual(new Set([recent.id, pending.id]));
    const rows = await sql.query(
      { name: 'test_deliveries_left', text: 'select id from webhook_deliveries where id = any($1::uuid[])' },
      [[delivered.id, failed.id, recent.id, pending.id]],
    );
    expect(new Set(rows.map((row) => (row as { id: string }).id))).toEqual(new Set([recent.id, pending.id]));
  });
});

describe('the outbox on embedded PGlite', async () => {
  const { orm: embedded } = await testOrmForFile('PGlite');
  it('enqueues, claims and records attempts (arrays, nulls and quotes in the excerpt)', async () => {
    const accountId = (
      await findOrCreateAccount(embedded.em.fork(), privateKeyToAddress(generatePrivateKey()))
    ).id;
    const sql = sqlFor(embedded);
    await sql.transaction((query) =>
      insertEndpointWithin(
        query,
        { accountId, url: 'http://127.0.0.1:9/hook', secret: 'whsec_AAAA', events: ['DEPOSIT_CREDITED'] },
        10,
      ),
    );
    await sql.transaction((query) =>
      enqueueWebhookEvents(query, [
        { accountId, type: 'DEPOSIT_CREDITED', data: { n: 1, text: 'a "quoted" \\ value' } },
        { accountId, type: 'DEPOSIT_CREDITED', data: { n: 2 } },
      ]),
    );
    const claimed = await claimDueDeliveries(sql.query, 10, 60_000, NO_CAP);
    expect(claimed.map((d) => d.data.n).sort()).toEqual([1, 2]);
    expect(claimed.find((d) => d.data.n === 1)?.data.text).toBe('a "quoted" \\ value');
    const [first, second] = claimed as [ClaimedDelivery, ClaimedDelivery];
    const attemptedAt = new Date();
    const moved = await recordAttempts(sql.query, [
      {
        delivery: first,
        result: {
          responseCode: 200,
          latencyMs: 4,
          error: null,
          responseExcerpt: 'ok "fine" {x}',
          attemptedAt,
        },
        next: { status: 'DELIVERED', nextAttemptAt: null },
      },
      {
        delivery: second,
        result: {
          responseCode: null,
          latencyMs: 9,
          error: 'ECONNREFUSED: "no"',
          responseExcerpt: null,
          attemptedAt,
        },
        next: { status: 'PENDING', nextAttemptAt: new Date(Date.now() + 60_000) },
      },
    ]);
    expect([...moved].sort()).toEqual([first.id, second.id].sort());
    const attempts = await readAttemptsOfDeliveries(sql.query, [first.id, second.id]);
    expect(attempts.find((a) => a.deliveryId === first.id)?.responseExcerpt).toBe('ok "fine" {x}');
    expect(attempts.find((a) => a.deliveryId === second.id)).toMatchObject({
      responseCode: null,
      error: 'ECONNREFUSED: "no"',
    });
    // Neither is due now: one delivered, one retried in a minute.
    expect(await claimDueDeliveries(sql.query, 10, 60_000, NO_CAP)).toEqual([]);
  });
});
