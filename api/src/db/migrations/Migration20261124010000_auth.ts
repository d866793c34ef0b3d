import { Migration } from '@mikro-orm/migrations';

/** Sign-in with Ethereum: single-use nonces and server-side sessions (revocable, hashed tokens). */
export class Migration20261124010000_auth extends Migration {
  override up(): void {
    this.addSql(`
      create table siwe_nonces (
        nonce text primary key,
        address text not null,
        chain_id integer not null,
        issued_at timestamptz not null,
        expires_at timestamptz not null,
        used_at timestamptz null
      )`);
    this.addSql('create index siwe_nonces_expires_at_index on siwe_nonces (expires_at)');
    this.addSql(`
      create table sessions (
        id uuid primary key default gen_random_uuid(),
        token_hash text not null,
        account_id uuid not null references accounts (id),
        created_at timestamptz not null default now(),
        expires_at timestamptz not null,
        revoked_at timestamptz null,
        constraint sessions_token_hash_unique unique (token_hash)
      )`);
    this.addSql('create index sessions_account_id_index on sessions (account_id)');
  }

  override down(): void {
    this.addSql('drop table sessions');
    this.addSql('drop table siwe_nonces');
  }
}
