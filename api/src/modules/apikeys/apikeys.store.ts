/**
 * The raw SQL of API keys: what "live" means in SQL, for the statements that accept a key (the lookup
 * here, the hold's check, a subscription's check), and the one-round-trip lookup of a key by its secret.
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';
import { API_KEY_SCOPES } from './apikeys.entity.ts';

/**
 * What "live" means for a key: not revoked, and not expired at `now`. The one rule, in the SQL
 * form (the ORM filter is `liveApiKeyWhere` in the entity file): SQL for the raw statements that accept a key (the lookup, the hold's check, a
 * subscription's check), where `now` is the statement's placeholder for the time, and a MikroORM filter.
 */
export function liveApiKeySql(now: string, table = 'api_keys'): string {
  return `${table}.revoked_at is null and (${table}.expires_at is null or ${table}.expires_at > ${now}::timestamptz)`;
}

const LIVE_KEY_BY_SECRET_HASH: Statement = {
  name: 'cm_viewer_from_api_key',
  text: `with k as (
     select api_keys.id, api_keys.account_id, api_keys.scope, accounts.wallet_address
     from api_keys join accounts on accounts.id = api_keys.account_id
     where api_keys.secret_hash = $1 and ${liveApiKeySql('$2')}
   ), used as (
     update api_keys set last_used_at = $2::timestamptz
     where id = (select id from k) and (last_used_at is null or last_used_at <= $3::timestamptz)
     returning 1
   )
   select id, account_id, scope, wallet_address from k`,
};

const liveKeyRow = z.object({
  id: z.string(),
  account_id: z.string(),
  scope: z.enum(API_KEY_SCOPES),
  wallet_address: z.string(),
});
export type LiveKeyRow = z.infer<typeof liveKeyRow>;

/**
 * The live key with this secret hash and its account's wallet, or null; touches `last_used_at` (to `now`)
 * only when the stored value is not after `lastUsedBefore`, in the same statement.
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
  return rows[0] === undefined ? null : liveKeyRow.parse(rows[0]);
}
