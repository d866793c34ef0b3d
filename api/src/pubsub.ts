/**
 * Pub/sub for subscriptions: in-process by default, Redis when `REDIS_URL` is set so that an event
 * published on one API replica reaches subscribers on every other. Payloads are plain strings and ids
 * (JSON cannot carry bigints); subscribers load the current row themselves.
 */
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub } from 'graphql-yoga';
import { Redis } from 'ioredis';

export type PubSubChannels = {
  balanceUpdated: [accountId: string, payload: { ledgerEntryId: string }];
  depositUpdated: [accountId: string, payload: { depositId: string }];
};

export type AppPubSub = ReturnType<typeof createPubSub<PubSubChannels>>;

export interface PubSubHandle {
  pubsub: AppPubSub;
  close(): Promise<void>;
}

export function createAppPubSub(redisUrl: string | undefined): PubSubHandle {
  if (!redisUrl) return { pubsub: createPubSub<PubSubChannels>(), close: async () => {} };
  const publishClient = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 });
  const subscribeClient = new Redis(redisUrl, { lazyConnect: false });
  const eventTarget = createRedisEventTarget({ publishClient, subscribeClient });
  return {
    pubsub: createPubSub<PubSubChannels>({ eventTarget }),
    close: async () => {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}
