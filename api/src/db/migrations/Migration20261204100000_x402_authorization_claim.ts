import { Migration } from '@mikro-orm/migrations';

/**
 * One call per signed payment authorization (x402). Until its settlement is mined, a payer's authorization is
 * unused on chain, so the same PAYMENT-SIGNATURE sent several times at once (to one replica or several) passed
 * every check each time: with `upto`, which serves before it settles, each copy was served and only one paid.
 * A paid call's row now names the authorization it spends (`payment_authorization`: the token's EIP-3009 nonce
 * of the signer, or the signer's Permit2 nonce), unique among the calls it may still pay for: every row except
 * one released before anything was broadcast (a refused payment, a free call), whose authorization is unused
 * and may pay for another call.
 */
export class Migration20261204100000_x402_authorization_claim extends Migration {
  override up(): void {
    this.addSql('alter table usage_records add column payment_authorization text null');
    this.addSql(
      `create unique index usage_records_payment_authorization_unique on usage_records (payment_authorization)
       where payment_authorization is not null and (status <> 'RELEASED' or payment_tx_hash is not null)`,
    );
  }

  override down(): void {
    this.addSql('drop index if exists usage_records_payment_authorization_unique');
    this.addSql('alter table usage_records drop column payment_authorization');
  }
}
