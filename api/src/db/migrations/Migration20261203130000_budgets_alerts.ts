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
  }

  override down(): void {
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
