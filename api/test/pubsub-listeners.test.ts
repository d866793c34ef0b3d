/**
 * Pub/sub tells when a subscriber's listener hears its topic (what the subscription gauges of /metrics and
 * the test helper `subscribe` rely on): an event published from then on reaches it, in memory and through
 * Redis (where hearing waits for the SUBSCRIBE to be confirmed).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { createAppPubSub } from '../src/pubsub.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';

describe.each([
  ['in memory', undefined],
  ['through Redis', REDIS_URL],
])('pub/sub listeners %s', (_name, redisUrl) => {
  it('reports a listener once it hears its topic and when it leaves; an event published in between arrives', async () => {
    const log: string[] = [];
    const handle = createAppPubSub(redisUrl, undefined, {
      listening: (channel) => log.push(`listening ${channel}`),
      stopped: (channel) => log.push(`stopped ${channel}`),
    });
    try {
      const accountId = randomUUID();
      const events = handle.pubsub.subscribe('depositUpdated', accountId)[Symbol.asyncIterator]();
      const first = events.next(); // the first pull attaches the listener
      await vi.waitFor(() => expect(log).toEqual(['listening depositUpdated']), { timeout: 10_000 });
      handle.pubsub.publish('depositUpdated', accountId, { depositId: 'd-1' });
      expect((await first).value).toEqual({ depositId: 'd-1' });
      await events.return?.();
      await vi.waitFor(() => expect(log).toEqual(['listening depositUpdated', 'stopped depositUpdated']));
    } finally {
      await handle.close();
    }
  });
});
