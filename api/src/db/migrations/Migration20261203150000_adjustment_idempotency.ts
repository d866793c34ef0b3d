import { Migration } from '@mikro-orm/migrations';

/**
 * An operator's `adjustBalance` with an `idempotencyKey` is written once per account and key: its entry's
 * `reference_id` is `operator:key:<key>`, unique among the account's operator ADJUSTMENTs, so a retried or
 * doubled request can only find the first one (`operations.service.ts` `adjustBalance`). Entries without a key
 * carry a fresh `operator:<uuid>`, which never collides.
 */
export class Migration20261203150000_adjustment_idempotency extends Migration {
  override up(): void {
    this.addSql(`create unique index ledger_entries_operator_reference_key on ledger_entries (account_id, reference_id)
      where reason = 'ADJUSTMENT' and operator is not null`);
  }

  override down(): void {
    this.addSql('drop index if exists ledger_entries_operator_reference_key');
  }
}
