import { Migration } from '@mikro-orm/migrations';

/**
 * Relay claims (`relayer/relay-claim.store.ts`): the signed EIP-3009 authorization a replica is relaying now, so
 * that another replica given the same one refuses it (AUTHORIZATION_IN_FLIGHT) instead of sending a second
 * transaction that can only revert. A claim expires (`claimed_until`); the chain refuses a mined one.
 */
export class Migration20261204120000_relay_claims extends Migration {
  override up(): void {
    this.addSql(`create table relay_claims (
      authorizer text not null,
      nonce text not null,
      claimed_until timestamptz not null,
      primary key (authorizer, nonce))`);
  }

  override down(): void {
    this.addSql('drop table if exists relay_claims');
  }
}
