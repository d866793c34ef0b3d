import { Migration } from '@mikro-orm/migrations';

/**
 * API keys for integrators. Only the SHA-256 of a secret is stored, with a short display prefix. The
 * spend limit is a constraint, not a convention: whatever code reserves or settles on `held`/`spent`,
 * under any concurrency, the database refuses a row where `spent + held` exceeds `spend_limit`.
 */
export class Migration20261124020000_apikeys extends Migration {
  override up(): void {
    this.addSql(`
      create table api_keys (
        id uuid primary key default gen_random_uuid(),
        account_id uuid not null references accounts (id),
        name text not null,
        prefix text not null,
        secret_hash text not null,
        created_at timestamptz not null default now(),
        last_used_at timestamptz null,
        revoked_at timestamptz null,
        expires_at timestamptz null,
        spend_limit bigint null,
        spent bigint not null default 0,
        held bigint not null default 0,
        constraint api_keys_secret_hash_unique unique (secret_hash),
        constraint api_keys_name_length check (char_length(name) between 1 and 100),
        constraint api_keys_spend_limit_positive check (spend_limit is null or spend_limit > 0),
        constraint api_keys_spent_non_negative check (spent >= 0),
        constraint api_keys_held_non_negative check (held >= 0),
        constraint api_keys_within_spend_limit check (spend_limit is null or spent + held <= spend_limit)
      )`);
    this.addSql('create index api_keys_account_idx on api_keys (account_id, created_at desc, id desc)');
  }

  override down(): void {
    this.addSql('drop table if exists api_keys');
  }
}
