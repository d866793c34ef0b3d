/**
 * The limiters on their own: in memory, and through a real Redis shared by two limiter sets (two API
 * replicas' worth). Budgets are per test, with a fresh key prefix, so parallel test files never share one.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  clientIpOf,
  createRateLimits,
  type RateLimitConfig,
  RateLimitedError,
  type RateLimits,
} from './ratelimit.service.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';

const opened: RateLimits[] = [];
afterEach(async () => {
  for (const limits of opened.splice(0)) await limits.close();
});

function config(overrides: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return {
    requestsPerMinute: 5,
    tokensPerMinute: 1_000,
    accountRequestsPerMinute: 8,
    accountTokensPerMinute: 1_500,
    ipActionsPerMinute: 3,
    keyPrefix: `cm:rl:test:${randomUUID()}`,
    ...overrides,
  };
}

async function open(cfg: RateLimitConfig, redisUrl?: string): Promise<RateLimits> {
  const limits = await createRateLimits(cfg, { redisUrl });
  opened.push(limits);
  return limits;
}

const keyViewer = (accountId: string, apiKeyId: string = randomUUID()) => ({
  accountId,
  credential: { kind: 'apiKey' as const, apiKeyId },
});
const sessionViewer = (accountId: string) => ({
  accountId,
  credential: { kind: 'session' as const, sessionId: randomUUID() },
});

async function refusal(promise: Promise<unknown>): Promise<RateLimitedError> {
  const error = await promise.then(
    () => null,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(RateLimitedError);
  return error as RateLimitedError;
}

describe('in memory', () => {
  it('allows N requests per key per minute and refuses the N+1st with a retry delay', async () => {
    const limits = await open(config());
    const viewer = keyViewer(randomUUID());
    for (let i = 0; i < 5; i++) await limits.consume(viewer, { requests: 1 });
    const error = await refusal(limits.consume(viewer, { requests: 1 }));
    expect(error.code).toBe('RATE_LIMITED');
    expect(error.limit).toBe('apiKey.requests');
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(error.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: error.retryAfterSeconds });
    // Another key of another account is unaffected.
    await limits.consume(keyViewer(randomUUID()), { requests: 1 });
  });

  it('caps an account across all its keys and sessions', async () => {
    const limits = await open(config());
    const accountId = randomUUID();
    // 8 per account, 5 per key: two keys and a session together reach the account's budget first.
    for (let i = 0; i < 4; i++) await limits.consume(keyViewer(accountId, 'key-a'), { requests: 1 });
    for (let i = 0; i < 3; i++) await limits.consume(keyViewer(accountId, 'key-b'), { requests: 1 });
    await limits.consume(sessionViewer(accountId), { requests: 1 });
    const error = await refusal(limits.consume(keyViewer(accountId, 'key-c'), { requests: 1 }));
    expect(error.limit).toBe('account.requests');
  });

  it('a refused call costs nothing: it does not drain the other buckets', async () => {
    const limits = await open(config({ requestsPerMinute: 2, accountRequestsPerMinute: 3 }));
    const accountId = randomUUID();
    const busy = keyViewer(accountId, 'busy');
    await limits.consume(busy, { requests: 2 });
    for (let i = 0; i < 5; i++) await refusal(limits.consume(busy, { requests: 1 }));
    // The account spent 2 of 3: one more call fits on another key.
    await limits.consume(keyViewer(accountId, 'other'), { requests: 1 });
    await refusal(limits.consume(keyViewer(accountId, 'third'), { requests: 1 }));
  });

  it('gives back what a call took, on every bucket it took from', async () => {
    const limits = await open(config({ requestsPerMinute: 2, accountRequestsPerMinute: 3 }));
    const accountId = randomUUID();
    const dead = keyViewer(accountId, 'dead');
    await limits.consume(dead, { requests: 2 });
    await refusal(limits.consume(dead, { requests: 1 }));
    await limits.giveBack(dead, { requests: 2 });
    // Both the key's and the account's budgets are whole again.
    await limits.consume(dead, { requests: 2 });
    await limits.giveBack(dead, { requests: 2 });
    await limits.consume(keyViewer(accountId, 'other'), { requests: 2 });
    await limits.consume(sessionViewer(accountId), { requests: 1 });
    expect((await refusal(limits.consume(sessionViewer(accountId), { requests: 1 }))).limit).toBe(
      'account.requests',
    );
  });

  it('tokens: recorded usage may overshoot, and then the next call is refused', async () => {
    const limits = await open(config());
    const viewer = keyViewer(randomUUID());
    await limits.consume(viewer, { requests: 1 });
    await limits.record(viewer, { tokens: 900 });
    await limits.consume(viewer, { requests: 1 });
    await limits.record(viewer, { tokens: 900 }); // 1,800 > 1,000: over, never throws
    const error = await refusal(limits.consume(viewer, { requests: 1 }));
    expect(error.limit).toBe('apiKey.tokens');
    // A pure check refuses too, and counts nothing.
    await refusal(limits.consume(viewer, {}));
  });

  it('refuses a consume larger than the whole budget', async () => {
    const limits = await open(config());
    await refusal(limits.consume(keyViewer(randomUUID()), { tokens: 1_001 }));
  });

  it('rejects nonsense usage as a programming error', async () => {
    const limits = await open(config());
    await expect(limits.consume(keyViewer(randomUUID()), { tokens: -1 })).rejects.toThrow(TypeError);
    await expect(limits.consume(keyViewer(randomUUID()), { tokens: 1.5 })).rejects.toThrow(TypeError);
  });

  it('limits each IP and action separately', async () => {
    const limits = await open(config());
    for (let i = 0; i < 3; i++) await limits.consumeIp('10.0.0.1', 'signIn');
    const error = await refusal(limits.consumeIp('10.0.0.1', 'signIn'));
    expect(error.limit).toBe('ip.signIn');
    await limits.consumeIp('10.0.0.2', 'signIn');
    await limits.consumeIp('10.0.0.1', 'siweChallenge');
    await limits.consumeIp('10.0.0.1', 'apiKeys');
  });
});

describe('with Redis', () => {
  it('two limiter sets (two replicas) share one budget', async () => {
    const shared = config();
    const [a, b] = [await open(shared, REDIS_URL), await open(shared, REDIS_URL)];
    const viewer = keyViewer(randomUUID());
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume(viewer, { requests: 1 })),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(5);
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(RateLimitedError);
    }
    await refusal(a.consume(viewer, { requests: 1 }));
    await refusal(b.consume(viewer, { requests: 1 }));
    // Tokens recorded on one replica are seen by the other.
    const other = keyViewer(randomUUID());
    await a.record(other, { tokens: 1_200 });
    expect((await refusal(b.consume(other, { requests: 1 }))).limit).toBe('apiKey.tokens');
    // What one replica gives back, the other can use.
    const third = keyViewer(randomUUID());
    for (let i = 0; i < 5; i++) await a.consume(third, { requests: 1 });
    await refusal(b.consume(third, { requests: 1 }));
    await a.giveBack(third, { requests: 1 });
    await b.consume(third, { requests: 1 });
    // Per IP too.
    for (let i = 0; i < 3; i++) await (i % 2 ? a : b).consumeIp('192.0.2.7', 'signIn');
    await refusal(a.consumeIp('192.0.2.7', 'signIn'));
  });

  it('keeps limiting in memory when Redis is unreachable', async () => {
    const limits = await createRateLimits(config(), { redisUrl: 'redis://127.0.0.1:1' });
    opened.push(limits);
    const viewer = keyViewer(randomUUID());
    for (let i = 0; i < 5; i++) await limits.consume(viewer, { requests: 1 });
    await refusal(limits.consume(viewer, { requests: 1 }));
  }, 15_000);
});

describe('clientIpOf', () => {
  it('uses the socket address unless proxies are trusted', () => {
    expect(clientIpOf('::ffff:10.1.2.3', '6.6.6.6', 0)).toBe('10.1.2.3');
    expect(clientIpOf('10.1.2.3', undefined, 1)).toBe('10.1.2.3');
    expect(clientIpOf(undefined, null, 0)).toBeNull();
  });

  it('takes the entry the trusted proxies appended, not what the client wrote', () => {
    // The client forged "1.1.1.1"; the one trusted proxy appended the real peer 203.0.113.9.
    expect(clientIpOf('10.0.0.5', '1.1.1.1, 203.0.113.9', 1)).toBe('203.0.113.9');
    expect(clientIpOf('10.0.0.5', '1.1.1.1, 203.0.113.9, 10.0.0.4', 2)).toBe('203.0.113.9');
    // Fewer entries than hops: fall back to the socket.
    expect(clientIpOf('10.0.0.5', '203.0.113.9', 2)).toBe('10.0.0.5');
  });
});
