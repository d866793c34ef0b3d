/**
 * The raw SQL of API keys: what "live" means in SQL, for the statements that accept a key (the lookup
 * here, the hold's check, a subscription's check), the one-round-trip lookup of a key by its secret, the
 * budget period's SQL that the hold statement embeds, and the once-per-period KEY_LIMIT_REACHED record.
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import { type AccountRecord, accountColumnsSql, accountRecordOf } from '../accounts/accounts.store.ts';
import { API_KEY_SCOPES, type ApiKeyScope } from './apikeys.entity.ts';

/**
 * The start of the key's current budget period at `now` (a statement's placeholder for its clock), in SQL:
 * `date_trunc` in UTC (PostgreSQL's weeks start on Monday); null for a key without a `limit_reset`. The one
 * rule: `keyPeriodStart` in apikeys.service.ts is its TypeScript form, for reads (tested against this).
 */
export function keyPeriodStartSql(now: string, table = 'api_keys'): string {
  return `(case ${table}.limit_reset when 'DAILY' then date_trunc('day', ${now}::timestamptz, 'UTC')
     when 'WEEKLY' then date_trunc('week', ${now}::timestamptz, 'UTC')
     when 'MONTHLY' then date_trunc('month', ${now}::timestamptz, 'UTC') end)`;
}

/**
 * The `set` assignments that move a key into its budget period at `now` before a reservation: when the
 * period has moved on, `period_start` advances and `period_spent` starts again from 0, in the same update
 * (PostgreSQL reads the old row in every assignment), so the CHECK sees the new period's figures. Never
 * backwards: a replica whose clock lags cannot reopen a period that has ended.
 */
export function keyPeriodAssignmentsSql(now: string, table = 'api_keys'): string {
  const start = keyPeriodStartSql(now, table);
  return `period_spent = case when ${start} > coalesce(${table}.period_start, '-infinity'::timestamptz) then 0
       else ${table}.period_spent end,
     period_start = greatest(${table}.period_start, ${start})`;
}

/**
 * What "live" means for a key: not revoked, and not expired at `now`. The one rule, in the SQL
 * form (the ORM filter is `liveApiKeyWhere` in the entity file): SQL for the raw statements that accept a key (the lookup, the hold's check, a
 * subscription's check), where `now` is the statement's placeholder for the time, and a MikroORM filter.
 */
export function liveApiKeySql(now: string, table = 'api_keys'): string {
  return `${table}.revoked_at is null and (${table}.expires_at is null or ${table}.expires_at > ${now}::timestamptz)`;
}

const LIVE_KEY_BY_SECRET_HASH: Statement = {
  name: 'cm_caller_from_api_key',
  // Every column of the account besides the key's: `me` serves it, with no statement of its own.
  text: `with k as (
     select api_keys.id as api_key_id, api_keys.scope, api_keys.allowed_models, ${accountColumnsSql('accounts')}
     from api_keys join accounts on accounts.id = api_keys.account_id
     where api_keys.secret_hash = $1 and ${liveApiKeySql('$2')}
   ), used as (
     update api_keys set last_used_at = $2::timestamptz
     where id = (select api_key_id from k) and (last_used_at is null or last_used_at <= $3::timestamptz)
     returning 1
   )
   select * from k`,
};

const liveKeyRow = z
  .object({
    api_key_id: z.string(),
    scope: z.enum(API_KEY_SCOPES),
    allowed_models: z.array(z.string()).nullable(),
  })
  .loose();

/** A live key and its account. */
export interface LiveKeyRow {
  id: string;
  scope: ApiKeyScope;
  allowedModels: string[] | null;
  account: AccountRecord;
}

/**
 * The live key with this secret hash and its account, or null; touches `last_used_at` (to `now`) only when
 * the stored value is not after `lastUsedBefore`, in the same statement.
 */
export async function findLiveKeyBySecretHash(
  query: Query,
  secretHash: string,
  now: Date,
  lastUsedBefore: Date,
): Promise<LiveKeyRow | null> {
  const rows = await query<unknown>(LIVE_KEY_BY_SECRET_HASH, [
    secretHash,
    now.toISOString(),
    lastUsedBefore.toISOString(),
  ]);
  if (rows[0] === undefined) return null;
  const { api_key_id, scope, allowed_models, ...accountColumns } = liveKeyRow.parse(rows[0]);
  return { id: api_key_id, scope, allowedModels: allowed_models, account: accountRecordOf(accountColumns) };
}

const RECORD_KEY_LIMIT_REACHED: Statement = {
  name: 'cm_record_key_limit_reached',
  text: `update api_keys set limit_reached_period = coalesce(${keyPeriodStartSql('$2')}, created_at)
   where id = $1::uuid and limit_reached_period is distinct from coalesce(${keyPeriodStartSql('$2')}, created_at)
   returning account_id, name, spend_limit::text as spend_limit, limit_reset, limit_reached_period`,
};

const limitReachedRow = z.object({
  account_id: z.string(),
  name: z.string(),
  spend_limit: z.string().nullable(),
  limit_reset: z.string().nullable(),
  limit_reached_period: z.coerce.date(),
});

export interface KeyLimitReached {
  accountId: string;
  name: string;
  spendLimit: bigint | null;
  limitReset: string | null;
  /** The period the limit was reached in (the key's creation for a key without a reset). */
  periodStart: Date;
}

/**
 * Marks the key's limit as reached in its current period at `now`, once: the guarded update returns the key
 * only to the first caller in the period (on any replica), null to every other.
 */
export async function recordKeyLimitReached(
  query: Query,
  apiKeyId: string,
  now: Date,
): Promise<KeyLimitReached | null> {
  const [raw] = await query(RECORD_KEY_LIMIT_REACHED, [apiKeyId, now.toISOString()]);
  if (raw === undefined) return null;
  const row = limitReachedRow.parse(raw);
  return {
    accountId: row.account_id,
    name: row.name,
    spendLimit: row.spend_limit === null ? null : BigInt(row.spend_limit),
    limitReset: row.limit_reset,
    periodStart: row.limit_reached_period,
  };
}
