import { Migration } from '@mikro-orm/migrations';

/**
 * The head up to which the last complete reorg check compared every credit of a chain. A process that
 * starts looks that far back (Ponder's window below it) for credits a deep reorg removed: a process that
 * died between a crediting transaction and the reorg check after it had moved the crediting cursor past
 * the removed credits, and the next one, starting from the cursor, never compared them again.
 */
export class Migration20261204090000_reorg_checks extends Migration {
  override up(): void {
    this.addSql(`
      create table reorg_checks (
        chain_id integer primary key,
        checked_head bigint not null,
        updated_at timestamptz not null default now()
      )`);
  }

  override down(): void {
    this.addSql('drop table if exists reorg_checks');
  }
}
