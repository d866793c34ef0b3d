/**
 * Grouped holds on a real PostgreSQL (and on PGlite, its one session): a batch decides each member exactly
 * as the single-row hold run one after another in arrival order would, or leaves it to that statement
 * (a refusal, and every member after it on the same account); each member gets its own usage record and
 * head; holds that arrive while a batch is written go out together; grouped holds racing settlements on the
 * same accounts and keys never deadlock and never hold more than the account can spend.
 */
import { randomBytes } from 'node:crypto';
import type { MicroUsd } from '@chainmeter/schema';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DRIVERS, testOrmForFile } from '../../../test/support/database.ts';
import { checkLedgerInvariants } from '../../../test/support/ledger-invariants.ts';
import { untilALockIsWaitedFor } from '../../../test/support/lock-waits.ts';
import { fundedAccount } from '../../../test/support/users.ts';
import { type SqlRunner, sqlFor, sqlOf, sqlWithGenericPlans } from '../../db/sql.ts';
import { createApiKey, hashApiKeySecret } from '../apikeys/apikeys.service.ts';
import { type PlacedHold, type PlaceHoldParameters, placeHold, placeHolds } from './hold.store.ts';
import { HoldBatcher } from './hold-batcher.ts';
import { LedgerHeads } from './ledger-heads.ts';
import { InsufficientCreditsError } from './metering.errors.ts';
import { applyChargedSettlements, applySettlement } from './settlement.store.ts';
import type { Settlement } from './settlement.ts';

/** `inner`, pushing the name of every statement it runs onto `seen`. */
function recordingNames(inner: SqlRunner, seen: string[]): SqlRunner {
  return {
    ...inner,
    query: (statement, values) => {
      seen.push(statement.name);
      return inner.query(statement, values);
    },
  };
}

/** What the batchers logged: a batch that failed (a constraint, a deadlock) is a warning. */
const warnings: string[] = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });

