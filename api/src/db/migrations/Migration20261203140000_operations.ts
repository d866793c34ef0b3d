import { Migration } from '@mikro-orm/migrations';

/**
 * Operators (issue 12): what they do is on the record.
 *
 * - `ledger_entries.operator` / `reason_text`: set together on the entries an operator writes (an
 *   `adjustBalance` ADJUSTMENT, the USAGE entry of a resolved call), never on any other; the ledger hash
 *   covers both (`canonicalLedgerEntry`), so who changed a balance and why cannot be rewritten unseen.
 * - `usage_records.resolution` / `resolved_by` / `resolution_reason` / `resolved_at` / `charged_before_resolution`:
 *   a NEEDS_REVIEW call an operator billed at a stated price (BILL) or waived (WAIVE); it is BILLED
 *   afterwards, at that price (0 when waived). The automatic billing rules (never more than the hold,
 *   never less than the provider cost) bind the automatic path only: an operator's price is theirs.
 * - `solvency_snapshots`: the solvency figures recorded every SOLVENCY_SNAPSHOT_MS (the treasury's balance
 *   cannot be derived from the ledger: the chain holds it), one row per period whatever the replicas.
 */
export class Migration20261203140000_operations extends Migration {
  override up(): void {
    this.addSql(`
      alter table ledger_entries
        add column operator text null,
        add column reason_text text null,
        add constraint ledger_entries_operator_with_reason
          check ((operator is null) = (reason_text is null)),
        add constraint ledger_entries_operator_format check (operator is null or operator ~ '^0x[0-9a-fA-F]{40}$'),
        add constraint ledger_entries_reason_text_length
          check (reason_text is null or char_length(reason_text) between 1 and 500)`);
    this.addSql(`
      alter table usage_records
        add column resolution text null,
        add column resolved_by text null,
        add column resolution_reason text null,
        add column resolved_at timestamptz null,
        add column charged_before_resolution bigint null,
        add constraint usage_records_resolution_known check (resolution is null or resolution in ('BILL', 'WAIVE')),
        add constraint usage_records_resolution_complete check (
          (resolution is null) = (resolved_by is null) and (resolution is null) = (resolution_reason is null)
          and (resolution is null) = (resolved_at is null)
          and (resolution is null) = (charged_before_resolution is null)),
        add constraint usage_records_resolved_billed check (resolution is null or status = 'BILLED'),
        add constraint usage_records_waived_free check (resolution is distinct from 'WAIVE' or user_price = 0),
        drop constraint usage_records_price_within_hold,
        add constraint usage_records_price_within_hold
          check (user_price >= 0 and (user_price <= hold_amount or resolution = 'BILL')),
        drop constraint usage_records_billed_priced,
        add constraint usage_records_billed_priced
          check (status <> 'BILLED' or resolution is not null
            or (provider_cost is not null and user_price >= provider_cost))`);
    // The operators' queue, oldest first, across accounts.
    this.addSql(
      `create index usage_records_needs_review_idx on usage_records (created_at, id) where status = 'NEEDS_REVIEW'`,
    );
    // Revenue over a range of every account's calls.
    this.addSql(
      `create index usage_records_settled_created_idx on usage_records (created_at)
         where status in ('BILLED', 'NEEDS_REVIEW')`,
    );
    this.addSql(`
      create table solvency_snapshots (
        period bigint primary key,
        taken_at timestamptz not null,
        as_of_block bigint not null,
        treasury_balance bigint not null,
        outstanding_credits bigint not null,
        held_credits bigint not null,
        credited_deposits bigint not null,
        charged_usage bigint not null,
        operator_adjustments bigint not null,
        account_debt bigint not null
      )`);
    this.addSql('create index solvency_snapshots_taken_at_idx on solvency_snapshots (taken_at)');
  }

  override down(): void {
    this.addSql('drop table if exists solvency_snapshots');
    this.addSql('drop index if exists usage_records_settled_created_idx');
    this.addSql('drop index if exists usage_records_needs_review_idx');
    this.addSql(`
      alter table usage_records
        drop constraint usage_records_billed_priced,
        add constraint usage_records_billed_priced
          check (status <> 'BILLED' or (provider_cost is not null and user_price >= provider_cost)),
        drop constraint usage_records_price_within_hold,
        add constraint usage_records_price_within_hold check (user_price >= 0 and user_price <= hold_amount),
        drop constraint usage_records_waived_free,
        drop constraint usage_records_resolved_billed,
        drop constraint usage_records_resolution_complete,
        drop constraint usage_records_resolution_known,
        drop column charged_before_resolution,
        drop column resolved_at,
        drop column resolution_reason,
        drop column resolved_by,
        drop column resolution`);
    this.addSql(`
      alter table ledger_entries
        drop constraint ledger_entries_reason_text_length,
        drop constraint ledger_entries_operator_format,
        drop constraint ledger_entries_operator_with_reason,
        drop column reason_text,
        drop column operator`);
  }
}
