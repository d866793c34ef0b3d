/**
 * The hot path's SQL on a real PostgreSQL: holds are all-or-nothing, settlements are exactly-once and a
 * batch keeps every ledger invariant (hash chain, balance = sum of entries, key totals).
 */
import { randomBytes } from 'node:crypto';
import type { MicroUsd } from '@chainmeter/schema';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { checkLedgerInvariants } from '../../../test/support/ledger-invariants.ts';
import { fundedAccount } from '../../../test/support/users.ts';
import { sqlOf } from '../../db/sql.ts';
import { type ApiKeyCheck, createApiKey, hashApiKeySecret } from '../apikeys/apikeys.service.ts';
import { appendLedgerEntry } from '../ledger/ledger.service.ts';
import { extendHolds, findExpiredHolds, type PlaceHoldParameters, placeHold } from './hold.store.ts';
import { LedgerHeads } from './ledger-heads.ts';
import { InsufficientCreditsError } from './metering.errors.ts';
import { applyChargedSettlements, applySettlement } from './settlement.store.ts';
import type { Settlement } from './settlement.ts';

const { orm } = await testOrmForFile();

const newAccount = (balance: bigint) => fundedAccount(orm, balance);

const placed = (
  accountId: string,
  amount: bigint,
  apiKeyId: string | null = null,
  more: Pick<PlaceHoldParameters, 'streamed' | 'keyCheck'> = { streamed: false },
) =>
  placeHold(sqlOf(orm.em.fork()), {
    accountId,
    apiKeyId,
    requestId: `req_${randomBytes(8).toString('hex')}`,
    model: 'chainmeter-dev',
    hold: amount as MicroUsd,
    now: new Date(),
    holdExpiresAt: new Date(Date.now() + 60_000),
    ...more,
  });
const hold = async (accountId: string, amount: bigint, apiKeyId: string | null = null) =>
  (await placed(accountId, amount, apiKeyId)).usageId;

const billed = (price: bigint): Settlement => ({
  status: 'BILLED',
  promptTokens: 10,
  completionTokens: 20,
  providerCost: (price / 2n) as MicroUsd,
  userPrice: price as MicroUsd,
  latencyMs: 3,
  flags: [],
  error: null,
});

async function state(accountId: string) {
  const [row] = await orm.em
    .fork()
    .execute<{ balance: string; held: string }[]>(
      'select balance::text as balance, held::text as held from accounts where id = ?',
      [accountId],
    );
  return row;
}

describe('holds', () => {
  it('refuses a hold above the available balance and changes nothing', async () => {
    const accountId = await newAccount(1_000n);
    await hold(accountId, 600n);
    await expect(hold(accountId, 600n)).rejects.toBeInstanceOf(InsufficientCreditsError);
    expect(await state(accountId)).toEqual({ balance: '1000', held: '600' });
  });

  it('never spends money an account owes after a deep reorg: its debt is not available', async () => {
    // 1,000 in the balance, 700 owed (a reversed credit's shortfall that the next crediting round takes
    // from the balance): 300 can be spent, not 1,000.
    const accountId = await newAccount(1_000n);
    await orm.em.fork().execute('update accounts set debt = 700 where id = ?', [accountId]);
    await expect(hold(accountId, 301n)).rejects.toBeInstanceOf(InsufficientCreditsError);
    await hold(accountId, 300n);
    expect(await state(accountId)).toEqual({ balance: '1000', held: '300' });
  });

  it("refuses a hold past the key's spend limit, without holding on the account either", async () => {
    const accountId = await newAccount(1_000_000n);
    const { apiKey } = await createApiKey(orm.em.fork(), accountId, { name: 'k', spendLimit: 1_000n });
    await hold(accountId, 700n, apiKey.id);
    const error = await hold(accountId, 700n, apiKey.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InsufficientCreditsError);
    expect((error as InsufficientCreditsError).scope).toBe('apiKey');
    expect(await state(accountId)).toEqual({ balance: '1000000', held: '700' });
  });
});