describe.each(TEST_DRIVERS)('grouped holds on %s', async (driver) => {
  const { orm } = await testOrmForFile(driver);
  const sql = sqlFor(orm);
  const planned = sqlWithGenericPlans(orm, 1);
  afterAll(() => planned.close());

  const newAccount = (balance: bigint) => fundedAccount(orm, balance);

  const params = (
    accountId: string,
    amount: bigint,
    more: Partial<PlaceHoldParameters> = {},
  ): PlaceHoldParameters => ({
    accountId,
    apiKeyId: null,
    requestId: `req_${randomBytes(8).toString('hex')}`,
    model: 'chainmeter-dev',
    hold: amount as MicroUsd,
    streamed: false,
    now: new Date(),
    holdExpiresAt: new Date(Date.now() + 60_000),
    ...more,
  });

  async function held(table: 'accounts' | 'api_keys', id: string): Promise<string | undefined> {
    const [row] = await orm.em
      .fork()
      .execute<{ held: string }[]>(`select held::text as held from ${table} where id = ?`, [id]);
    return row?.held;
  }

  async function records(
    ids: readonly string[],
  ): Promise<{ id: string; hold_amount: string; status: string }[]> {
    return orm.em
      .fork()
      .execute(
        `select id, hold_amount::text as hold_amount, status from usage_records where id in (${ids.map(() => '?').join(', ')}) order by created_at`,
        [...ids],
      );
  }

  /** Holds placed by the batcher: all at once, so all but the first go out together. */
  async function placeAll(
    batcher: HoldBatcher,
    all: readonly PlaceHoldParameters[],
  ): Promise<PromiseSettledResult<PlacedHold>[]> {
    return Promise.allSettled(all.map((p) => batcher.place(p)));
  }

  it('places holds on one account cumulatively, leaving out the first that does not fit and those after it', async () => {
    // 100 available; one by one: 30 held, 90 refused (70 left), 20 held (50 left), 60 refused, 40 held.
    const accountId = await newAccount(100n);
    const batch = [30n, 90n, 20n, 60n, 40n].map((amount) => params(accountId, amount));
    const results = await placeHolds(planned.sql, batch);
    expect(results.map((r) => r !== null)).toEqual([true, false, false, false, false]);
    expect(await held('accounts', accountId)).toBe('30');

    // Through the batcher the rest get their own outcome, in arrival order, exactly as one by one.
    const other = await newAccount(100n);
    const batcher = new HoldBatcher(sql, planned.sql, logger);
    const outcomes = await placeAll(
      batcher,
      [30n, 90n, 20n, 60n, 40n].map((amount) => params(other, amount)),
    );
    expect(outcomes.map((o) => o.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    for (const o of outcomes) {
      if (o.status === 'rejected') {
        expect(o.reason).toBeInstanceOf(InsufficientCreditsError);
        expect((o.reason as InsufficientCreditsError).scope).toBe('account');
      }
    }
    expect(await held('accounts', other)).toBe('90');
  });

  it('never holds more than the account can spend, its debt included, and gives each member its own record', async () => {
    const accountId = await newAccount(1_000n);
    await orm.em.fork().execute('update accounts set debt = 100 where id = ?', [accountId]);
    const second = await newAccount(50n);
    const batch = [
      ...Array.from({ length: 40 }, () => params(accountId, 30n)),
      params(second, 50n),
      params(second, 1n),
    ];
    const results = await placeHolds(planned.sql, batch);
    // 900 spendable: 30 of 30 fit, the 31st does not; the second account's 50 fits, then nothing.
    expect(results.filter((r) => r !== null)).toHaveLength(31);
    expect(results.slice(0, 30).every((r) => r !== null)).toBe(true);
    expect(results.slice(30, 40).every((r) => r === null)).toBe(true);
    expect(results[40]).not.toBeNull();
    expect(results[41]).toBeNull();
    expect(await held('accounts', accountId)).toBe('900');
    expect(await held('accounts', second)).toBe('50');
    const placed = results.filter((r): r is PlacedHold => r !== null);
    const ids = placed.map((r) => r.usageId);
    expect(new Set(ids).size).toBe(31);
    const rows = await records(ids);
    expect(rows).toHaveLength(31);
    expect(rows.every((row) => row.status === 'HELD')).toBe(true);
    // The head each hold saw: its own account's.
    expect(placed[0]?.head).toMatchObject({ seq: 1, balance: 1_000n });
    expect(placed[30]?.head).toMatchObject({ seq: 1, balance: 50n });
  });

  it("checks the key's spend limit cumulatively, its period included, and gives a refused one the key's refusal", async () => {
    const accountId = await newAccount(1_000_000n);
    const { apiKey } = await createApiKey(orm.em.fork(), accountId, { name: 'k', spendLimit: 1_000n });
    const results = await placeHolds(
      planned.sql,
      [400n, 400n, 400n, 100n].map((amount) => params(accountId, amount, { apiKeyId: apiKey.id })),
    );
    expect(results.map((r) => r !== null)).toEqual([true, true, false, false]);
    expect(await held('api_keys', apiKey.id)).toBe('800');

    // A daily limit whose period has ended: yesterday's spend no longer counts, the new period's does.
    const { apiKey: daily } = await createApiKey(orm.em.fork(), accountId, {
      name: 'd',
      spendLimit: 1_000n,
      limitReset: 'DAILY',
    });
    await orm.em
      .fork()
      .execute(
        `update api_keys set period_spent = 900, period_start = now() - interval '2 days' where id = ?`,
        [daily.id],
      );
    const batcher = new HoldBatcher(sql, planned.sql, logger);
    const outcomes = await placeAll(
      batcher,
      [600n, 600n, 300n].map((amount) => params(accountId, amount, { apiKeyId: daily.id })),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const refused = outcomes[1];
    expect(refused?.status === 'rejected' && refused.reason).toBeInstanceOf(InsufficientCreditsError);
    expect(refused?.status === 'rejected' && (refused.reason as InsufficientCreditsError).scope).toBe(
      'apiKey',
    );
    const [row] = await orm.em.fork().execute<{ held: string; period_spent: string; fresh: boolean }[]>(
      `select held::text as held, period_spent::text as period_spent,
           period_start = date_trunc('day', now(), 'UTC') as fresh from api_keys where id = ?`,
      [daily.id],
    );
    expect(row).toEqual({ held: '900', period_spent: '0', fresh: true });
  });

  it('refuses a dead key or a wrong account with UNAUTHENTICATED, holding nothing for it, and places the rest', async () => {
    const accountId = await newAccount(1_000_000n);
    const other = await newAccount(1_000_000n);
    const { apiKey, secret } = await createApiKey(orm.em.fork(), accountId, { name: 'k' });
    const { apiKey: revoked, secret: revokedSecret } = await createApiKey(orm.em.fork(), other, {
      name: 'r',
    });
    await orm.em.fork().execute('update api_keys set revoked_at = now() where id = ?', [revoked.id]);
    const live = { secretHash: hashApiKeySecret(secret) };
    const batcher = new HoldBatcher(sql, planned.sql, logger);
    const outcomes = await placeAll(batcher, [
      params(accountId, 100n, { apiKeyId: apiKey.id, keyCheck: live }),
      params(other, 100n, {
        apiKeyId: revoked.id,
        keyCheck: { secretHash: hashApiKeySecret(revokedSecret) },
      }),
      params(other, 100n, { apiKeyId: apiKey.id, keyCheck: live }), // the key is not this account's
      params(accountId, 100n, {
        apiKeyId: apiKey.id,
        keyCheck: { secretHash: hashApiKeySecret(`${secret}x`) },
      }),
      params(accountId, 100n, { apiKeyId: apiKey.id, keyCheck: live }),
      params(other, 100n),
    ]);
    expect(
      outcomes.map((o) => (o.status === 'fulfilled' ? 'held' : (o.reason as { code?: string }).code)),
    ).toEqual(['held', 'UNAUTHENTICATED', 'UNAUTHENTICATED', 'UNAUTHENTICATED', 'held', 'held']);
    expect(await held('accounts', accountId)).toBe('200');
    expect(await held('api_keys', apiKey.id)).toBe('200');
    expect(await held('accounts', other)).toBe('100');
    expect(await held('api_keys', revoked.id)).toBe('0');
  });

  it('sends the holds that arrive while a batch is written in one statement, alone when idle', async () => {
    const accountId = await newAccount(1_000_000n);
    const seen: string[] = [];
    const counting = (inner: SqlRunner) => recordingNames(inner, seen);
    const batcher = new HoldBatcher(counting(sql), counting(planned.sql), logger);
    await batcher.place(params(accountId, 1n));
    expect(seen).toEqual(['cm_place_hold']);
    await new Promise((resolve) => setImmediate(resolve)); // the batcher idle again
    seen.length = 0;
    const outcomes = await placeAll(
      batcher,
      Array.from({ length: 20 }, () => params(accountId, 1n)),
    );
    expect(outcomes.every((o) => o.status === 'fulfilled')).toBe(true);
    // The first goes alone at once; the 19 that arrived meanwhile, together.
    expect(seen).toEqual(['cm_place_hold', 'cm_place_holds']);
    expect(await held('accounts', accountId)).toBe('21');
  });

  /** A call charged 200 of its hold (a settlement's usual shape in these tests). */
  const charged200: Settlement = {
    status: 'BILLED',
    promptTokens: 1,
    completionTokens: 1,
    providerCost: 100n as MicroUsd,
    userPrice: 200n as MicroUsd,
    latencyMs: 1,
    flags: [],
    error: null,
  };

  /**
   * Settles `usageId` in a transaction left open (its record, account and key locked, its writes not yet
   * committed) until `holds` has started and is waiting for those locks, then commits: `holds` began with a
   * snapshot from before the settlement and gets its locks after it.
   */
  async function whileSettling<T>(usageId: string, holds: () => Promise<T>): Promise<T> {
    let started: Promise<T> | undefined;
    await orm.em.fork().transactional(async (em) => {
      const settled = await applySettlement(sqlOf(em), usageId, charged200);
      expect(settled.settled).toBe(true);
      let done = false;
      started = holds();
      started.then(
        () => {
          done = true;
        },
        () => {
          done = true; // awaited below, after the commit
        },
      );
      // Until the holds wait for a lock (only they can, in this database), or gave up without waiting.
      await untilALockIsWaitedFor(orm, () => done);
    });
    return started as Promise<T>;
  }

  /**
   * 800 held on the account (and its key, when given) while a settlement of a 300 hold at 200 commits: 8 x
   * 100 in one batch, or one hold of 800 alone (each statement's way). `true` when all of it was placed.
   */
  const eightHundred: [string, (accountId: string, apiKeyId: string | null) => Promise<boolean>][] = [
    [
      'grouped',
      async (accountId, apiKeyId) =>
        (
          await placeHolds(
            planned.sql,
            Array.from({ length: 8 }, () => params(accountId, 100n, { apiKeyId })),
          )
        ).every((r) => r !== null),
    ],
    [
      'alone',
      async (accountId, apiKeyId) => (await placeHold(sql, params(accountId, 800n, { apiKeyId }))) !== null,
    ],
  ];

  for (const [how, placeEightHundred] of eightHundred) {
    it.runIf(driver === 'PostgreSQL')(
      `decides and writes a key's holds (${how}) from the key as it is once locked, a settlement committed meanwhile included`,
      async () => {
        // Limit 1,000; a call holds 300 and is settled at 200 while the holds wait: the key then has 800 left
        // (spent 200, held 0), before it 700 (held 300). The 800 fit exactly in the key as locked.
        const accountId = await newAccount(10_000n);
        const { apiKey } = await createApiKey(orm.em.fork(), accountId, { name: 'k', spendLimit: 1_000n });
        const first = await placeHold(sql, params(accountId, 300n, { apiKeyId: apiKey.id }));
        expect(await whileSettling(first.usageId, () => placeEightHundred(accountId, apiKey.id))).toBe(true);
        const [key] = await orm.em
          .fork()
          .execute<{ held: string; spent: string }[]>(
            'select held::text as held, spent::text as spent from api_keys where id = ?',
            [apiKey.id],
          );
        expect(key).toEqual({ held: '800', spent: '200' });
        expect(await held('accounts', accountId)).toBe('800');
      },
      30_000,
    );

    it.runIf(driver === 'PostgreSQL')(
      `decides and writes an account's holds (${how}) from the account as it is once locked, a settlement committed meanwhile included`,
      async () => {
        // Balance 1,000; a call holds 300 and is settled at 200 while the holds wait: 800 available after it
        // (balance 800, held 0), 700 before. The 800 fit exactly in the account as locked.
        const accountId = await newAccount(1_000n);
        const first = await placeHold(sql, params(accountId, 300n));
        expect(await whileSettling(first.usageId, () => placeEightHundred(accountId, null))).toBe(true);
        const [account] = await orm.em
          .fork()
          .execute<{ balance: string; held: string }[]>(
            'select balance::text as balance, held::text as held from accounts where id = ?',
            [accountId],
          );
        expect(account).toEqual({ balance: '800', held: '800' });
      },
      30_000,
    );
  }

  it('racing grouped holds (two replicas) and settlement batches never deadlock nor overspend', async () => {
    const calls = driver === 'PGlite' ? 60 : 300;
    // Each account can hold all its calls (100 x 300 on PostgreSQL), its key two thirds of them.
    const balance = BigInt(calls / 3) * 300n;
    const limit = (balance * 2n) / 3n;
    const accounts = await Promise.all([newAccount(balance), newAccount(balance), newAccount(balance)]);
    const keys = await Promise.all(
      accounts.map(
        async (accountId) =>
          (await createApiKey(orm.em.fork(), accountId, { name: 'k', spendLimit: limit })).apiKey.id,
      ),
    );
    // Two replicas, each its own batcher and batch connection.
    const second = sqlWithGenericPlans(orm, 1);
    const seen: string[] = [];
    const counting = (inner: SqlRunner) => recordingNames(inner, seen);
    const replicas = [
      new HoldBatcher(sql, counting(planned.sql), logger),
      new HoldBatcher(sql, counting(second.sql), logger),
    ];
    warnings.length = 0;
    const heads = new LedgerHeads();
    const settled: Promise<unknown>[] = [];
    let placedCount = 0;
    let refused = 0;
    try {
      await Promise.all(
        Array.from({ length: calls }, async (_, i) => {
          const index = i % accounts.length;
          const accountId = accounts[index] as string;
          const batcher = replicas[i % 2] as HoldBatcher;
          const placed = await batcher
            .place(params(accountId, 300n, { apiKeyId: keys[index] as string }))
            .catch((error: unknown) => {
              if (!(error instanceof InsufficientCreditsError)) throw error;
              refused += 1;
              return null;
            });
          if (!placed) return;
          placedCount += 1;
          heads.observe(accountId, placed.head);
          // Half are settled at once (charging 200 of the 300 held), on the batch connections too.
          if (i % 2 === 0) {
            settled.push(
              applyChargedSettlements(
                planned.sql,
                [{ usageId: placed.usageId, settlement: charged200 }],
                heads,
              ),
            );
          }
        }),
      );
      await Promise.all(settled);
    } finally {
      await second.close();
    }
    expect(placedCount + refused).toBe(calls);
    expect(refused).toBeGreaterThan(0); // the keys' limits
    expect(seen.filter((name) => name === 'cm_place_holds').length).toBeGreaterThan(0);
    // No batch failed: none judged a row older than the one it locked (the key's CHECK fired in 1 run of
    // 30 here, and in 10 batches of 60 in 30 rounds of this race, before PLACE_HOLDS wrote from its locks).
    expect(warnings).toEqual([]);
    const report = await checkLedgerInvariants(orm.em.fork());
    expect(report.problems).toEqual([]);
    for (const [index, accountId] of accounts.entries()) {
      const [row] = await orm.em.fork().execute<{ ok: boolean; key_ok: boolean }[]>(
        `select a.held = coalesce((select sum(hold_amount) from usage_records where account_id = a.id and status = 'HELD'), 0)
             and a.balance - a.held - a.debt >= 0 as ok,
           k.held = coalesce((select sum(hold_amount) from usage_records where api_key_id = k.id and status = 'HELD'), 0)
             and k.spent + k.held <= k.spend_limit as key_ok
         from accounts a join api_keys k on k.account_id = a.id where a.id = ? and k.id = ?`,
        [accountId, keys[index]],
      );
      expect(row).toEqual({ ok: true, key_ok: true });
    }
  }, 60_000);
});
