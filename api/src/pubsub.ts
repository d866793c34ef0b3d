/**
 * Pub/sub for subscriptions: in-process by default, Redis when `REDIS_URL` is set so that an event
 * published on one API replica reaches subscribers on every other. Payloads are plain strings and ids
 * (JSON cannot carry bigints); subscribers load the current row themselves.
 */
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub } from 'graphql-yoga';
import { Redis } from 'ioredis';
import type { CreditingEvent } from './modules/deposits/crediting.service.ts';

export type PubSubChannels = {
  balanceUpdated: [accountId: string, payload: { ledgerEntryId: string }];
  depositUpdated: [accountId: string, payload: { depositId: string }];
};

export type AppPubSub = ReturnType<typeof createPubSub<PubSubChannels>>;

export interface PubSubHandle {
  pubsub: AppPubSub;
  close(): Promise<void>;
}

/** The subset of pino that pub/sub reports Redis trouble through. */
export interface PubSubLogger {
  warn(object: object, message: string): void;
}

export function createAppPubSub(redisUrl: string | undefined, logger?: PubSubLogger): PubSubHandle {
  if (!redisUrl) return { pubsub: createPubSub<PubSubChannels>(), close: async () => {} };
  const publishClient = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 });
  const subscribeClient = new Redis(redisUrl, { lazyConnect: false });
  for (const client of [publishClient, subscribeClient]) {
    client.on('error', (error: Error) => logger?.warn({ err: error.message }, 'pub/sub redis error'));
  }
  // The event target fires `publish` and drops its promise: with Redis down that promise rejects, and an
  // unhandled rejection ends the whole API process (api/test/faults/dependencies-down). A lost event only
  // delays a live update (clients re-read), so it is logged, never thrown.
  const safePublisher = new Proxy(publishClient, {
    get(target, property, receiver) {
      if (property !== 'publish') return Reflect.get(target, property, receiver);
      return (channel: string, message: string) =>
        target.publish(channel, message).catch((error: Error) => {
          logger?.warn({ err: error.message, channel }, 'pub/sub event lost: redis unreachable');
          return 0;
        });
    },
  });
  const eventTarget = createRedisEventTarget({ publishClient: safePublisher, subscribeClient });
  return {
    pubsub: createPubSub<PubSubChannels>({ eventTarget }),
    close: async () => {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}

/** Tells every replica's subscribers what a crediting round changed: balances and deposits. */
export function publishCreditingEvents(pubsub: AppPubSub, events: readonly CreditingEvent[]): void {
  for (const event of events) {
    if (event.type === 'balanceUpdated') {
      pubsub.publish('balanceUpdated', event.accountId, { ledgerEntryId: event.ledgerEntryId });
    } else {
      pubsub.publish('depositUpdated', event.accountId, { depositId: event.depositId });
    }
  }
}