describe('holds with a key check', () => {
  it('holds for a live key; refuses a revoked one, or another account, holding nothing', async () => {
    const accountId = await newAccount(1_000_000n);
    const { apiKey, secret } = await createApiKey(orm.em.fork(), accountId, { name: 'k' });
    const holdWith = (check: ApiKeyCheck, account = accountId) =>
      placed(account, 100n, apiKey.id, { streamed: false, keyCheck: check });
    const live = { secretHash: hashApiKeySecret(secret) };
    await expect(holdWith(live)).resolves.toMatchObject({ usageId: expect.any(String) });
    const other = await newAccount(1_000_000n);
    const wrongAccount = { secretHash: hashApiKeySecret(secret) };
    await expect(holdWith(wrongAccount, other)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const wrongSecret = { secretHash: hashApiKeySecret(`${secret}x`) };
    await expect(holdWith(wrongSecret)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await orm.em.fork().execute('update api_keys set revoked_at = now() where id = ?', [apiKey.id]);
    const revoked = { secretHash: hashApiKeySecret(secret) };
    await expect(holdWith(revoked)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await state(accountId)).toEqual({ balance: '1000000', held: '100' });
    expect(await state(other)).toEqual({ balance: '1000000', held: '0' });
  });
});

describe('settlement', () => {
  it('settles a batch on one account and key in order, each record once', async () => {
    const accountId = await newAccount(1_000_000n);
    const { apiKey } = await createApiKey(orm.em.fork(), accountId, { name: 'k' });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await hold(accountId, 1_000n, apiKey.id));
    const other = await newAccount(1_000_000n);
    const otherId = await hold(other, 1_000n);
    const first = ids[0] as string;
    await applySettlement(sqlOf(orm.em.fork()), first, billed(100n));
    const results = await applyChargedSettlements(sqlOf(orm.em.fork()), [
      ...ids.map((usageId, i) => ({ usageId, settlement: billed(BigInt(100 + i)) })),
      { usageId: otherId, settlement: billed(500n) },
      { usageId: ids[1] as string, settlement: billed(999n) }, // a duplicate: ignored
    ]);
    expect(results.has(first)).toBe(false); // already settled before the batch
    expect(results.size).toBe(5);
    // 100 (single) + 101 + 102 + 103 + 104
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 510), held: '0' });
    expect(await state(other)).toEqual({ balance: String(1_000_000 - 500), held: '0' });
    const [key] = await orm.em
      .fork()
      .execute<{ spent: string; held: string }[]>(
        'select spent::text as spent, held::text as held from api_keys where id = ?',
        [apiKey.id],
      );
    expect(key).toEqual({ spent: '510', held: '0' });
    const entries = await orm.em
      .fork()
      .execute<{ seq: number; amount: string; reference_id: string }[]>(
        `select seq, amount::text as amount, reference_id from ledger_entries where account_id = ? order by seq`,
        [accountId],
      );
    expect(entries.map((e) => [e.seq, e.amount, e.reference_id])).toEqual([
      [1, '1000000', 'setup'],
      [2, '-100', first],
      [3, '-101', ids[1]],
      [4, '-102', ids[2]],
      [5, '-103', ids[3]],
      [6, '-104', ids[4]],
    ]);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
    // Settling again, alone or in a batch, does nothing.
    expect(await applySettlement(sqlOf(orm.em.fork()), first, billed(100n))).toEqual({
      settled: false,
      reason: 'already settled',
    });
    expect(
      (await applyChargedSettlements(sqlOf(orm.em.fork()), [{ usageId: otherId, settlement: billed(5n) }]))
        .size,
    ).toBe(0);
  });

  it('concurrent settlements of the same records charge each once', async () => {
    const accountId = await newAccount(1_000_000n);
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push(await hold(accountId, 1_000n));
    const items = ids.map((usageId) => ({ usageId, settlement: billed(10n) }));
    await Promise.all([
      applyChargedSettlements(sqlOf(orm.em.fork()), items),
      applyChargedSettlements(sqlOf(orm.em.fork()), [...items].reverse()),
      ...ids.map((id) => applySettlement(sqlOf(orm.em.fork()), id, billed(10n))),
    ]);
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 200), held: '0' });
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('a release charges nothing and frees the hold', async () => {
    const accountId = await newAccount(5_000n);
    const id = await hold(accountId, 5_000n);
    expect(await state(accountId)).toEqual({ balance: '5000', held: '5000' });
    const result = await applySettlement(sqlOf(orm.em.fork()), id, {
      ...billed(0n),
      status: 'RELEASED',
      providerCost: null,
    });
    expect(result.settled).toBe(true);
    expect(await state(accountId)).toEqual({ balance: '5000', held: '0' });
  });

  it('writes a batch in one guarded statement from the heads its holds saw', async () => {
    const accountId = await newAccount(1_000_000n);
    const { apiKey } = await createApiKey(orm.em.fork(), accountId, { name: 'k' });
    const heads = new LedgerHeads();
    const items = [];
    for (let i = 0; i < 3; i++) {
      const { usageId, head } = await placed(accountId, 1_000n, apiKey.id);
      heads.observe(accountId, head);
      items.push({
        usageId,
        settlement: billed(100n),
        record: { accountId, apiKeyId: apiKey.id, hold: 1_000n },
      });
    }
    expect(heads.get(accountId)).toMatchObject({ seq: 1, balance: 1_000_000n });
    expect((await applyChargedSettlements(sqlOf(orm.em.fork()), items, heads)).size).toBe(3);
    expect(heads.outcomes).toEqual({ guarded: 1, stale: 0 });
    expect(heads.get(accountId)).toMatchObject({ seq: 4, balance: 1_000_000n - 300n });
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 300), held: '0' });
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
    // Again: the records are settled, so the guarded statement writes nothing and the lock finds nothing.
    expect((await applyChargedSettlements(sqlOf(orm.em.fork()), items, heads)).size).toBe(0);
    expect(heads.outcomes).toEqual({ guarded: 1, stale: 1 });
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 300), held: '0' });
  });

  it('a head gone stale (a credit landed after the hold) falls back to the lock and chains right', async () => {
    const accountId = await newAccount(1_000_000n);
    const heads = new LedgerHeads();
    const { usageId, head } = await placed(accountId, 1_000n);
    heads.observe(accountId, head);
    await appendLedgerEntry(orm.em.fork(), {
      accountId,
      amount: 50n,
      reason: 'ADJUSTMENT',
      referenceId: 'between the hold and the settlement',
    });
    const item = { usageId, settlement: billed(100n), record: { accountId, apiKeyId: null, hold: 1_000n } };
    expect((await applyChargedSettlements(sqlOf(orm.em.fork()), [item], heads)).get(usageId)).toMatchObject({
      settled: true,
    });
    expect(heads.outcomes).toEqual({ guarded: 0, stale: 1 });
    expect(heads.get(accountId)).toMatchObject({ seq: 3, balance: 1_000_050n - 100n });
    expect(await state(accountId)).toEqual({ balance: String(1_000_050 - 100), held: '0' });
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('a record that does not match what its hold wrote is never settled by the guarded statement', async () => {
    const accountId = await newAccount(1_000_000n);
    const heads = new LedgerHeads();
    const { usageId, head } = await placed(accountId, 1_000n);
    heads.observe(accountId, head);
    // A wrong hold amount: the guard refuses it and the locking path uses the record's own.
    const item = { usageId, settlement: billed(100n), record: { accountId, apiKeyId: null, hold: 2_000n } };
    expect((await applyChargedSettlements(sqlOf(orm.em.fork()), [item], heads)).size).toBe(1);
    expect(heads.outcomes).toEqual({ guarded: 0, stale: 1 });
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 100), held: '0' });
  });

  it('racing guarded batches, locked batches and single settlements charge each record once', async () => {
    const accountId = await newAccount(1_000_000n);
    const heads = new LedgerHeads();
    const items = [];
    for (let i = 0; i < 20; i++) {
      const { usageId, head } = await placed(accountId, 1_000n);
      heads.observe(accountId, head);
      items.push({ usageId, settlement: billed(10n), record: { accountId, apiKeyId: null, hold: 1_000n } });
    }
    await Promise.all([
      applyChargedSettlements(sqlOf(orm.em.fork()), items, heads),
      applyChargedSettlements(sqlOf(orm.em.fork()), [...items].reverse(), heads),
      applyChargedSettlements(sqlOf(orm.em.fork()), items.slice(5, 10)),
      ...items.map((item) => applySettlement(sqlOf(orm.em.fork()), item.usageId, billed(10n))),
    ]);
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 200), held: '0' });
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });
});

