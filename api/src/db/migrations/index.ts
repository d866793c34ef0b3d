import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261124000000_ledger } from './Migration20261124000000_ledger.ts';
import { Migration20261124010000_auth } from './Migration20261124010000_auth.ts';
import { Migration20261124020000_apikeys } from './Migration20261124020000_apikeys.ts';
import { Migration20261124030000_metering } from './Migration20261124030000_metering.ts';
import { Migration20261124040000_stream_progress } from './Migration20261124040000_stream_progress.ts';
import { Migration20261125000000_reorg_debt } from './Migration20261125000000_reorg_debt.ts';
import { Migration20261203000000_api_key_scope } from './Migration20261203000000_api_key_scope.ts';
import { Migration20261203100000_x402 } from './Migration20261203100000_x402.ts';
import { Migration20261203120000_webhooks } from './Migration20261203120000_webhooks.ts';
import { Migration20261203130000_budgets_alerts } from './Migration20261203130000_budgets_alerts.ts';
import { Migration20261203140000_operations } from './Migration20261203140000_operations.ts';
import { Migration20261203150000_adjustment_idempotency } from './Migration20261203150000_adjustment_idempotency.ts';
import { Migration20261203160000_x402_resubmission } from './Migration20261203160000_x402_resubmission.ts';
import { Migration20261203170000_webhook_in_flight } from './Migration20261203170000_webhook_in_flight.ts';
import { Migration20261204090000_reorg_checks } from './Migration20261204090000_reorg_checks.ts';
import { Migration20261204100000_x402_authorization_claim } from './Migration20261204100000_x402_authorization_claim.ts';
import { Migration20261204110000_x402_unpaid_payer } from './Migration20261204110000_x402_unpaid_payer.ts';
import { Migration20261204120000_relay_claims } from './Migration20261204120000_relay_claims.ts';
import { Migration20261204130000_x402_upto_running } from './Migration20261204130000_x402_upto_running.ts';
import { Migration20261204140000_x402_unpaid_retry } from './Migration20261204140000_x402_unpaid_retry.ts';

/**
 * Every migration, in order. An explicit list (not a folder glob) so that migrations load the same
 * under Node's type stripping, Vitest and a bundle. Append new migrations at the end.
 */
export const migrationsList: MigrationObject[] = [
  { name: 'Migration20261124000000_ledger', class: Migration20261124000000_ledger },
  { name: 'Migration20261124010000_auth', class: Migration20261124010000_auth },
  { name: 'Migration20261124020000_apikeys', class: Migration20261124020000_apikeys },
  { name: 'Migration20261124030000_metering', class: Migration20261124030000_metering },
  { name: 'Migration20261124040000_stream_progress', class: Migration20261124040000_stream_progress },
  { name: 'Migration20261125000000_reorg_debt', class: Migration20261125000000_reorg_debt },
  { name: 'Migration20261203000000_api_key_scope', class: Migration20261203000000_api_key_scope },
  { name: 'Migration20261203100000_x402', class: Migration20261203100000_x402 },
  { name: 'Migration20261203120000_webhooks', class: Migration20261203120000_webhooks },
  { name: 'Migration20261203130000_budgets_alerts', class: Migration20261203130000_budgets_alerts },
  { name: 'Migration20261203140000_operations', class: Migration20261203140000_operations },
  {
    name: 'Migration20261203150000_adjustment_idempotency',
    class: Migration20261203150000_adjustment_idempotency,
  },
  { name: 'Migration20261203160000_x402_resubmission', class: Migration20261203160000_x402_resubmission },
  { name: 'Migration20261203170000_webhook_in_flight', class: Migration20261203170000_webhook_in_flight },
  { name: 'Migration20261204090000_reorg_checks', class: Migration20261204090000_reorg_checks },
  {
    name: 'Migration20261204100000_x402_authorization_claim',
    class: Migration20261204100000_x402_authorization_claim,
  },
  { name: 'Migration20261204110000_x402_unpaid_payer', class: Migration20261204110000_x402_unpaid_payer },
  { name: 'Migration20261204120000_relay_claims', class: Migration20261204120000_relay_claims },
  { name: 'Migration20261204130000_x402_upto_running', class: Migration20261204130000_x402_upto_running },
  { name: 'Migration20261204140000_x402_unpaid_retry', class: Migration20261204140000_x402_unpaid_retry },
];
