/**
 * The session a bearer token opens (every request of a signed-in user), and whether a credential is still
 * live, asked before each subscription event (`live-subscription.ts`): indexed lookups, no query built by
 * the ORM. Sessions are written through the ORM in `auth.service.ts`.
 */
import { z } from 'zod';
import type { Em } from '../../db/orm.ts';
import { type Statement, sqlOf } from '../../db/sql.ts';
import { liveApiKeySql } from '../apikeys/apikeys.store.ts';

const LIVE_SESSION_BY_TOKEN: Statement = {
  name: 'cm_auth_live_session_by_token',
  // Every column of the account: a partial row would leave the entity uninitialized, and `me` would read it again.
  text: `select s.id as session_id, a.id, a.wallet_address, a.balance, a.held, a.debt, a.ledger_seq,
     a.ledger_head, a.created_at, a.low_balance_threshold, a.low_balance_below, a.low_balance_fired_seq
   from sessions s join accounts a on a.id = s.account_id
   where s.token_hash = $1 and s.revoked_at is null and s.expires_at > $2::timestamptz`,
};

/** The session's id and its account's row, as `em.map` takes it (the account's columns). */
const sessionAccountRow = z
  .object({ session_id: z.string(), id: z.string(), wallet_address: z.string() })
  .loose()
  .transform(({ session_id, ...account }) => ({ sessionId: session_id, account }));

/**
 * The live session whose token hashes to `tokenHash` at `now` and its account's row, or null: one statement
 * (a hand-written join costs a fraction of the ORM's query building on this per-request path).
 */
export async function readLiveSessionByToken(
  em: Em,
  tokenHash: string,
  now: Date,
): Promise<z.infer<typeof sessionAccountRow> | null> {
  const [row] = await sqlOf(em).query(LIVE_SESSION_BY_TOKEN, [tokenHash, now.toISOString()]);
  return row === undefined ? null : sessionAccountRow.parse(row);
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
