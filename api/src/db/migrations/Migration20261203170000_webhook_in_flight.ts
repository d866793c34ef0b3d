import { Migration } from '@mikro-orm/migrations';

/**
 * The deliveries in flight (claimed by a worker, not yet recorded), per account: every claim counts them to
 * keep an account within its share of the workers' slots (`WEBHOOK_ACCOUNT_CONCURRENCY`). Few rows match,
 * however long the outbox's backlog or retry queue.
 */
export class Migration20261203170000_webhook_in_flight extends Migration {
  override up(): void {
    this.addSql(
      `create index webhook_deliveries_in_flight_idx on webhook_deliveries (account_id)
       where status = 'PENDING' and claim is not null`,
    );
  }

  override down(): void {
    this.addSql('drop index if exists webhook_deliveries_in_flight_idx');
  }
}