describe('heartbeat', () => {
  it("records a stream's progress, never backwards, and an expired hold carries it", async () => {
    const accountId = await newAccount(1_000_000n);
    const sql = sqlOf(orm.em.fork());
    const stream = await placed(accountId, 5_000n, null, { streamed: true });
    const plain = await hold(accountId, 1_000n);
    const until = new Date(Date.now() + 120_000);
    const progress = (generatedBytes: number) => [
      { usageId: stream.usageId, generatedBytes, promptTokensBound: 40 },
    ];
    expect(await extendHolds(sql, [stream.usageId, plain], until, progress(300))).toBe(2);
    // A late beat with less (the writes of two beats crossed) changes nothing.
    expect(await extendHolds(sql, [stream.usageId], until, progress(100))).toBe(1);

    const expired = await findExpiredHolds(sql, new Date(until.getTime() + 1), 10_000);
    const byId = new Map(expired.map((record) => [record.id, record]));
    expect(byId.get(stream.usageId)).toMatchObject({
      streamed: true,
      hold: 5_000n,
      generatedBytes: 300,
      promptTokensBound: 40,
    });
    expect(byId.get(stream.usageId)?.progressAt).toBeInstanceOf(Date);
    expect(byId.get(plain)).toMatchObject({
      streamed: false,
      generatedBytes: 0,
      promptTokensBound: null,
      progressAt: null,
    });
    // Not yet expired, or in flight here: not returned.
    expect((await findExpiredHolds(sql, new Date(), 10_000)).map((r) => r.id)).not.toContain(plain);
    const excluded = await findExpiredHolds(sql, new Date(until.getTime() + 1), 10_000, [plain]);
    expect(excluded.map((r) => r.id)).not.toContain(plain);
    const release: Settlement = { ...billed(0n), status: 'RELEASED', providerCost: null };
    for (const id of [stream.usageId, plain]) await applySettlement(sql, id, release);
    expect(await state(accountId)).toEqual({ balance: '1000000', held: '0' });
  });
});

