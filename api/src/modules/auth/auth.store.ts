/**
 * The session a bearer token opens (every request of a signed-in user), and whether a credential is still
 * live, asked before each subscription event (`live-subscription.ts`): indexed lookups, no query built by
 * the ORM. Sessions are written through the ORM in `auth.service.ts`.
 */
import { z } from 'zod';
import type { Em } from '../../db/orm.ts';
import { type Query, type Statement, sqlOf } from '../../db/sql.ts';
import { type AccountRecord, accountColumnsSql, accountRecordOf } from '../accounts/accounts.store.ts';
import { liveApiKeySql } from '../apikeys/apikeys.store.ts';

const LIVE_SESSION_BY_TOKEN: Statement = {
  name: 'cm_auth_live_session_by_token',
  // Every column of the account: `me` serves it, and a partial row would leave an entity uninitialized.
  text: `select s.id as session_id, ${accountColumnsSql('a')}
   from sessions s join accounts a on a.id = s.account_id
   where s.token_hash = $1 and s.revoked_at is null and s.expires_at > $2::timestamptz`,
};

/** A live session: its id and its account. */
export interface LiveSession {
  sessionId: string;
  account: AccountRecord;
}

const sessionIdRow = z.object({ session_id: z.string() }).loose();

/**
 * The live session whose token hashes to `tokenHash` at `now` and its account, or null: one statement
 * (a hand-written join costs a fraction of the ORM's query building on this per-request path).
 */
export async function readLiveSessionByToken(
  query: Query,
  tokenHash: string,
  now: Date,
): Promise<LiveSession | null> {
  const [row] = await query(LIVE_SESSION_BY_TOKEN, [tokenHash, now.toISOString()]);
  if (row === undefined) return null;
  const { session_id, ...accountColumns } = sessionIdRow.parse(row);
  return { sessionId: session_id, account: accountRecordOf(accountColumns) };
}

const LIVE_SESSION: Statement = {
  name: 'cm_auth_session_is_live',
  text: 'select 1 as live from sessions where id = $1::uuid and revoked_at is null and expires_at > $2::timestamptz',
};

const LIVE_API_KEY: Statement = {
  name: 'cm_auth_api_key_is_live',
  text: `select 1 as live from api_keys where id = $1::uuid and ${liveApiKeySql('$2')}`,
};

/** The session is neither signed out nor expired at `now`. */
export async function sessionIsLive(em: Em, sessionId: string, now: Date): Promise<boolean> {
  return (await sqlOf(em).query(LIVE_SESSION, [sessionId, now.toISOString()])).length === 1;
}

/** The API key is neither revoked nor expired at `now`. */
export async function apiKeyIsLive(em: Em, apiKeyId: string, now: Date): Promise<boolean> {
  return (await sqlOf(em).query(LIVE_API_KEY, [apiKeyId, now.toISOString()])).length === 1;
}
