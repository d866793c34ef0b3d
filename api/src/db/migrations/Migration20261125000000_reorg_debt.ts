import { Migration } from '@mikro-orm/migrations';

/**
 * What a reorg deeper than CONFIRMATIONS leaves an account owing. When it removes a credited transfer, a
 * compensating ADJUSTMENT (referencing the deposit) takes the credit back up to what the account holds;
 * the rest is `accounts.debt`. The account's next credits (and what a call's hold gives back) pay the debt
 * before they add to what it can spend (ADJUSTMENTs, negative, referencing the reversed deposit), and a
 * re-mined transfer gives back what was taken and cancels what it still owed. Only crediting writes `debt`, under the same row lock as the
 * balance. Per deposit, what is still owed is the sum of its DEPOSIT entry and the ADJUSTMENTs that
 * reference it while the deposit is not CREDITED; `debt` is the sum of those (the audit checks it).
 */
export class Migration20261125000000_reorg_debt extends Migration {
  override up(): void {
    this.addSql(`
      alter table accounts
        add column debt bigint not null default 0,
        add constraint accounts_debt_non_negative check (debt >= 0)`);
    // Indebted accounts, looked up every crediting round: few, usually none.
    this.addSql('create index accounts_debt_idx on accounts (id) where debt > 0');
    // The ADJUSTMENTs that reference a deposit, found without reading the account's whole ledger.
    this.addSql(
      `create index ledger_entries_adjustment_reference_idx on ledger_entries (account_id, reference_id)
         where reason = 'ADJUSTMENT'`,
    );
  }

  override down(): void {
    this.addSql('drop index if exists ledger_entries_adjustment_reference_idx');
    this.addSql('drop index if exists accounts_debt_idx');
    this.addSql('alter table accounts drop constraint accounts_debt_non_negative, drop column debt');
  }
}
