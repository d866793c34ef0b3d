import { Migration } from '@mikro-orm/migrations';

/**
 * Calls paid per request (x402). A paid call's usage row carries its payment: the scheme, the payer's wallet
 * and, once it is on chain, the settlement's transaction. Its life, beside a keyed call's:
 *
 *   HELD (paid, nothing held on the account) --answered--> AWAITING_PAYMENT   (priced; no ledger entry yet)
 *   AWAITING_PAYMENT --crediting credits the settlement's deposit--> BILLED (USAGE entry in that transaction)
 *   HELD --crediting credits the deposit while the call runs--> HELD with account_held (now an ordinary hold)
 *   HELD --upto: the settlement after serving failed--> UNPAID (served, never paid: listed by the audit)
 *   HELD --free (nothing generated), or the payment was refused--> RELEASED
 *
 * `account_held`: the call's hold is on its account (`accounts.held`), as for a keyed call; a paid call gets
 * it only when crediting credits its settlement while it runs, so its money cannot be spent twice.
 */
export class Migration20261203100000_x402 extends Migration {
  override up(): void {
    this.addSql(`
      alter table usage_records
        add column payment_scheme text null,
        add column payer_address text null,
        add column payment_tx_hash text null,
        add column payment_amount bigint null,
        add column account_held boolean not null default true`);
    this.addSql('alter table usage_records drop constraint usage_records_status_check');
    this.addSql(`alter table usage_records add constraint usage_records_status_check
      check (status in ('HELD', 'UNSETTLED', 'BILLED', 'NEEDS_REVIEW', 'RELEASED', 'AWAITING_PAYMENT', 'UNPAID'))`);
    this.addSql('alter table usage_records drop constraint usage_records_settled_at_check');
    this.addSql(`alter table usage_records add constraint usage_records_settled_at_check
      check ((status in ('BILLED', 'NEEDS_REVIEW', 'RELEASED', 'UNPAID')) = (settled_at is not null))`);
    this.addSql(`alter table usage_records add constraint usage_records_payment_check check (
      (payment_scheme is null and payer_address is null and payment_tx_hash is null and account_held)
      or (payment_scheme in ('exact', 'upto') and payer_address ~ '^0x[0-9a-fA-F]{40}$'))`);
    this.addSql(`alter table usage_records add constraint usage_records_awaiting_payment_check
      check (status not in ('AWAITING_PAYMENT', 'UNPAID') or payment_scheme is not null)`);
    this.addSql(`alter table usage_records add constraint usage_records_awaiting_has_tx_check
      check (status <> 'AWAITING_PAYMENT' or payment_tx_hash is not null)`);
    // One call per settlement: a settlement's transaction pays for one call, never two.
    this.addSql(
      'create unique index usage_records_payment_tx_unique on usage_records (payment_tx_hash) where payment_tx_hash is not null',
    );
    this.addSql(
      `create index usage_records_unpaid_idx on usage_records (created_at) where status in ('UNPAID', 'AWAITING_PAYMENT')`,
    );
  }

  override down(): void {
    this.addSql('drop index if exists usage_records_unpaid_idx');
    this.addSql('drop index if exists usage_records_payment_tx_unique');
    this.addSql('alter table usage_records drop constraint usage_records_awaiting_has_tx_check');
    this.addSql('alter table usage_records drop constraint usage_records_awaiting_payment_check');
    this.addSql('alter table usage_records drop constraint usage_records_payment_check');
    this.addSql('alter table usage_records drop constraint usage_records_settled_at_check');
    this.addSql(`alter table usage_records add constraint usage_records_settled_at_check
      check ((status in ('BILLED', 'NEEDS_REVIEW', 'RELEASED')) = (settled_at is not null))`);
    this.addSql('alter table usage_records drop constraint usage_records_status_check');
    this.addSql(`alter table usage_records add constraint usage_records_status_check
      check (status in ('HELD', 'UNSETTLED', 'BILLED', 'NEEDS_REVIEW', 'RELEASED'))`);
    this.addSql(`alter table usage_records drop column payment_scheme, drop column payer_address,
      drop column payment_tx_hash, drop column payment_amount, drop column account_held`);
  }
}
