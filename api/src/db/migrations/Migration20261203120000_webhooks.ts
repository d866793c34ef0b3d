import { Migration } from '@mikro-orm/migrations';

/**
 * Webhooks (issue 12): an account's endpoints and the durable outbox of deliveries to them.
 *
 * - `webhook_endpoints`: where an account wants to be told, which event types, and the `whsec_` secret the
 *   deliveries are signed with (Standard Webhooks; it must be readable to sign, so it is stored as given and
 *   shown to the owner once). Deleting an endpoint sets `deleted_at`: its delivery log stays readable and
 *   its pending deliveries stop.
 * - `webhook_deliveries`: the outbox. One row per (event, endpoint), inserted in the transaction that makes
 *   the change the event describes, so an event exists exactly when its change committed. `event_id` is the
 *   `webhook-id` (stable across retries and redelivery); `next_attempt_at` is when a worker may claim it
 *   (claiming pushes it forward by a lease, so a crashed worker's claim runs again later: at least once);
 *   retries stop a day (the retry window) after `retrying_since`: the event, or its manual redelivery.
 * - `webhook_attempts`: the delivery log, one row per HTTP attempt (response code, latency, a short excerpt).
 */
export class Migration20261203120000_webhooks extends Migration {
  override up(): void {
    this.addSql(`
      create table webhook_endpoints (
        id uuid primary key default gen_random_uuid(),
        account_id uuid not null references accounts (id),
        url text not null,
        secret text not null,
        events text[] not null,
        created_at timestamptz not null default now(),
        deleted_at timestamptz null,
        constraint webhook_endpoints_events_not_empty check (cardinality(events) > 0)
      )`);
    // enqueueWebhookEvents joins on the account's live endpoints in every crediting transaction.
    this.addSql(
      'create index webhook_endpoints_account_idx on webhook_endpoints (account_id) where deleted_at is null',
    );
    this.addSql(`
      create table webhook_deliveries (
        id uuid primary key default gen_random_uuid(),
        endpoint_id uuid not null references webhook_endpoints (id),
        account_id uuid not null references accounts (id),
        event_id uuid not null,
        event_type text not null,
        event_at timestamptz not null,
        data jsonb not null,
        status text not null default 'PENDING',
        attempts integer not null default 0,
        next_attempt_at timestamptz not null,
        retrying_since timestamptz not null,
        claim uuid null,
        last_response_code integer null,
        created_at timestamptz not null,
        delivered_at timestamptz null,
        constraint webhook_deliveries_status_known check (status in ('PENDING', 'DELIVERED', 'FAILED')),
        constraint webhook_deliveries_event_endpoint_unique unique (event_id, endpoint_id)
      )`);
    // The workers' claim: the due PENDING deliveries, oldest first.
    this.addSql(
      `create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'PENDING'`,
    );
    // An endpoint's delivery log, newest first.
    this.addSql(
      'create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, created_at desc, id desc)',
    );
    this.addSql(`
      create table webhook_attempts (
        id uuid primary key default gen_random_uuid(),
        delivery_id uuid not null references webhook_deliveries (id),
        attempted_at timestamptz not null,
        response_code integer null,
        latency_ms integer not null,
        error text null,
        response_excerpt text null
      )`);
    this.addSql(
      'create index webhook_attempts_delivery_idx on webhook_attempts (delivery_id, attempted_at desc)',
    );
  }

  override down(): void {
    this.addSql('drop table if exists webhook_attempts');
    this.addSql('drop table if exists webhook_deliveries');
    this.addSql('drop table if exists webhook_endpoints');
  }
}
