import { viewerOf } from '../../context.ts';
import { forbidden } from '../../errors.ts';
import { builder } from '../../schema/builder.ts';
import { toConnection } from '../../schema/pagination.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import { WEBHOOK_EVENT_TYPES } from './webhook-events.store.ts';
import {
  assertCanManageWebhooks,
  type CreatedWebhookEndpoint,
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  deliveryCursor,
  listAttemptsOfDeliveries,
  listDeliveriesOfEndpoints,
  listWebhookEndpoints,
  redeliverWebhook,
} from './webhooks.service.ts';
import {
  WEBHOOK_DELIVERY_STATUSES,
  type WebhookAttempt,
  type WebhookDelivery,
  type WebhookEndpoint,
} from './webhooks.store.ts';

/** Attempts shown per delivery: the newest ones. */
const ATTEMPTS_SHOWN = 20;

const WebhookEventTypeRef = builder.enumType('WebhookEventType', { values: WEBHOOK_EVENT_TYPES });
const WebhookDeliveryStatusRef = builder.enumType('WebhookDeliveryStatus', {
  values: WEBHOOK_DELIVERY_STATUSES,
});

const WebhookAttemptRef = builder.objectRef<WebhookAttempt>('WebhookAttempt').implement({
  description: 'One HTTP attempt of a delivery.',
  fields: (t) => ({
    id: t.exposeID('id'),
    attemptedAt: t.expose('attemptedAt', { type: 'DateTime' }),
    responseCode: t.exposeInt('responseCode', {
      nullable: true,
      description:
        'The HTTP status; null when no response came (refused address, timeout, connection error).',
    }),
    latencyMs: t.exposeInt('latencyMs'),
    error: t.exposeString('error', { nullable: true }),
    responseExcerpt: t.exposeString('responseExcerpt', {
      nullable: true,
      description: 'The first 512 bytes of the response body at most.',
    }),
  }),
});

const WebhookDeliveryRef = builder.objectRef<WebhookDelivery>('WebhookDelivery').implement({
  description:
    'One event for one endpoint: sent until a 2xx answers (DELIVERED), retried with backoff for a day, then FAILED.',
  fields: (t) => ({
    id: t.exposeID('id'),
    webhookId: t.exposeString('eventId', {
      description: 'The `webhook-id` header: the same on every retry and redelivery.',
    }),
    eventType: t.field({ type: WebhookEventTypeRef, resolve: (delivery) => delivery.eventType }),
    status: t.field({ type: WebhookDeliveryStatusRef, resolve: (delivery) => delivery.status }),
    attempts: t.exposeInt('attempts'),
    lastResponseCode: t.exposeInt('lastResponseCode', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    deliveredAt: t.expose('deliveredAt', { type: 'DateTime', nullable: true }),
    attemptLog: t.loadableList({
      type: WebhookAttemptRef,
      description: `Its newest attempts (at most ${ATTEMPTS_SHOWN}), newest first.`,
      load: async (ids: string[], ctx) => {
        const attempts = await listAttemptsOfDeliveries(ctx.em, ids);
        return ids.map((id) => (attempts.get(id) ?? []).slice(0, ATTEMPTS_SHOWN));
      },
      resolve: (delivery) => delivery.id,
    }),
  }),
});

const WebhookDeliveryConnection = builder.connectionObject({
  type: WebhookDeliveryRef,
  name: 'WebhookDeliveryConnection',
});

const WebhookEndpointRef = builder.objectRef<WebhookEndpoint>('WebhookEndpoint').implement({
  description: 'Where an account is told about its events, signed with the secret shown once at creation.',
  fields: (t) => ({
    id: t.exposeID('id'),
    url: t.exposeString('url'),
    events: t.field({ type: [WebhookEventTypeRef], resolve: (endpoint) => endpoint.events }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    deliveries: t.field({
      type: WebhookDeliveryConnection,
      description:
        'Its deliveries, newest first; finished ones are kept WEBHOOK_RETENTION_DAYS (30 by default) after their event.',
      args: { first: t.arg.int(), after: t.arg.string() },
      resolve: async (endpoint, args, ctx) => {
        const pages = await listDeliveriesOfEndpoints(ctx.em, [endpoint.id], args);
        const page = pages.get(endpoint.id) ?? { entries: [], hasNextPage: false, endCursor: null };
        return toConnection(page, deliveryCursor);
      },
    }),
  }),
});

const CreatedWebhookEndpointRef = builder
  .objectRef<CreatedWebhookEndpoint>('CreatedWebhookEndpoint')
  .implement({
    description: 'A new endpoint and its signing secret: store the secret now, it cannot be shown again.',
    fields: (t) => ({
      endpoint: t.field({ type: WebhookEndpointRef, resolve: (created) => created.endpoint }),
      secret: t.exposeString('secret', {
        description:
          'whsec_...: verify deliveries with it (Standard Webhooks, e.g. the standardwebhooks package).',
      }),
    }),
  });

const CreateWebhookEndpointInput = builder.inputType('CreateWebhookEndpointInput', {
  fields: (t) => ({
    url: t.string({
      required: true,
      description: 'https, at most 2048 characters, resolving to public addresses only (outside the devnet).',
    }),
    events: t.field({ type: [WebhookEventTypeRef], required: true, description: 'At least one.' }),
  }),
});

builder.mutationFields((t) => ({
  createWebhookEndpoint: t.field({
    type: CreatedWebhookEndpointRef,
    description:
      'Adds a webhook endpoint (at most 10 per account); needs a session. The secret is returned once.',
    authScopes: { authenticated: true },
    args: { input: t.arg({ type: CreateWebhookEndpointInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      // Creating one resolves a host name: the same per-IP budget as creating API keys.
      await ctx.services.rateLimits.consumeIp(ctx.clientIp, 'apiKeys');
      const viewer = viewerOf(ctx);
      assertCanManageWebhooks(viewer);
      return createWebhookEndpoint(ctx.em, viewer.accountId, input, {
        allowPrivateUrls: ctx.services.config.webhooks.allowPrivateUrls,
      });
    },
  }),
  deleteWebhookEndpoint: t.field({
    type: WebhookEndpointRef,
    description:
      'Deletes one of your endpoints; what it still had to send is not sent (FAILED). Needs a session.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const viewer = viewerOf(ctx);
      assertCanManageWebhooks(viewer);
      return deleteWebhookEndpoint(ctx.em, viewer.accountId, String(id));
    },
  }),
  redeliverWebhook: t.field({
    type: WebhookDeliveryRef,
    description:
      'Sends one of your deliveries again now, with the same webhook-id, and retries it as a new one.',
    authScopes: { authenticated: true },
    args: { deliveryId: t.arg.id({ required: true }) },
    resolve: async (_root, { deliveryId }, ctx) => {
      // The delivery workers (every replica's) pick it up on their next poll.
      return redeliverWebhook(ctx.em, viewerOf(ctx).accountId, String(deliveryId));
    },
  }),
}));

builder.objectField(AccountRef, 'webhookEndpoints', (t) =>
  t.field({
    type: [WebhookEndpointRef],
    description: "The account's webhook endpoints (at most 10), newest first. Never their secrets.",
    authScopes: { authenticated: true },
    resolve: (account, _args, ctx) => {
      // The delivery log is the owner's only: it shows what the account's receivers answered.
      if (viewerOf(ctx).accountId !== account.id) throw forbidden();
      return listWebhookEndpoints(ctx.em, account.id);
    },
  }),
);
