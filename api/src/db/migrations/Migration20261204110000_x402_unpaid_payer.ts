import { Migration } from '@mikro-orm/migrations';

/**
 * A wallet with an UNPAID call (served by `upto`, whose settlement failed because the payer moved its funds or
 * spent its Permit2 nonce meanwhile) is refused further `upto` calls (`payer_has_unpaid_calls`); this index
 * finds such a wallet at each `upto` call.
 */
export class Migration20261204110000_x402_unpaid_payer extends Migration {
  override up(): void {
    this.addSql(
      `create index usage_records_unpaid_payer_idx on usage_records (payer_address) where status = 'UNPAID'`,
    );
  }

  override down(): void {
    this.addSql('drop index if exists usage_records_unpaid_payer_idx');
  }
}
