/**
 * API keys for integrators: `cm_` + 32 random bytes (base64url). The secret is returned once, at
 * creation; only its SHA-256 and a short display prefix are stored, so a database leak reveals no key.
 *
 * Every request checks the key's row, so a revocation or an expiry refuses the key from the very next
 * request on every replica: a lookup (`viewerFromApiKey`), or, for a metered call with a key the replica
 * has seen, the hold statement itself (`RecentApiKeys` remembers who a key is, never whether it is live).
 * `last_used_at` is written at most once a minute per key (a guarded update), so a hot key does not write
 * on every request.
 *
 * Budgets: a key's `spendLimit` may reset every UTC day, week (from Monday) or month (`limitReset`). The
 * hold statement moves the key into the period of its own clock and starts the period's spend from 0 in the
 * same update, so the database CHECK holds the limit per period under any burst, on every replica; the first
 * refusal by the limit in a period fires KEY_LIMIT_REACHED ({@link keyLimitReached}). `allowedModels`, fixed
 * at creation and so remembered with the key, is checked before anything is counted or held
 * ({@link assertModelAllowed}).
 */
import { createHash, randomBytes } from 'node:crypto';
import { formatCredits, type MicroUsd } from '@chainmeter/schema';
import { LockMode } from '@mikro-orm/core';
import { LRUCache } from 'lru-cache';
import type { Address } from 'viem';
import type { Em } from '../../db/orm.ts';
import { type Query, type SqlRunner, sqlOf } from '../../db/sql.ts';
import { inTransaction } from '../../db/transaction.ts';
import { badInput, ExpectedError, forbidden, notFound } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';
import { Account } from '../accounts/accounts.entity.ts';
import { roleOf, type SignedInCaller } from '../auth/auth.service.ts';
import { enqueueWebhookEvents } from '../webhooks/webhook-events.store.ts';
import {
  ApiKey,
  type ApiKeyScope,
  type IApiKey,
  type LimitReset,
  liveApiKeyWhere,
} from './apikeys.entity.ts';
import { findLiveKeyBySecretHash, recordKeyLimitReached } from './apikeys.store.ts';

export const API_KEY_PREFIX = 'cm_';
/** `extensions.reason` (REST: `error.code`) of a call refused for a model outside the key's `allowedModels`. */
export const MODEL_NOT_ALLOWED = 'model_not_allowed';
/** Random bytes in a secret: 256 bits. */
const SECRET_BYTES = 32;
/** base64url of 32 bytes, unpadded. */
const SECRET_PATTERN = /^cm_[A-Za-z0-9_-]{43}$/;
/** Characters of the random part kept for display (`cm_` + 8): enough to tell keys apart, useless to guess. */
const DISPLAY_CHARS = 8;
export const MAX_LIVE_KEYS_PER_ACCOUNT = 50;
export const MAX_KEY_NAME_LENGTH = 100;
/** `last_used_at` is refreshed at most this often per key. */
export const LAST_USED_RESOLUTION_MS = 60_000;
/** At most this many models in a key's `allowedModels`, each at most MAX_MODEL_NAME_LENGTH characters. */
export const MAX_ALLOWED_MODELS = 100;
export const MAX_MODEL_NAME_LENGTH = 200;

export interface CreateApiKeyInput {
  name: string;
  /** `AUDITOR` only for an auditor's session (the schema checks the role); default `ACCOUNT`. */
  scope?: ApiKeyScope;
  spendLimit?: MicroUsd | bigint | null;
  /** The spend limit starts afresh every UTC day, week (from Monday) or month; needs a `spendLimit`. */
  limitReset?: LimitReset | null;
  /** The only models the key may call; null or absent for any. */
  allowedModels?: readonly string[] | null;
  expiresAt?: Date | null;
}

export interface CreatedApiKey {
  apiKey: IApiKey;
  /** The full secret. Shown once: it cannot be recovered later. */
  secret: string;
}

export function isApiKeySecret(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}