describe('heartbeat locks', () => {
  it('never waits behind a record a settlement holds: it extends the others, and that one at the next beat', async () => {
    const accountId = await newAccount(1_000_000n);
    const [first, second, third] = [
      await hold(accountId, 1n),
      await hold(accountId, 1n),
      await hold(accountId, 1n),
    ];
    const until = new Date(Date.now() + 120_000);
    const expiries = async () =>
      new Map(
        (
          await orm.em
            .fork()
            .execute<{ id: string; until: Date }[]>(
              'select id, hold_expires_at as until from usage_records where id in (?, ?, ?)',
              [first, second, third],
            )
        ).map((row) => [row.id, new Date(row.until).getTime()]),
      );
    // A settlement's transaction holds the middle record (it may wait on an account for a long time).
    const settling = orm.em.fork();
    await settling.begin();
    const beating = orm.em.fork();
    try {
      await settling.execute('select id from usage_records where id = ? for update', [second]);
      // The beat runs where waiting for a lock fails after a second, instead of waiting.
      await beating.begin();
      await beating.execute("set local lock_timeout = '1s'");
      expect(await extendHolds(sqlOf(beating), [third, second, first], until)).toBe(2);
      await beating.commit();
      const seen = await expiries();
      expect([seen.get(first), seen.get(third)]).toEqual([until.getTime(), until.getTime()]);
      expect(seen.get(second)).toBeLessThan(until.getTime());
    } finally {
      if (beating.isInTransaction()) await beating.rollback();
      await settling.rollback();
    }
    // The settlement rolled back: the next beat extends its record.
    expect(await extendHolds(sqlOf(orm.em.fork()), [first, second, third], until)).toBe(3);
    expect((await expiries()).get(second)).toBe(until.getTime());
  });
});

