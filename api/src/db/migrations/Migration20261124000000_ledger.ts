import { Migration } from '@mikro-orm/migrations';

/**
 * Accounts, the append-only ledger, deposits and the crediting cursor. Written by hand (not
 * generated) because the money invariants live here as constraints: balances never go negative, a
 * deposit is credited by at most one ledger entry, an on-chain log maps to at most one deposit.
 */
export class Migration20261124000000_ledger extends Migration {
  override up(): void {
    this.addSql(`
      create table accounts (
        id uuid primary key default gen_random_uuid(),
        wallet_address text not null,
        balance bigint not null default 0,
        held bigint not null default 0,
        ledger_seq integer not null default 0,
        ledger_head text null,
        created_at timestamptz not null default now(),
        constraint accounts_wallet_address_unique unique (wallet_address),
        constraint accounts_wallet_address_format check (wallet_address ~ '^0x[0-9a-fA-F]{40}$'),
        constraint accounts_balance_non_negative check (balance >= 0),
        constraint accounts_held_non_negative check (held >= 0),
        constraint accounts_ledger_seq_non_negative check (ledger_seq >= 0)
      )`);
    this.addSql(`
      create table deposits (
        id uuid primary key default gen_random_uuid(),
        chain_id integer not null,
        tx_hash text not null,
        log_index integer not null,
        block_number bigint not null,
        block_hash text not null,
        from_address text not null,
        account_id uuid not null references accounts (id),
        amount_token bigint not null,
        amount bigint not null,
        status text not null default 'PENDING',
        confirmations integer not null default 0,
        credited_at timestamptz null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        constraint deposits_log_unique unique (chain_id, tx_hash, log_index),
        constraint deposits_status_check check (status in ('PENDING', 'CREDITED', 'REORGED')),
        constraint deposits_amount_positive check (amount > 0 and amount_token > 0),
        constraint deposits_credited_at_check check ((status = 'CREDITED') = (credited_at is not null))
      )`);
    this.addSql(
      'create index deposits_account_idx on deposits (account_id, block_number desc, log_index desc, id desc)',
    );
    this.addSql(
      `create index deposits_pending_idx on deposits (chain_id, block_number) where status = 'PENDING'`,
    );
    this.addSql(`
      create table ledger_entries (
        id uuid primary key default gen_random_uuid(),
        account_id uuid not null references accounts (id),
        seq integer not null,
        amount bigint not null,
        balance_after bigint not null,
        reason text not null,
        reference_id text not null,
        deposit_id uuid null references deposits (id),
        created_at timestamptz not null,
        prev_hash text null,
        hash text not null,
        constraint ledger_entries_account_seq_unique unique (account_id, seq),
        constraint ledger_entries_seq_positive check (seq >= 1),
        constraint ledger_entries_balance_after_non_negative check (balance_after >= 0),
        constraint ledger_entries_reason_check check (reason in ('DEPOSIT', 'USAGE', 'ADJUSTMENT')),
        constraint ledger_entries_deposit_check check ((reason = 'DEPOSIT') = (deposit_id is not null)),
        constraint ledger_entries_first_has_no_prev check ((seq = 1) = (prev_hash is null))
      )`);
    // The database itself refuses a second credit of one deposit, whatever the code above it does.
    this.addSql(
      `create unique index ledger_entries_deposit_unique on ledger_entries (deposit_id) where reason = 'DEPOSIT'`,
    );
    this.addSql(`
      create table crediting_cursors (
        chain_id integer primary key,
        block_number bigint not null,
        log_index integer not null,
        updated_at timestamptz not null default now()
      )`);
  }

  override down(): void {
    this.addSql('drop table if exists crediting_cursors');
    this.addSql('drop table if exists ledger_entries');
    this.addSql('drop table if exists deposits');
    this.addSql('drop table if exists accounts');
  }
}
