import { Migration } from '@mikro-orm/migrations';

/**
 * `upto` serves before it settles, so a wallet that holds one call's maximum could send ten signed payments at
 * once and be served ten calls, the settlements after the first finding it empty (UNPAID). An `upto` call is
 * now placed only if the maximum prices of the payer's `upto` calls still running (HELD), its own included, fit
 * in what the wallet held when the payment was verified (`payer_funds_in_use` otherwise); this index finds
 * those running calls.
 */
export class Migration20261204130000_x402_upto_running extends Migration {
  override up(): void {
    this.addSql(
      `create index usage_records_upto_running_idx on usage_records (payer_address)
       where payment_scheme = 'upto' and status = 'HELD'`,
    );
  }

  override down(): void {
    this.addSql('drop index if exists usage_records_upto_running_idx');
  }
}
