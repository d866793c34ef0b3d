/**
 * Whether a credential is still live, asked before each subscription event (`live-subscription.ts`): one
 * indexed lookup, no entity loaded. Sessions are written through the ORM in `auth.service.ts`.
 */
import type { Em } from '../../db/orm.ts';
import { type Statement, sqlOf } from '../../db/sql.ts';
import { liveApiKeySql } from '../apikeys/apikeys.store.ts';

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
