import { Migration } from '@mikro-orm/migrations';

/**
 * An API key's scope (issue 9, item 11): `ACCOUNT` keys act for their own account only; an `AUDITOR` key
 * may read every account, and only when created with that scope, explicitly, by a wallet that has the
 * auditor role (and only while that wallet keeps it).
 *
 * Existing keys become `ACCOUNT` keys, auditors' keys included: until now an auditor wallet's keys carried
 * the role silently, so a key made for an integration could read every account. An auditor creates a new
 * key with `scope: AUDITOR` for the audit CLI (docs/security.md).
 */
export class Migration20261203000000_api_key_scope extends Migration {
  override up(): void {
    this.addSql(`
      alter table api_keys
        add column scope text not null default 'ACCOUNT',
        add constraint api_keys_scope_known check (scope in ('ACCOUNT', 'AUDITOR'))`);
  }

  override down(): void {
    this.addSql(`
      alter table api_keys
        drop constraint api_keys_scope_known,
        drop column scope`);
  }
}
