/**
 * API keys on a real PostgreSQL database: what is stored (never the secret), validation, isolation
 * between accounts, revocation and expiry, `last_used_at` throttling, the live-key cap under races, and
 * the spend-limit CHECK refusing an over-limit reservation under a concurrent raw SQL burst.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { getAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { sqlOf } from '../../db/sql.ts';
import { ExpectedError } from '../../errors.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import { ApiKey, LIMIT_RESETS } from './apikeys.entity.ts';
import {
  callerFromApiKey,
  createApiKey,
  hashApiKeySecret,
  keyLimitReached,
  keyPeriodStart,
  LAST_USED_RESOLUTION_MS,
  listApiKeys,
  MAX_LIVE_KEYS_PER_ACCOUNT,
  revokeApiKey,
  spentThisPeriod,
  viewerFromApiKey,
} from './apikeys.service.ts';
import { keyPeriodStartSql } from './apikeys.store.ts';

const { orm, url } = await testOrmForFile();
const AUDITOR = getAddress(`0x${'a1'.repeat(20)}`);
const config = { auditorAddresses: [AUDITOR] };

const fork = () => orm.em.fork();
const sql = <T = Record<string, unknown>>(query: string, params: unknown[] = []) =>
  fork().getConnection().execute<T[]>(query, params);

async function newAccount(wallet = getAddress(`0x${randomBytes(20).toString('hex')}`)): Promise<string> {
  const em = fork();
  const account = await findOrCreateAccount(em, wallet);
  return account.id;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<ExpectedError> {
  const error = await promise.then(
    () => null,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ExpectedError);
  expect((error as ExpectedError).code).toBe(code);
  return error as ExpectedError;
}

describe('createApiKey', () => {
  it('returns the secret once and stores only its hash and a display prefix', async () => {
    const accountId = await newAccount();
    const { apiKey, secret } = await createApiKey(fork(), accountId, { name: '  CI runner  ' });
    expect(secret).toMatch(/^cm_[A-Za-z0-9_-]{43}$/);
    expect(apiKey.name).toBe('CI runner');
    expect(apiKey.prefix).toBe(secret.slice(0, 11));
    const [row] = await sql(`select * from api_keys where id = ?`, [apiKey.id]);
    expect(row?.secret_hash).toBe(hashApiKeySecret(secret));
    // The secret (or its random part) appears in no column of the row.
    expect(JSON.stringify(row)).not.toContain(secret.slice(3));
    expect(row).toMatchObject({ spent: '0', held: '0', spend_limit: null, revoked_at: null });
  });

  it('gives every key a different secret', async () => {
    const accountId = await newAccount();
    const secrets = new Set<string>();
    for (let i = 0; i < 10; i++)
      secrets.add((await createApiKey(fork(), accountId, { name: `k${i}` })).secret);
    expect(secrets.size).toBe(10);
  });

  it('refuses bad input with BAD_USER_INPUT', async () => {
    const accountId = await newAccount();
    await expectCode(createApiKey(fork(), accountId, { name: '   ' }), 'BAD_USER_INPUT');
    await expectCode(createApiKey(fork(), accountId, { name: 'x'.repeat(101) }), 'BAD_USER_INPUT');
    await expectCode(createApiKey(fork(), accountId, { name: 'a', spendLimit: 0n }), 'BAD_USER_INPUT');
    await expectCode(createApiKey(fork(), accountId, { name: 'a', spendLimit: -5n }), 'BAD_USER_INPUT');
    await expectCode(
      createApiKey(fork(), accountId, { name: 'a', expiresAt: new Date(Date.now() - 1) }),
      'BAD_USER_INPUT',
    );
    expect(await listApiKeys(fork(), accountId)).toHaveLength(0);
    const ok = await createApiKey(fork(), accountId, {
      name: 'x'.repeat(100),
      spendLimit: 1n,
      expiresAt: new Date(Date.now() + 60_000),
    });
    expect(ok.apiKey.spendLimit).toBe(1n);
  });

  it(`caps live keys at ${MAX_LIVE_KEYS_PER_ACCOUNT} per account, even when created concurrently`, async () => {
    const accountId = await newAccount();
    const results = await Promise.allSettled(
      Array.from({ length: MAX_LIVE_KEYS_PER_ACCOUNT + 10 }, (_, i) =>
        createApiKey(fork(), accountId, { name: `key ${i}` }),
      ),
    );
    const created = results.filter((result) => result.status === 'fulfilled');
    expect(created).toHaveLength(MAX_LIVE_KEYS_PER_ACCOUNT);
    for (const result of results) {
      if (result.status === 'rejected') expect((result.reason as ExpectedError).code).toBe('BAD_USER_INPUT');
    }
    // Revoked and expired keys do not count.
    const first = (created[0] as PromiseFulfilledResult<{ apiKey: { id: string } }>).value.apiKey.id;
    await revokeApiKey(fork(), accountId, first);
    await createApiKey(fork(), accountId, { name: 'after revoking one' });
    await expectCode(createApiKey(fork(), accountId, { name: 'one too many' }), 'BAD_USER_INPUT');
    await sql(`update api_keys set expires_at = now() - interval '1 second' where account_id = ?`, [
      accountId,
    ]);
    await createApiKey(fork(), accountId, { name: 'after expiry' });
  });
});

describe('listApiKeys and revokeApiKey', () => {
  it("lists the account's own keys newest first, and never another account's", async () => {
    const alice = await newAccount();
    const bob = await newAccount();
    const t0 = Date.now();
    await createApiKey(fork(), alice, { name: 'old' }, new Date(t0 - 2_000));
    await createApiKey(fork(), alice, { name: 'new' }, new Date(t0 - 1_000));
    await createApiKey(fork(), bob, { name: "bob's" });
    expect((await listApiKeys(fork(), alice)).map((key) => key.name)).toEqual(['new', 'old']);
    expect((await listApiKeys(fork(), bob)).map((key) => key.name)).toEqual(["bob's"]);
  });

  it("refuses to revoke another account's key exactly as a key that does not exist", async () => {
    const alice = await newAccount();
    const bob = await newAccount();
    const { apiKey, secret } = await createApiKey(fork(), bob, { name: "bob's" });
    const foreign = await expectCode(revokeApiKey(fork(), alice, apiKey.id), 'NOT_FOUND');
    const missing = await expectCode(revokeApiKey(fork(), alice, crypto.randomUUID()), 'NOT_FOUND');
    expect(foreign.message).toBe(missing.message);
    await expectCode(revokeApiKey(fork(), alice, 'not-a-uuid'), 'NOT_FOUND');
    // Bob's key still works.
    expect(await viewerFromApiKey(fork(), config, secret)).not.toBeNull();
  });

  it('revocation is idempotent and refuses the key from the next lookup', async () => {
    const accountId = await newAccount();
    const { apiKey, secret } = await createApiKey(fork(), accountId, { name: 'k' });
    expect((await viewerFromApiKey(fork(), config, secret))?.credential).toEqual({
      kind: 'apiKey',
      apiKeyId: apiKey.id,
    });
    const revoked = await revokeApiKey(fork(), accountId, apiKey.id);
    expect(revoked.revokedAt).toBeInstanceOf(Date);
    expect(await viewerFromApiKey(fork(), config, secret)).toBeNull();
    const again = await revokeApiKey(fork(), accountId, apiKey.id);
    expect(again.revokedAt?.getTime()).toBe(revoked.revokedAt?.getTime());
  });
});

describe('viewerFromApiKey', () => {
  it('authenticates a live key as its account, with the owner role', async () => {
    const wallet = getAddress(`0x${randomBytes(20).toString('hex')}`);
    const accountId = await newAccount(wallet);
    const { apiKey, secret } = await createApiKey(fork(), accountId, { name: 'k' });
    expect(await viewerFromApiKey(fork(), config, secret)).toEqual({
      accountId,
      walletAddress: wallet,
      role: 'user',
      credential: { kind: 'apiKey', apiKeyId: apiKey.id },
    });
  });

  it('reads the account with the key in the same statement (`me` then reads nothing more)', async () => {
    const wallet = getAddress(`0x${randomBytes(20).toString('hex')}`);
    const accountId = await newAccount(wallet);
    const { secret } = await createApiKey(fork(), accountId, { name: 'k' });
    const caller = await callerFromApiKey(sqlOf(fork()).query, config, secret);
    expect(caller?.viewer.accountId).toBe(accountId);
    expect(caller?.account.view).toMatchObject({
      id: accountId,
      walletAddress: wallet,
      balance: 0n,
      held: 0n,
      debt: 0n,
      ledgerSeq: 0,
      ledgerHead: null,
      lowBalanceThreshold: null,
      lowBalanceBelow: false,
    });
    expect(caller?.account.row).toMatchObject({ id: accountId, wallet_address: wallet });
  });

  it('gives the auditor role only to an AUDITOR-scoped key of a wallet that is an auditor', async () => {
    const accountId = await newAccount(AUDITOR);
    const scoped = await createApiKey(fork(), accountId, { name: 'audit', scope: 'AUDITOR' });
    expect(scoped.apiKey.scope).toBe('AUDITOR');
    expect((await viewerFromApiKey(fork(), config, scoped.secret))?.role).toBe('auditor');
    // The same wallet's ordinary key reads its own account only (issue 9, item 11).
    const plain = await createApiKey(fork(), accountId, { name: 'integration' });
    expect(plain.apiKey.scope).toBe('ACCOUNT');
    expect((await viewerFromApiKey(fork(), config, plain.secret))?.role).toBe('user');
    // A wallet removed from AUDITOR_ADDRESSES takes the role away from its AUDITOR key too.
    expect((await viewerFromApiKey(fork(), { auditorAddresses: [] }, scoped.secret))?.role).toBe('user');
    // Not an auditor wallet: the scope alone gives nothing.
    const other = await createApiKey(fork(), await newAccount(), { name: 'x', scope: 'AUDITOR' });
    expect((await viewerFromApiKey(fork(), config, other.secret))?.role).toBe('user');
  });

  it('refuses malformed, unknown and expired secrets', async () => {
    const accountId = await newAccount();
    const { apiKey, secret } = await createApiKey(fork(), accountId, {
      name: 'k',
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    expect(await viewerFromApiKey(fork(), config, `${secret}x`)).toBeNull();
    expect(await viewerFromApiKey(fork(), config, 'cm_short')).toBeNull();
    expect(await viewerFromApiKey(fork(), config, `cm_${randomBytes(32).toString('base64url')}`)).toBeNull();
    expect(await viewerFromApiKey(fork(), config, secret)).not.toBeNull();
    // At the expiry instant and after, refused; judged by the clock of the request.
    const expiresAt = apiKey.expiresAt as Date;
    expect(await viewerFromApiKey(fork(), config, secret, new Date(expiresAt.getTime() - 1))).not.toBeNull();
    expect(await viewerFromApiKey(fork(), config, secret, expiresAt)).toBeNull();
  });

  it('writes last_used_at at most once a minute per key', async () => {
    const accountId = await newAccount();
    const { apiKey, secret } = await createApiKey(fork(), accountId, { name: 'hot' });
    const lastUsed = async () =>
      (await fork().findOneOrFail(ApiKey, { id: apiKey.id })).lastUsedAt?.getTime() ?? null;
    expect(await lastUsed()).toBeNull();
    const t0 = Date.now();
    // A burst of concurrent requests: one write.
    await Promise.all(
      Array.from({ length: 20 }, () => viewerFromApiKey(fork(), config, secret, new Date(t0))),
    );
    expect(await lastUsed()).toBe(t0);
    await viewerFromApiKey(fork(), config, secret, new Date(t0 + LAST_USED_RESOLUTION_MS - 1));
    expect(await lastUsed()).toBe(t0);
    await viewerFromApiKey(fork(), config, secret, new Date(t0 + LAST_USED_RESOLUTION_MS));
    expect(await lastUsed()).toBe(t0 + LAST_USED_RESOLUTION_MS);
  });
});

describe('the spend limit, enforced by the database', () => {
  it('refuses any update that would put spent + held past the limit', async () => {
    const accountId = await newAccount();
    const { apiKey } = await createApiKey(fork(), accountId, { name: 'capped', spendLimit: 1_000n });
    await sql(`update api_keys set held = held + 600 where id = ?`, [apiKey.id]);
    await expect(sql(`update api_keys set held = held + 401 where id = ?`, [apiKey.id])).rejects.toThrow(
      /api_keys_within_spend_limit/,
    );
    // Settling moves the hold to spent; the sum stays within the limit.
    await sql(`update api_keys set held = held - 600, spent = spent + 550 where id = ?`, [apiKey.id]);
    await sql(`update api_keys set held = held + 450 where id = ?`, [apiKey.id]);
    await expect(sql(`update api_keys set held = held + 1 where id = ?`, [apiKey.id])).rejects.toThrow(
      /api_keys_within_spend_limit/,
    );
    await expect(sql(`update api_keys set held = -1 where id = ?`, [apiKey.id])).rejects.toThrow(
      /api_keys_held_non_negative/,
    );
    await expect(sql(`update api_keys set spent = -1 where id = ?`, [apiKey.id])).rejects.toThrow(
      /api_keys_spent_non_negative/,
    );
  });

  it('lets exactly the reservations that fit through a concurrent burst', async () => {
    const accountId = await newAccount();
    const { apiKey } = await createApiKey(fork(), accountId, { name: 'burst', spendLimit: 10_000n });
    // 100 reservations of 300 micro-USD racing over 20 connections: 33 fit (9,900), 67 must fail.
    const pool = new pg.Pool({ connectionString: url, max: 20 });
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () =>
        pool.query(`update api_keys set held = held + 300 where id = $1`, [apiKey.id]),
      ),
    ).finally(() => pool.end());
    const reserved = results.filter((result) => result.status === 'fulfilled').length;
    expect(reserved).toBe(33);
    for (const result of results) {
      if (result.status === 'rejected') expect(String(result.reason)).toMatch(/api_keys_within_spend_limit/);
    }
    const [row] = await sql<{ held: string; spent: string }>(
      `select held, spent from api_keys where id = ?`,
      [apiKey.id],
    );
    expect(BigInt(row?.held ?? -1)).toBe(9_900n);
    expect(BigInt(row?.held ?? 0) + BigInt(row?.spent ?? 0)).toBeLessThanOrEqual(10_000n);
  });

  it('a key without a limit has none', async () => {
    const accountId = await newAccount();
    const { apiKey } = await createApiKey(fork(), accountId, { name: 'open' });
    await sql(`update api_keys set spent = 9000000000000 where id = ?`, [apiKey.id]);
  });
});

describe('budget periods (limitReset)', () => {
  // Edges: a Sunday's last millisecond and the Monday after, a year's end, a leap day, a month's last instant.
  const instants = [
    '2026-11-29T23:59:59.999Z',
    '2026-11-30T00:00:00.000Z',
    '2026-12-31T23:59:59.999Z',
    '2027-01-01T00:00:00.000Z',
    '2028-02-29T12:00:00.000Z',
    '2028-03-01T00:00:00.000Z',
    '2026-12-03T13:45:10.123Z',
  ].map((iso) => new Date(iso));
  for (let i = 0; i < 40; i++)
    instants.push(new Date(Date.UTC(2020, 0, 1) + Math.floor(Math.random() * 4e11)));

  it('keyPeriodStart agrees with the SQL the hold statement runs, at every edge', async () => {
    for (const reset of LIMIT_RESETS) {
      for (const instant of instants) {
        const [row] = await sqlOf(fork()).query<{ ms: number }>(
          {
            name: 'test_key_period_start',
            text: `select (extract(epoch from ${keyPeriodStartSql('$1', 't')}) * 1000)::float8 as ms
              from (select $2::text as limit_reset) t`,
          },
          [instant.toISOString(), reset],
        );
        expect([reset, instant, keyPeriodStart(reset, instant).getTime()]).toEqual([reset, instant, row?.ms]);
      }
    }
    // Weeks start on Monday, UTC: Sunday 2026-11-29 belongs to the week of Monday 2026-11-23.
    expect(keyPeriodStart('WEEKLY', new Date('2026-11-29T23:59:59.999Z'))).toEqual(new Date('2026-11-23'));
    expect(keyPeriodStart('WEEKLY', new Date('2026-11-30T00:00:00Z'))).toEqual(new Date('2026-11-30'));
    expect(keyPeriodStart('MONTHLY', new Date('2028-02-29T12:00:00Z'))).toEqual(new Date('2028-02-01'));
  });

  it('refuses a reset without a limit, and counts this period only', async () => {
    const accountId = await newAccount();
    await expectCode(createApiKey(fork(), accountId, { name: 'a', limitReset: 'DAILY' }), 'BAD_USER_INPUT');
    const { apiKey } = await createApiKey(fork(), accountId, {
      name: 'daily',
      spendLimit: 1_000n,
      limitReset: 'DAILY',
    });
    expect(spentThisPeriod(apiKey)).toBe(0n);
    const read = { ...apiKey, spent: 700n, periodSpent: 300n, periodStart: new Date('2026-12-03') };
    expect(spentThisPeriod(read, new Date('2026-12-03T23:59:59Z'))).toBe(300n);
    expect(spentThisPeriod(read, new Date('2026-12-04T00:00:00Z'))).toBe(0n);
    expect(spentThisPeriod({ ...read, limitReset: null }, new Date('2026-12-04T00:00:00Z'))).toBe(700n);
  });

  it('KEY_LIMIT_REACHED is recorded once per period, however many refusals race', async () => {
    const accountId = await newAccount();
    const daily = await createApiKey(fork(), accountId, {
      name: 'daily',
      spendLimit: 1_000n,
      limitReset: 'DAILY',
    });
    const once = await createApiKey(fork(), accountId, { name: 'lifetime', spendLimit: 1_000n });
    const race = (id: string, at: string) =>
      Promise.all(Array.from({ length: 20 }, () => keyLimitReached(sqlOf(fork()), id, new Date(at))));
    const fired = async (id: string, at: string) => (await race(id, at)).filter(Boolean).length;
    expect(await fired(daily.apiKey.id, '2026-12-03T10:00:00Z')).toBe(1);
    expect(await fired(daily.apiKey.id, '2026-12-03T23:59:59Z')).toBe(0);
    expect(await fired(daily.apiKey.id, '2026-12-04T00:00:00Z')).toBe(1);
    expect(await fired(once.apiKey.id, '2026-12-03T10:00:00Z')).toBe(1);
    expect(await fired(once.apiKey.id, '2027-12-03T10:00:00Z')).toBe(0);
  });
});
