import { randomUUID } from 'node:crypto';
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import { Account } from '../accounts/accounts.entity.ts';

/**
 * What a key may read: `ACCOUNT`, its own account; `AUDITOR`, every account (read-only), and only while
 * the wallet that owns it has the auditor role. Only an auditor wallet may create an `AUDITOR` key.
 */
export const API_KEY_SCOPES = ['ACCOUNT', 'AUDITOR'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/**
 * How often a key's spend limit starts afresh, at UTC boundaries: DAILY at 00:00 UTC, WEEKLY on Monday
 * 00:00 UTC (ISO weeks), MONTHLY on the 1st at 00:00 UTC. Without one the limit is for the key's life.
 */
export const LIMIT_RESETS = ['DAILY', 'WEEKLY', 'MONTHLY'] as const;
export type LimitReset = (typeof LIMIT_RESETS)[number];

/**
 * An integrator's API key. The secret (`cm_` + random) is shown once at creation; only its SHA-256 hex
 * (`secretHash`) and a display `prefix` (e.g. `cm_AbCd1234`) are stored.
 *
 * Money columns, all micro-USD bigints:
 * - `spendLimit`: the most this key may ever spend; null = no limit beyond the account's balance.
 * - `held`: reserved by this key's in-flight calls. Billing raises it in the same transaction that
 *   places the account's hold, and lowers it in the settling transaction.
 * - `spent`: settled user price of this key's calls, raised by the settling transaction.
 * - `periodSpent`: what was settled since `periodStart` (keys with a `limitReset`): the hold statement
 *   moves `periodStart` to the current period and zeroes `periodSpent` in the same update.
 * The database enforces `held >= 0`, `spent >= 0` and `spendLimit is null or S + held <= spendLimit`, S being
 * `periodSpent` for a key with a `limitReset` and `spent` otherwise (constraint `api_keys_within_spend_limit`),
 * so a reservation that would overrun the limit fails with a check violation, however many requests race.
 */
export const ApiKey = defineEntity({
  name: 'ApiKey',
  tableName: 'api_keys',
  properties: {
    id: p
      .uuid()
      .primary()
      .onCreate(() => randomUUID()),
    account: () => p.manyToOne(Account),
    name: p.string().columnType('text'),
    prefix: p.string().columnType('text'),
    secretHash: p.string().columnType('text').unique(),
    createdAt: p.datetime().onCreate(() => new Date()),
    lastUsedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    expiresAt: p.datetime().nullable(),
    scope: p.enum(API_KEY_SCOPES).columnType('text').default('ACCOUNT'),
    spendLimit: p.bigint().nullable(),
    spent: p.bigint().default(0),
    held: p.bigint().default(0),
    limitReset: p.enum(LIMIT_RESETS).columnType('text').nullable(),
    /** The models this key may call; null for any. Fixed at creation. */
    allowedModels: p.array().columnType('text[]').nullable(),
    periodStart: p.datetime().nullable(),
    periodSpent: p.bigint().default(0),
    /** The period KEY_LIMIT_REACHED was last fired for (see `apikeys.store.ts`). */
    limitReachedPeriod: p.datetime().nullable(),
  },
});

export type IApiKey = InferEntity<typeof ApiKey>;

/** A live key (not revoked, not expired at `now`) as a MikroORM filter; `liveApiKeySql` is its SQL form. */
export function liveApiKeyWhere(now: Date) {
  return { revokedAt: null, $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] };
}
