/**
 * The limiters on their own: in memory, and through a real Redis shared by two limiter sets (two API
 * replicas' worth). Budgets are per test, with a fresh key prefix, so parallel test files never share one.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { clientIpOf, parseCidr, TrustedProxies } from './client-ip.ts';
import {
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

  it('refuses a consume larger than the whole budget as bad input, not "retry later"', async () => {
    const limits = await open(config());
    const viewer = keyViewer(randomUUID());
    // 1,001 tokens against 1,000 per minute: no minute would ever let it through.
    const error = await limits.consume(viewer, { tokens: 1_001 }).then(
      () => null,
      (failure: unknown) => failure,
    );
    expect(error).not.toBeInstanceOf(RateLimitedError);
    expect((error as { code?: string }).code).toBe('BAD_USER_INPUT');
    expect((error as Error).message).toMatch(/up to 1001 tokens.*1000 tokens per minute.*could never pass/);
    // It counted nothing: the whole budget is still there.
    await limits.consume(viewer, { tokens: 1_000 });
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

  it("a burst on a key whose budget equals its account's passes exactly that many, never fewer", async () => {
    // Key and account both allow 4 a minute. Counting the buckets side by side let a call that took the
    // key's 4th slot lose the account's 4th to a call the key then refused: both refused, 3 served.
    const shared = config({ requestsPerMinute: 4, accountRequestsPerMinute: 4 });
    const [a, b] = [await open(shared, REDIS_URL), await open(shared, REDIS_URL)];
    for (let round = 0; round < 20; round++) {
      const viewer = keyViewer(randomUUID());
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).consume(viewer, { requests: 1 })),
      );
      expect(
        results.filter((result) => result.status === 'fulfilled'),
        `round ${round}`,
      ).toHaveLength(4);
    }
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
  const none = new TrustedProxies([]);
  const lb = new TrustedProxies(['10.0.0.0/24', 'fd00::/8']);

  it('uses the socket address when no proxy is trusted, whatever X-Forwarded-For says', () => {
    expect(clientIpOf('::ffff:10.1.2.3', '6.6.6.6', none)).toBe('10.1.2.3');
    expect(clientIpOf('10.0.0.5', '6.6.6.6', none)).toBe('10.0.0.5');
    expect(clientIpOf(undefined, null, none)).toBeNull();
  });

  it('believes X-Forwarded-For only from a peer inside a trusted CIDR', () => {
    // A peer outside 10.0.0.0/24 forging the header is itself the client.
    expect(clientIpOf('10.0.1.5', '203.0.113.9', lb)).toBe('10.0.1.5');
    expect(clientIpOf('::ffff:10.0.0.5', '203.0.113.9', lb)).toBe('203.0.113.9');
    expect(clientIpOf('fd00::7', '2001:db8::1', lb)).toBe('2001:db8::1');
    expect(clientIpOf('10.0.0.5', undefined, lb)).toBe('10.0.0.5');
  });

  it('walks the chain from the right, skipping trusted proxies, and never reads what the client wrote', () => {
    // The client forged "1.1.1.1"; proxy 10.0.0.4 appended the real peer 203.0.113.9, then 10.0.0.5 appended 10.0.0.4.
    expect(clientIpOf('10.0.0.5', '1.1.1.1, 203.0.113.9, 10.0.0.4', lb)).toBe('203.0.113.9');
    // Every hop trusted: the leftmost is the furthest we can name.
    expect(clientIpOf('10.0.0.5', '10.0.0.9, 10.0.0.4', lb)).toBe('10.0.0.9');
    // Garbage handed over by a trusted proxy: the proxy that handed it over is the last named hop.
    expect(clientIpOf('10.0.0.5', 'nonsense, 10.0.0.4', lb)).toBe('10.0.0.4');
  });

  it('parses CIDRs of both families, and refuses what is not one', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('2001:db8::/32')).toEqual({ address: '2001:db8::', prefix: 32, family: 'ipv6' });
    expect(parseCidr('127.0.0.1')).toEqual({ address: '127.0.0.1', prefix: 32, family: 'ipv4' });
    for (const bad of ['10.0.0.0/33', '::/129', 'localhost', '10.0.0/8', '10.0.0.0/8/1', '10.0.0.0/x', ''])
      expect(parseCidr(bad), bad).toBeNull();
  });
});
