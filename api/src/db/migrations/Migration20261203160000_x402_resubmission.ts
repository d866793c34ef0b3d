import { Migration } from '@mikro-orm/migrations';

/**
 * A paid call keeps its payment as accepted (the payer's signed authorization and the requirements it was
 * verified against), written when the row is placed, before the money moves. A reorg deeper than
 * CONFIRMATIONS can remove the settlement's transaction; the authorization is then unused on the new chain
 * until it expires, and the platform submits it again (x402 `paid-call-resubmission.ts`):
 *
 *   AWAITING_PAYMENT, BILLED or NEEDS_REVIEW whose settlement is gone --submitted again--> same status,
 *     `payment_tx_hash` replaced by the new transaction (crediting then charges / pays the reorg's debt)
 *   AWAITING_PAYMENT, BILLED or NEEDS_REVIEW whose settlement is gone and whose authorization expired
 *     --> UNPAID (served, never paid)
 */
export class Migration20261203160000_x402_resubmission extends Migration {
  override up(): void {
    this.addSql('alter table usage_records add column payment_payload jsonb null');
  }

  override down(): void {
    this.addSql('alter table usage_records drop column payment_payload');
  }
}