/** A hold of 5,000 placed at `past` that expired a second later. */
function expiredHold(sql: ReturnType<typeof sqlOf>, accountId: string, past: Date, streamed: boolean) {
  return placeHold(sql, {
    accountId,
    apiKeyId: null,
    requestId: `req_${randomBytes(8).toString('hex')}`,
    model: 'chainmeter-dev',
    hold: 5_000n as MicroUsd,
    streamed,
    now: past,
    holdExpiresAt: new Date(past.getTime() + 1_000),
  });
}

describe('the expiry sweep against a locked record', () => {
  it('leaves a record locked now for a later round instead of queueing every expired hold behind it', async () => {
    const accountId = await newAccount(1_000_000n);
    const sql = sqlOf(orm.em.fork());
    const past = new Date(Date.now() - 60_000);
    const locked = await expiredHold(sql, accountId, past, false);
    const free = await expiredHold(sql, accountId, past, false);
    // A settlement (or a dead process's statement that still waits on a lock) holds one of the records.
    const settling = orm.em.fork();
    await settling.begin();
    try {
      await settling.execute('select id from usage_records where id = ? for update', [locked.usageId]);
      const seen = (await findExpiredHolds(sql, new Date(), 10_000)).map((record) => record.id);
      expect(seen).toContain(free.usageId);
      expect(seen).not.toContain(locked.usageId);
    } finally {
      await settling.rollback();
    }
    // Once the lock is gone, the next round finds it.
    const later = (await findExpiredHolds(sql, new Date(), 10_000)).map((record) => record.id);
    expect(later).toEqual(expect.arrayContaining([locked.usageId, free.usageId]));
    const release: Settlement = { ...billed(0n), status: 'RELEASED', providerCost: null };
    for (const id of [locked.usageId, free.usageId]) await applySettlement(sql, id, release);
    expect(await state(accountId)).toEqual({ balance: '1000000', held: '0' });
  });

  it("leaves the holds of an account a writer has locked for a later round, not the other accounts'", async () => {
    const busy = await newAccount(1_000_000n);
    const other = await newAccount(1_000_000n);
    const sql = sqlOf(orm.em.fork());
    const past = new Date(Date.now() - 60_000);
    const onBusy = await expiredHold(sql, busy, past, false);
    const onOther = await expiredHold(sql, other, new Date(past.getTime() + 1_000), false);
    // A writer (a settlement, or a dead process's statement still running) holds the first account's row.
    const writing = orm.em.fork();
    await writing.begin();
    try {
      await writing.execute('update accounts set balance = balance where id = ?', [busy]);
      const seen = (await findExpiredHolds(sql, new Date(), 10_000)).map((record) => record.id);
      expect(seen).toContain(onOther.usageId);
      expect(seen).not.toContain(onBusy.usageId);
      // Another sweeping replica's read does not hide the account from this one.
      const sweeping = orm.em.fork();
      await sweeping.begin();
      try {
        await sweeping.execute('select id from accounts where id = ? for share', [other]);
        expect((await findExpiredHolds(sql, new Date(), 10_000)).map((r) => r.id)).toContain(onOther.usageId);
      } finally {
        await sweeping.rollback();
      }
    } finally {
      await writing.rollback();
    }
    expect((await findExpiredHolds(sql, new Date(), 10_000)).map((r) => r.id)).toEqual(
      expect.arrayContaining([onBusy.usageId, onOther.usageId]),
    );
    const release: Settlement = { ...billed(0n), status: 'RELEASED', providerCost: null };
    for (const id of [onBusy.usageId, onOther.usageId]) await applySettlement(sql, id, release);
    expect(await state(busy)).toEqual({ balance: '1000000', held: '0' });
    expect(await state(other)).toEqual({ balance: '1000000', held: '0' });
  });
});

