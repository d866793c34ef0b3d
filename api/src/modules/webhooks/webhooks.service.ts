/**
 * Webhook endpoints and their delivery log, for their owner: create (the `whsec_` secret is returned once),
 * list, delete, read the deliveries, redeliver. Every function takes the account the caller acts for and
 * touches that account's rows only, so another account's endpoint or delivery is simply not found.
 */
import { randomBytes } from 'node:crypto';
import {
  cursorBigint,
  cursorUuid,
  decodeCursor,
  encodeCursor,
  type Page,
  type PageArgs,
  pageSize,
} from '../../db/cursor.ts';
import type { Em } from '../../db/orm.ts';
import { sqlOf } from '../../db/sql.ts';
import { badInput, ExpectedError, notFound } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';
import { hostOf, resolvePublicAddresses, urlProblem, WebhookAddressError } from './url-guard.ts';
import type { WebhookEventType } from './webhook-events.store.ts';
import {
  deleteEndpoint,
  insertEndpointWithin,
  readAttemptsOfDeliveries,
  readDeliveriesOfEndpoints,
  readLiveEndpoints,
  redeliver,
  type WebhookAttempt,
  type WebhookDelivery,
  type WebhookEndpoint,
} from './webhooks.store.ts';

/** Live endpoints an account may have. */
export const MAX_WEBHOOK_ENDPOINTS_PER_ACCOUNT = 10;

export interface WebhookPolicy {
  allowPrivateUrls: boolean;
}

export interface CreatedWebhookEndpoint {
  endpoint: WebhookEndpoint;
  /** `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing secret, shown once. */
  secret: string;
}

/** Endpoints are managed from a signed-in session, like API keys; an API key may read and redeliver. */
export function assertCanManageWebhooks(viewer: Viewer): void {
  if (viewer.credential.kind !== 'session') {
    throw new ExpectedError(
      'FORBIDDEN',
      'Webhook endpoints are managed from a signed-in session, not with an API key',
    );
  }
}

/** Refuses a URL that is not a safe webhook target (BAD_USER_INPUT, field `url`). */
export async function assertWebhookUrl(url: string, policy: WebhookPolicy): Promise<void> {
  const problem = urlProblem(url, policy.allowPrivateUrls);
  if (problem) throw badInput(`url ${problem}`, 'url');
  if (policy.allowPrivateUrls) return;
  try {
    await resolvePublicAddresses(hostOf(new URL(url)));
  } catch (error) {
    if (error instanceof WebhookAddressError) throw badInput(`url: ${error.message}`, 'url');
    throw error;
  }
}

export async function createWebhookEndpoint(
  em: Em,
  accountId: string,
  input: { url: string; events: readonly WebhookEventType[] },
  policy: WebhookPolicy,
): Promise<CreatedWebhookEndpoint> {
  const url = input.url.trim();
  const events = [...new Set(input.events)];
  if (events.length === 0) throw badInput('events: choose at least one event type', 'events');
  await assertWebhookUrl(url, policy);
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const endpoint = await sqlOf(em).transaction((query) =>
    insertEndpointWithin(query, { accountId, url, secret, events }, MAX_WEBHOOK_ENDPOINTS_PER_ACCOUNT),
  );
  if (!endpoint) {
    throw badInput(
      `an account may have at most ${MAX_WEBHOOK_ENDPOINTS_PER_ACCOUNT} webhook endpoints: delete one first`,
    );
  }
  return { endpoint, secret };
}

export async function listWebhookEndpoints(em: Em, accountId: string): Promise<WebhookEndpoint[]> {
  return readLiveEndpoints(sqlOf(em).query, accountId);
}

export async function deleteWebhookEndpoint(em: Em, accountId: string, id: string): Promise<WebhookEndpoint> {
  if (!isUuid(id)) throw endpointNotFound();
  const endpoint = await sqlOf(em).transaction((query) => deleteEndpoint(query, accountId, id));
  if (!endpoint) throw endpointNotFound();
  return endpoint;
}

export async function redeliverWebhook(
  em: Em,
  accountId: string,
  deliveryId: string,
): Promise<WebhookDelivery> {
  if (!isUuid(deliveryId)) throw deliveryNotFound();
  const delivery = await redeliver(sqlOf(em).query, accountId, deliveryId);
  if (!delivery) throw deliveryNotFound();
  return delivery;
}

// Microseconds, as the column holds them (a cursor of the former kind, in milliseconds, is refused).
const DELIVERY_CURSOR = 'webhookDeliveryUs';
/** 9999-12-31T23:59:59.999999Z in microseconds: a forged cursor beyond it is refused, not a database error. */
const LATEST_MICROS = 253_402_300_799_999_999n;

export function deliveryCursor(delivery: Pick<WebhookDelivery, 'createdAtMicros' | 'id'>): string {
  return encodeCursor(DELIVERY_CURSOR, [delivery.createdAtMicros, delivery.id]);
}

/**
 * Pages of deliveries of several endpoints at once (one statement), newest first, keyed by endpoint. The
 * endpoints must be the caller's (they come from `listWebhookEndpoints`).
 */
export async function listDeliveriesOfEndpoints(
  em: Em,
  endpointIds: readonly string[],
  args: PageArgs,
): Promise<Map<string, Page<WebhookDelivery>>> {
  const first = pageSize(args.first);
  let after: { createdAtMicros: bigint; id: string } | null = null;
  if (args.after) {
    const [micros, id] = decodeCursor(DELIVERY_CURSOR, args.after, 2);
    after = {
      createdAtMicros: cursorBigint(DELIVERY_CURSOR, micros, LATEST_MICROS),
      id: cursorUuid(DELIVERY_CURSOR, id),
    };
  }
  const rows =
    first === 0 ? [] : await readDeliveriesOfEndpoints(sqlOf(em).query, endpointIds, first + 1, after);
  const pages = new Map<string, Page<WebhookDelivery>>();
  for (const endpointId of endpointIds) {
    const all = rows.filter((row) => row.endpointId === endpointId);
    const entries = all.slice(0, first);
    const last = entries.at(-1);
    pages.set(endpointId, {
      entries,
      hasNextPage: all.length > first,
      endCursor: last ? deliveryCursor(last) : null,
    });
  }
  return pages;
}

/** The attempts of these deliveries (the caller's), newest first, keyed by delivery. */
export async function listAttemptsOfDeliveries(
  em: Em,
  deliveryIds: readonly string[],
): Promise<Map<string, WebhookAttempt[]>> {
  const attempts = new Map<string, WebhookAttempt[]>(deliveryIds.map((id) => [id, []]));
  for (const attempt of await readAttemptsOfDeliveries(sqlOf(em).query, deliveryIds)) {
    attempts.get(attempt.deliveryId)?.push(attempt);
  }
  return attempts;
}

const endpointNotFound = () => notFound('No such webhook endpoint');
const deliveryNotFound = () => notFound('No such webhook delivery');

function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
