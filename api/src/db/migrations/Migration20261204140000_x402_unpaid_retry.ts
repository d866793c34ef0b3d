import { Migration } from '@mikro-orm/migrations';

/**
 * An `upto` call whose settlement failed after serving (UNPAID: the payer's wallet was empty at that moment,
 * or the relayer, the RPC or a nonce collision failed) can still be paid while the payer's signed Permit2
 * authorization is unused and before its `deadline`: the platform settles it again for the call's price
 * (x402 `paid-call-resubmission.ts`), and Permit2's nonce lets at most one submission move money.
 *
 *   UNPAID (upto, priced, its payment kept) --settled again--> AWAITING_PAYMENT (the new transaction's hash and
 *     amount; crediting then charges it as usual)
 *   UNPAID --authorization expired or spent elsewhere--> UNPAID for good (`payment_retried_at` null)
 *
 * `payment_retried_at`: when the call was last tried (first: when it became UNPAID); null when it is not to
 * be tried again. Each pass tries a call again only once its back-off since this time has passed, so a
 * payer that never pays again does not cost the relayer a submission every pass. The call's settlement
 * (`outcome`) is kept on an UNPAID row too: crediting charges it from there once it awaits its payment.
 */
export class Migration20261204140000_x402_unpaid_retry extends Migration {
  override up(): void {
    this.addSql('alter table usage_records add column payment_retried_at timestamptz null');
    this.addSql(
      `create index usage_records_unpaid_retry_idx on usage_records (created_at)
       where status = 'UNPAID' and payment_retried_at is not null`,
    );
  }

  override down(): void {
    this.addSql('drop index if exists usage_records_unpaid_retry_idx');
    this.addSql('alter table usage_records drop column payment_retried_at');
  }
}
