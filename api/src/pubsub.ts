/**
 * Pub/sub for subscriptions: in-process by default, Redis when `REDIS_URL` is set so that an event
 * published on one API replica reaches subscribers on every other. Payloads are plain strings and ids
 * (JSON cannot carry bigints); subscribers load the current row themselves.
 */
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub, type PubSubEventTarget } from 'graphql-yoga';
import { Redis } from 'ioredis';
import type { CreditingEvent } from './modules/deposits/crediting.service.ts';

export type PubSubChannels = {
  balanceUpdated: [accountId: string, payload: { ledgerEntryId: string }];
  depositUpdated: [accountId: string, payload: { depositId: string }];
};

export const SUBSCRIPTION_CHANNELS = [
  'balanceUpdated',
  'depositUpdated',
] as const satisfies readonly (keyof PubSubChannels)[];

export type AppPubSub = ReturnType<typeof createPubSub<PubSubChannels>>;

/**
 * Told when a subscriber's listener is live, i.e. an event published from then on reaches it (in memory at
 * once; with Redis once the server confirmed the SUBSCRIBE), and when it is gone; by channel.
 */
export interface ListenerObserver {
  listening(channel: keyof PubSubChannels): void;
  stopped(channel: keyof PubSubChannels): void;
}

export interface PubSubHandle {
  pubsub: AppPubSub;
  close(): Promise<void>;
}

/** The subset of pino that pub/sub reports Redis trouble through. */
export interface PubSubLogger {
  warn(object: object, message: string): void;
}

export function createAppPubSub(
  redisUrl: string | undefined,
  logger?: PubSubLogger,
  observer?: ListenerObserver,
): PubSubHandle {
  if (!redisUrl) {
    const eventTarget = observedEventTarget(
      new EventTarget() as AppEventTarget,
      () => Promise.resolve(),
      observer,
    );
    return { pubsub: createPubSub<PubSubChannels>({ eventTarget }), close: async () => {} };
  }
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
  // It drops the promise of its SUBSCRIBE too (one per topic, sent by the topic's first listener): kept
  // here, it tells when a listener hears the topic; a failed one is logged rather than left unhandled.
  const subscribed = new Map<string, Promise<void>>();
  const trackedSubscriber = new Proxy(subscribeClient, {
    get(target, property, receiver) {
      if (property === 'subscribe') {
        return (topic: string) => {
          const confirmed = target.subscribe(topic).then(
            () => {},
            (error: Error) => {
              logger?.warn({ err: error.message, topic }, 'pub/sub subscribe failed: redis unreachable');
              throw error;
            },
          );
          confirmed.catch(() => {});
          subscribed.set(topic, confirmed);
          return confirmed;
        };
      }
      if (property === 'unsubscribe') {
        return (topic: string) => {
          subscribed.delete(topic);
          return target.unsubscribe(topic).catch(() => 0);
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
  const redisTarget = createRedisEventTarget({
    publishClient: safePublisher,
    subscribeClient: trackedSubscriber,
  });
  const eventTarget = observedEventTarget(
    redisTarget as AppEventTarget,
    (topic) => subscribed.get(topic) ?? Promise.resolve(),
    observer,
  );
  return {
    pubsub: createPubSub<PubSubChannels>({ eventTarget }),
    close: async () => {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}

type AppEventTarget = PubSubEventTarget<PubSubChannels>;

/**
 * `target`, telling `observer` when each listener hears its topic (`heard(topic)` resolves) and when it is
 * removed. Topics are `channel:accountId`; only the channel is reported.
 */
function observedEventTarget(
  target: AppEventTarget,
  heard: (topic: string) => Promise<void>,
  observer: ListenerObserver | undefined,
): AppEventTarget {
  if (!observer) return target;
  const live = new Set<unknown>();
  const attached = new Set<unknown>();
  const channelOf = (topic: string) => topic.split(':')[0] as keyof PubSubChannels;
  return {
    dispatchEvent: (event) => target.dispatchEvent(event),
    addEventListener(topic, listener) {
      target.addEventListener(topic, listener);
      attached.add(listener);
      heard(topic).then(
        () => {
          if (!attached.has(listener)) return;
          live.add(listener);
          observer.listening(channelOf(topic));
        },
        () => {}, // never heard: not live (the failure was logged)
      );
    },
    removeEventListener(topic, listener) {
      target.removeEventListener(topic, listener);
      attached.delete(listener);
      if (live.delete(listener)) observer.stopped(channelOf(topic));
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