/** SHA-256 hex of the whole secret, as stored in `api_keys.secret_hash`. */
export function hashApiKeySecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * Creates a key for `accountId` and returns it with its secret (the only time the secret exists
 * outside the caller's hands).
 *
 * @example
 * const { apiKey, secret } = await createApiKey(em, viewer.accountId, { name: 'CI', spendLimit: 5_000_000n });
 */
export async function createApiKey(
  em: Em,
  accountId: string,
  input: CreateApiKeyInput,
  now = new Date(),
): Promise<CreatedApiKey> {
  const name = input.name.trim();
  if (name.length < 1 || name.length > MAX_KEY_NAME_LENGTH) {
    throw badInput(`A key's name must have 1 to ${MAX_KEY_NAME_LENGTH} characters`, 'name');
  }
  const spendLimit = input.spendLimit ?? null;
  if (spendLimit !== null && spendLimit <= 0n) {
    throw badInput('The spend limit must be positive (omit it for no limit)', 'spendLimit');
  }
  const expiresAt = input.expiresAt ?? null;
  if (expiresAt !== null && expiresAt.getTime() <= now.getTime()) {
    throw badInput('The expiry must be in the future', 'expiresAt');
  }
  const limitReset = input.limitReset ?? null;
  if (limitReset !== null && spendLimit === null) {
    throw badInput('A limit reset needs a spend limit to reset', 'limitReset');
  }
  const allowedModels = allowedModelsOf(input.allowedModels ?? null);
  return inTransaction(em, async (tx) => {
    // The account row lock serializes key creation per account, so the live-key cap holds under races.
    const account = await tx.findOne(
      Account,
      { id: accountId },
      { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true },
    );
    if (!account) throw notFound('No such account');
    const live = await tx.count(ApiKey, liveKeysOf(accountId, now));
    if (live >= MAX_LIVE_KEYS_PER_ACCOUNT) {
      throw badInput(
        `An account may have at most ${MAX_LIVE_KEYS_PER_ACCOUNT} live keys: revoke one you no longer use`,
      );
    }
    const random = randomBytes(SECRET_BYTES).toString('base64url');
    const secret = `${API_KEY_PREFIX}${random}`;
    const apiKey = tx.create(ApiKey, {
      account: accountId,
      name,
      prefix: `${API_KEY_PREFIX}${random.slice(0, DISPLAY_CHARS)}`,
      secretHash: hashApiKeySecret(secret),
      createdAt: now,
      lastUsedAt: null,
      revokedAt: null,
      expiresAt,
      scope: input.scope ?? 'ACCOUNT',
      spendLimit,
      spent: 0n,
      held: 0n,
      limitReset,
      allowedModels,
      periodStart: null,
      periodSpent: 0n,
      limitReachedPeriod: null,
    });
    await tx.flush();
    return { apiKey, secret };
  });
}

function allowedModelsOf(models: readonly string[] | null): string[] | null {
  if (models === null) return null;
  const unique = [...new Set(models.map((model) => model.trim()))];
  if (unique.length < 1 || unique.length > MAX_ALLOWED_MODELS) {
    throw badInput(
      `allowedModels must name 1 to ${MAX_ALLOWED_MODELS} models (omit it to allow any)`,
      'allowedModels',
    );
  }
  if (unique.some((model) => model.length < 1 || model.length > MAX_MODEL_NAME_LENGTH)) {
    throw badInput(`A model's name must have 1 to ${MAX_MODEL_NAME_LENGTH} characters`, 'allowedModels');
  }
  return unique;
}

/**
 * The start of the budget period that contains `now`, at UTC boundaries: the day, the ISO week (Monday) or
 * the month. The TypeScript form of `keyPeriodStartSql` (apikeys.store.ts), which the hold statement uses.
 *
 * @example keyPeriodStart('WEEKLY', new Date('2026-12-06T23:59:59Z')) // 2026-11-30T00:00:00.000Z, a Monday
 */
export function keyPeriodStart(reset: LimitReset, now: Date): Date {
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth();
  const day = now.getUTCDate();
  switch (reset) {
    case 'DAILY':
      return new Date(Date.UTC(year, month, day));
    case 'WEEKLY':
      // getUTCDay: Sunday 0 .. Saturday 6; days since Monday: (d + 6) % 7.
      return new Date(Date.UTC(year, month, day - ((now.getUTCDay() + 6) % 7)));
    case 'MONTHLY':
      return new Date(Date.UTC(year, month, 1));
  }
}

/**
 * What the key has spent in its current period at `now` (settled calls; what is held is not spent yet):
 * for a key without a reset, all it has spent. A period that has ended counts nothing of the new one.
 */
export function spentThisPeriod(key: IApiKey, now = new Date()): bigint {
  if (!key.limitReset) return key.spent;
  const start = keyPeriodStart(key.limitReset, now);
  return key.periodStart && key.periodStart.getTime() >= start.getTime() ? key.periodSpent : 0n;
}

/**
 * A call was refused by the key's spend limit at `now`: the first such refusal of the key's period (on any
 * replica) writes KEY_LIMIT_REACHED to the webhook outbox, in the transaction that marks the period.
 * Returns whether this call fired it.
 */
export async function keyLimitReached(sql: SqlRunner, apiKeyId: string, now: Date): Promise<boolean> {
  return sql.transaction(async (query) => {
    const reached = await recordKeyLimitReached(query, apiKeyId, now);
    if (!reached) return false;
    await enqueueWebhookEvents(query, [
      {
        accountId: reached.accountId,
        type: 'KEY_LIMIT_REACHED',
        data: {
          apiKeyId,
          name: reached.name,
          spendLimit: reached.spendLimit === null ? null : formatCredits(reached.spendLimit as MicroUsd),
          limitReset: reached.limitReset,
          periodStart: reached.limitReset === null ? null : reached.periodStart.toISOString(),
        },
      },
    ]);
    return true;
  });
}

/**
 * Revokes one of the account's keys (idempotent: revoking a revoked key returns it unchanged). A key
 * of another account is NOT_FOUND, exactly like a key that does not exist.
 */
export async function revokeApiKey(
  em: Em,
  accountId: string,
  id: string,
  now = new Date(),
): Promise<IApiKey> {
  if (!isUuid(id)) throw keyNotFound();
  await em.nativeUpdate(ApiKey, { id, account: accountId, revokedAt: null }, { revokedAt: now });
  const apiKey = await em.findOne(ApiKey, { id, account: accountId }, { refresh: true });
  if (!apiKey) throw keyNotFound();
  return apiKey;
}

/** The account's keys, live or not, newest first. */
export async function listApiKeys(em: Em, accountId: string): Promise<IApiKey[]> {
  return em.find(ApiKey, { account: accountId }, { orderBy: { createdAt: 'desc', id: 'desc' } });
}

/**
 * The caller behind an API key secret (the viewer and its account), or null when the secret is malformed,
 * unknown, revoked or expired. The viewer is an auditor only for a key created with the `AUDITOR` scope
 * whose wallet still has the auditor role; any other key, an auditor's included, reads its own account only.
 *
 * ONE prepared statement and one round trip (`sqlOf`), with no entity hydration: the key row (by its
 * unique hash, still live at `now`) joined to its account, and the throttled `last_used_at`
 * write as a data-modifying CTE that touches the row only when the stored value is a minute old (of
 * concurrent requests on any replica, only the first in each minute writes; the others, and every
 * request in between, write nothing and so wait for no commit). Nothing is cached here: a revocation or
 * an expiry refuses the key from the very next request. `recent`, when given, remembers who the key is
 * (see {@link RecentApiKeys}).
 */
export async function callerFromApiKey(
  query: Query,
  config: { auditorAddresses: readonly Address[] },
  secret: string,
  now = new Date(),
  recent?: RecentApiKeys,
): Promise<SignedInCaller | null> {
  if (!SECRET_PATTERN.test(secret)) return null;
  const secretHash = hashApiKeySecret(secret);
  const row = await findLiveKeyBySecretHash(query, secretHash, now, lastUsedBefore(now));
  if (!row) {
    recent?.forget(secretHash);
    return null;
  }
  const key: KnownKey = {
    apiKeyId: row.id,
    accountId: row.account.view.id,
    scope: row.scope,
    walletAddress: row.account.view.walletAddress as Address,
    allowedModels: row.allowedModels,
  };
  recent?.remember(secretHash, key);
  return { viewer: viewerOfKey(config, key), account: row.account };
}

/** {@link callerFromApiKey}'s viewer alone. */
export async function viewerFromApiKey(
  em: Em,
  config: { auditorAddresses: readonly Address[] },
  secret: string,
  now = new Date(),
  recent?: RecentApiKeys,
): Promise<Viewer | null> {
  return (await callerFromApiKey(sqlOf(em).query, config, secret, now, recent))?.viewer ?? null;
}

/** `last_used_at` older than this is refreshed by a request at `now`. */
export function lastUsedBefore(now: Date): Date {
  return new Date(now.getTime() - LAST_USED_RESOLUTION_MS);
}

/** Who a key is: what never changes about it (not whether it is still live). */
interface KnownKey {
  apiKeyId: string;
  accountId: string;
  scope: ApiKeyScope;
  walletAddress: Address;
  /** Fixed at the key's creation, so it may be remembered with the rest. */
  allowedModels: readonly string[] | null;
}

function viewerOfKey(config: { auditorAddresses: readonly Address[] }, key: KnownKey): Viewer {
  return {
    accountId: key.accountId,
    walletAddress: key.walletAddress,
    // Both: the key asked for the auditor scope, and its wallet is (still) an auditor.
    role: key.scope === 'AUDITOR' ? roleOf(config, key.walletAddress) : 'user',
    credential:
      key.allowedModels === null
        ? { kind: 'apiKey', apiKeyId: key.apiKeyId }
        : { kind: 'apiKey', apiKeyId: key.apiKeyId, allowedModels: key.allowedModels },
  };
}

/**
 * Refuses a call to a model outside the key's `allowedModels` (FORBIDDEN, reason `model_not_allowed`):
 * checked before anything is counted, held or sent upstream. Sessions and keys without a list call any.
 */
export function assertModelAllowed(viewer: Viewer, model: string): void {
  const allowed = viewer.credential.kind === 'apiKey' ? viewer.credential.allowedModels : undefined;
  if (allowed && !allowed.includes(model)) {
    throw new ExpectedError('FORBIDDEN', `This API key may not call the model ${model}`, {
      field: 'model',
      reason: MODEL_NOT_ALLOWED,
    });
  }
}

/**
 * What a metered call's hold must check about a key taken from {@link RecentApiKeys}: that the key with
 * this hash is still live (not revoked, not expired) at the hold's time: the hold refuses a dead key with
 * UNAUTHENTICATED, so a hold placed, or refused for want of credits, saw the key live. A call answered
 * without reaching the hold must check the key itself first.
 */
export interface ApiKeyCheck {
  secretHash: string;
}

/**
 * The API keys this replica authenticated lately, by the SHA-256 of their secret: who each key is, never
 * whether it is still live. The metered completion path uses it to skip the key lookup, one database
 * round trip per call, because its hold statement checks in the same statement that the key is still
 * live (see {@link ApiKeyCheck}): a revoked or expired key is still refused on its very next request, on
 * every replica. Holds nothing secret (the hash, the ids, the wallet). Bounded: least recently used first
 * out.
 */
export class RecentApiKeys {
  readonly #keys: LRUCache<string, KnownKey>;

  constructor(capacity = 10_000) {
    this.#keys = new LRUCache({ max: capacity });
  }

  remember(secretHash: string, key: KnownKey): void {
    this.#keys.set(secretHash, key);
  }

  forget(secretHash: string): void {
    this.#keys.delete(secretHash);
  }

  /**
   * The viewer `secret` was when it last authenticated here, with the check its hold must pass; null
   * when this replica has not seen the key lately (authenticate it with {@link viewerFromApiKey}).
   */
  claim(
    config: { auditorAddresses: readonly Address[] },
    secret: string,
  ): { viewer: Viewer; check: ApiKeyCheck } | null {
    if (!SECRET_PATTERN.test(secret)) return null;
    const secretHash = hashApiKeySecret(secret);
    const key = this.#keys.get(secretHash);
    if (!key) return null;
    return { viewer: viewerOfKey(config, key), check: { secretHash } };
  }
}

/** Keys are managed by their owner in a signed-in session; a key cannot mint or revoke keys. */
export function assertCanManageKeys(viewer: Viewer): void {
  if (viewer.credential.kind !== 'session') {
    throw forbidden('API keys are managed from a signed-in session, not with an API key');
  }
}

/**
 * The scopes `viewer` may give a new key of account `accountId`: `ACCOUNT`, and `AUDITOR` too for the
 * session of a wallet with the auditor role; none for another account or with an API key (keys are made
 * by their owner's session). `createApiKey` refuses any other scope, so a client may offer exactly these.
 *
 * @example
 * keyScopesFor(viewer, viewer.accountId); // ['ACCOUNT', 'AUDITOR'] for an auditor's session
 */
export function keyScopesFor(viewer: Viewer, accountId: string): ApiKeyScope[] {
  if (viewer.credential.kind !== 'session' || viewer.accountId !== accountId) return [];
  return viewer.role === 'auditor' ? ['ACCOUNT', 'AUDITOR'] : ['ACCOUNT'];
}

function liveKeysOf(accountId: string, now: Date) {
  return { account: accountId, ...liveApiKeyWhere(now) };
}

const keyNotFound = () => notFound('No such API key');

function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