describe('the expiry sweep against a live heartbeat', () => {
  it('never releases or bills a hold that a heartbeat extended after the sweep read it', async () => {
    const accountId = await newAccount(1_000_000n);
    const sql = sqlOf(orm.em.fork());
    const sweepAt = new Date();
    const past = new Date(sweepAt.getTime() - 60_000);
    const plain = await expiredHold(sql, accountId, past, false);
    const stream = await expiredHold(sql, accountId, past, true);
    // The stream's last beat before its expiry recorded 300 bytes (the expiry stays in the past).
    await extendHolds(sql, [stream.usageId], past, [
      { usageId: stream.usageId, generatedBytes: 300, promptTokensBound: 40 },
    ]);

    // 1. The sweep reads both holds as expired...
    const seen = (await findExpiredHolds(sql, sweepAt, 10_000)).map((record) => record.id);
    expect(seen).toEqual(expect.arrayContaining([plain.usageId, stream.usageId]));
    // 2. ...then the heartbeat of the replica still running both calls extends them...
    const extendedTo = new Date(sweepAt.getTime() + 60_000);
    expect(await extendHolds(sql, [plain.usageId, stream.usageId], extendedTo)).toBe(2);
    // 3. ...and the sweep settles what it read: a release, and a charge for the stream's progress.
    const release: Settlement = {
      ...billed(0n),
      status: 'RELEASED',
      providerCost: null,
      flags: ['HOLD_EXPIRED'],
    };
    const charge: Settlement = { ...billed(900n), flags: ['STREAM_INTERRUPTED', 'USAGE_ESTIMATED'] };
    expect(await applySettlement(sql, plain.usageId, release, { expiredAt: sweepAt })).toEqual({
      settled: false,
      reason: 'already settled',
    });
    expect(await applySettlement(sql, stream.usageId, charge, { expiredAt: sweepAt })).toEqual({
      settled: false,
      reason: 'already settled',
    });
    // Both calls keep their holds, untouched: no release under a running call, no charge.
    const statuses = await orm.em
      .fork()
      .execute<{ status: string }[]>('select status from usage_records where id in (?, ?)', [
        plain.usageId,
        stream.usageId,
      ]);
    expect(statuses.map((row) => row.status)).toEqual(['HELD', 'HELD']);
    expect(await state(accountId)).toEqual({ balance: '1000000', held: '10000' });

    // Once the heartbeat stops and the extended holds expire, the sweep closes them.
    const later = new Date(extendedTo.getTime() + 1);
    expect(await applySettlement(sql, plain.usageId, release, { expiredAt: later })).toMatchObject({
      settled: true,
    });
    expect(await applySettlement(sql, stream.usageId, charge, { expiredAt: later })).toMatchObject({
      settled: true,
    });
    expect(await state(accountId)).toEqual({ balance: '999100', held: '0' }); // 1,000,000 - 900
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });
});

describe('LedgerHeads', () => {
  const head = (seq: number) => ({ seq, hash: `h${seq}`, balance: BigInt(seq) });

  it('keeps the newest head of each account and forgets the least recently seen first', () => {
    const heads = new LedgerHeads(2);
    heads.observe('a', head(5));
    heads.observe('a', head(3)); // older: ignored
    expect(heads.get('a')).toEqual(head(5));
    heads.observe('b', head(1));
    heads.observe('a', head(6)); // 'a' is now the most recent
    heads.observe('c', head(1)); // over capacity: 'b' goes
    expect(heads.get('b')).toBeUndefined();
    expect(heads.get('a')).toEqual(head(6));
    heads.forget('a');
    expect(heads.get('a')).toBeUndefined();
  });
});
