import { Migration } from '@mikro-orm/migrations';

/**
 * Keys with budgets, low-balance alerts and auto top-up (issue 12).
 *
 * API keys: `limit_reset` (DAILY, WEEKLY, MONTHLY; UTC boundaries, weeks from Monday) turns `spend_limit`
 * into a budget per period. `period_start` is the start of the period `period_spent` counts, moved forward
 * by the hold statement itself (computed from the statement's clock), which zeroes `period_spent` in the
 * same update: the reset is atomic with the reservation. The spend-limit CHECK now compares the period's
 * spend (or, without a reset, the lifetime `spent`) plus what is held; same name, so the hold's error
 * handling is unchanged. `allowed_models` (null: any) is fixed at creation. `limit_reached_period`: the
 * period KEY_LIMIT_REACHED was last fired for (its `created_at` for a key without a reset: once in its life).
 *
 * Accounts: `low_balance_threshold` (null: no alert). `low_balance_below` is whether the balance was under it
 * at the last balance change; `low_balance_fired_seq` the ledger seq of the change that last crossed it
 * downwards (BALANCE_LOW fired there). Both are written by the ledger's own statements (the alerts module's
 * fragment), in the update that moves the balance, so a crossing is seen exactly once under any concurrency.
 *
 * Auto top-up: `auto_top_ups` (one per account: the threshold, whether it is paused and why, and the one
 * authorization in flight: submitted, its deposit not yet credited) and `auto_top_up_authorizations` (signed
 * EIP-3009 transfers to the treasury, in the order they are used; STORED, then SUBMITTED with the relayer's
 * transaction, or FAILED). The claim sets `in_flight_id` on the locked `auto_top_ups` row, so one replica
 * submits one authorization at a time per account.
 */
export class Migration20261203130000_budgets_alerts extends Migration {
  override up(): void {
    this.addSql(`
      alter table api_keys
        add column limit_reset text null,
        add column allowed_models text[] null,
        add column period_start timestamptz null,
        add column period_spent bigint not null default 0,
        add column limit_reached_period timestamptz null,
        add constraint api_keys_limit_reset_known check (limit_reset in ('DAILY', 'WEEKLY', 'MONTHLY')),
        add constraint api_keys_limit_reset_needs_limit check (limit_reset is null or spend_limit is not null),
        add constraint api_keys_allowed_models_not_empty check (allowed_models is null or cardinality(allowed_models) between 1 and 100),
        add constraint api_keys_period_spent_non_negative check (period_spent >= 0),
        drop constraint api_keys_within_spend_limit,
        add constraint api_keys_within_spend_limit check (
          spend_limit is null or (case when limit_reset is null then spent else period_spent end) + held <= spend_limit)`);
    this.addSql(`
      alter table accounts
        add column low_balance_threshold bigint null,
        add column low_balance_below boolean not null default false,
        add column low_balance_fired_seq integer null,
        add constraint accounts_low_balance_threshold_positive check (low_balance_threshold is null or low_balance_threshold > 0)`);
    this.addSql(`
      create table auto_top_ups (
        account_id uuid primary key references accounts (id),
        threshold bigint not null,
        paused boolean not null default false,
        paused_reason text null,
        in_flight_id uuid null,
        in_flight_since timestamptz null,
        created_at timestamptz not null default now(),
        constraint auto_top_ups_threshold_positive check (threshold > 0)
      )`);
    this.addSql(`
      create table auto_top_up_authorizations (
        id uuid primary key default gen_random_uuid(),
        account_id uuid not null references accounts (id),
        position integer not null,
        from_address text not null,
        value bigint not null,
        valid_after bigint not null,
        valid_before bigint not null,
        nonce text not null,
        signature text not null,
        status text not null default 'STORED',
        tx_hash text null,
        submitted_at timestamptz null,
        error text null,
        created_at timestamptz not null default now(),
        constraint auto_top_up_authorizations_status_known check (status in ('STORED', 'SUBMITTED', 'FAILED')),
        constraint auto_top_up_authorizations_value_positive check (value > 0),
        constraint auto_top_up_authorizations_nonce_unique unique (from_address, nonce)
      )`);
    this.addSql(
      `create index auto_top_up_authorizations_next_idx on auto_top_up_authorizations (account_id, position) where status = 'STORED'`,
    );
  }

  override down(): void {
    this.addSql('drop table if exists auto_top_up_authorizations');
    this.addSql('drop table if exists auto_top_ups');
    this.addSql(`
      alter table accounts
        drop column low_balance_threshold,
        drop column low_balance_below,
        drop column low_balance_fired_seq`);
    this.addSql(`
      alter table api_keys
        drop constraint api_keys_within_spend_limit,
        drop column limit_reset,
        drop column allowed_models,
        drop column period_start,
        drop column period_spent,
        drop column limit_reached_period,
        add constraint api_keys_within_spend_limit check (spend_limit is null or spent + held <= spend_limit)`);
  }
}
