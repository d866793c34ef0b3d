/**
 * The SQL of relay claims: which signed EIP-3009 authorization a replica is relaying now. Until its transaction
 * is mined the token still calls the authorization unused, so two replicas given the same one at once both
 * passed every check and both sent it: the second transaction reverted, gas spent on what could be refused.
 * A claim is one row per (authorizer, nonce), held until `claimed_until` (the receipt wait); after that the
 * chain's own `authorizationState` is what refuses a replay.
 */
import { z } from 'zod';
import type { SqlRunner, Statement } from '../../db/sql.ts';

const CLAIM_RELAY: Statement = {
  name: 'cm_claim_relay',
  text: `insert into relay_claims (authorizer, nonce, claimed_until) values ($1, $2, $3::timestamptz)
   on conflict (authorizer, nonce) do update set claimed_until = excluded.claimed_until
     where relay_claims.claimed_until < $4::timestamptz
   returning claimed_until`,
};

/**
 * Claims `authorizer`'s authorization `nonce` (lowercase hex) until `until`: true when this caller holds it
 * now, false while another holds an unexpired claim.
 */
export async function claimRelay(
  sql: SqlRunner,
  authorizer: string,
  nonce: string,
  until: Date,
  now: Date,
): Promise<boolean> {
  const rows = await sql.query(CLAIM_RELAY, [authorizer, nonce, until.toISOString(), now.toISOString()]);
  return z.array(z.unknown()).parse(rows).length === 1;
}

const RELEASE_RELAY: Statement = {
  name: 'cm_release_relay',
  text: `delete from relay_claims where authorizer = $1 and nonce = $2 and claimed_until = $3::timestamptz`,
};

/** Gives up a claim taken with `until` (nothing was sent): the authorization may be relayed again at once. */
export async function releaseRelay(
  sql: SqlRunner,
  authorizer: string,
  nonce: string,
  until: Date,
): Promise<void> {
  await sql.query(RELEASE_RELAY, [authorizer, nonce, until.toISOString()]);
}
