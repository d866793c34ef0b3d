import { Migration } from '@mikro-orm/migrations';

/**
 * Metered LLM calls. One row per call is both the durable hold (written with the hold, in the same
 * statement) and, once settled, the usage row:
 *
 *   HELD --answer--> BILLED | NEEDS_REVIEW            (settled: usage row, USAGE ledger entry if price > 0)
 *   HELD --settlement failed--> UNSETTLED --retry--> BILLED | NEEDS_REVIEW
 *   HELD --upstream error, empty answer, hold expired--> RELEASED   (nothing charged)
 *
 * Every transition out of HELD/UNSETTLED is a guarded update (`where status in ('HELD', 'UNSETTLED')`),
 * so settling twice can never charge twice. `outcome` keeps what a failed settlement needs (tokens,
 * costs) so a retry, in this process or after a restart, settles exactly what was answered.
 */
export class Migration20261124030000_metering extends Migration {
  override up(): void {
    this.addSql(`
      create table usage_records (
        id uuid primary key,
        request_id text not null,
        account_id uuid not null references accounts (id),
        api_key_id uuid null references api_keys (id),
        model text not null,
        status text not null,
        streamed boolean not null default false,
        hold_amount bigint not null,
        prompt_tokens integer not null default 0,
        completion_tokens integer not null default 0,
        provider_cost bigint null,
        user_price bigint not null default 0,
        latency_ms integer null,
        flags text[] not null default '{}',
        error text null,
        outcome jsonb null,
        settle_attempts integer not null default 0,
        created_at timestamptz not null,
        hold_expires_at timestamptz not null,
        settled_at timestamptz null,
        constraint usage_records_request_id_unique unique (request_id),
        constraint usage_records_status_check
          check (status in ('HELD', 'UNSETTLED', 'BILLED', 'NEEDS_REVIEW', 'RELEASED')),
        constraint usage_records_hold_non_negative check (hold_amount >= 0),
        constraint usage_records_tokens_non_negative check (prompt_tokens >= 0 and completion_tokens >= 0),
        constraint usage_records_cost_non_negative check (provider_cost is null or provider_cost >= 0),
        -- The user never pays more than the hold, and a BILLED call never less than its provider cost.
        constraint usage_records_price_within_hold check (user_price >= 0 and user_price <= hold_amount),
        constraint usage_records_billed_priced
          check (status <> 'BILLED' or (provider_cost is not null and user_price >= provider_cost)),
        constraint usage_records_settled_at_check
          check ((status in ('BILLED', 'NEEDS_REVIEW', 'RELEASED')) = (settled_at is not null))
      )`);
    // Usage history (newest first) and export (oldest first) read the settled rows of one account.
    this.addSql(
      `create index usage_records_account_idx on usage_records (account_id, created_at desc, id desc)
         where status in ('BILLED', 'NEEDS_REVIEW')`,
    );
    this.addSql(
      `create index usage_records_open_idx on usage_records (hold_expires_at) where status in ('HELD', 'UNSETTLED')`,
    );
    this.addSql(
      `create index usage_records_api_key_idx on usage_records (api_key_id, created_at desc) where api_key_id is not null`,
    );
  }

  override down(): void {
    this.addSql('drop table if exists usage_records');
  }
}
