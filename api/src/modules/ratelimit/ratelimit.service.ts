/**
 * Rate limits, with `rate-limiter-flexible`: fixed one-minute windows, in process memory by default and
 * in Redis when `REDIS_URL` is set, so every API replica counts against the same budget.
 *
 * Buckets:
 * - per API key and per account: requests per minute and LLM tokens per minute. A call made with an
 *   API key counts against the key's buckets and its account's; a call made with a session counts against
 *   the account's only. So an account cannot multiply its budget by minting keys.
 * - per client IP and action (`siweChallenge`, `signIn`, `apiKeys` for key management), for the
 *   endpoints a stranger can hammer before (or while) being signed in.
 * - gasless top-ups (`relayPayment`), per hour: per client IP, and per paying wallet. Each one the relayer
 *   submits costs the platform gas.
 *
 * With Redis, a Redis outage does not take the API down: each Redis limiter has an in-memory insurance
 * limiter with the same budget that counts (per replica) while Redis is unreachable.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import { badInput, ExpectedError } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';

const WINDOW_SECONDS = 60;
/** How long a start waits for Redis before counting in memory (it keeps reconnecting meanwhile). */
const REDIS_CONNECT_TIMEOUT_MS = 5_000;

export interface RateLimitConfig {
  /** Requests per minute for one API key. */
  requestsPerMinute: number;
  /** LLM tokens (prompt + completion) per minute for one API key. */
  tokensPerMinute: number;
  /** Requests per minute for one account, all its keys and sessions together. */
  accountRequestsPerMinute: number;
  /** LLM tokens per minute for one account, all its keys and sessions together. */
  accountTokensPerMinute: number;
  /** Calls per minute from one client IP to each action: siweChallenge, signIn, key management. */
  ipActionsPerMinute: number;
  /** Gasless top-ups per paying wallet per hour (default 10). */
  relayWalletPerHour?: number;
  /** Gasless top-ups per client IP per hour (default 30). */
  relayIpPerHour?: number;
  /** Prefix of every Redis key; deployments (or test runs) sharing one Redis use different ones. */
  keyPrefix: string;
}

/** Per-IP actions with their own bucket each. */
export type IpAction = 'siweChallenge' | 'signIn' | 'apiKeys';

/** The usage a call adds to its buckets; an omitted kind adds 0 (and is still checked). */
export interface RateLimitUsage {
  requests?: number;
  tokens?: number;
}

/**
 * Too many calls: code `RATE_LIMITED`, with the seconds after which the same call would pass. On
 * GraphQL it reaches the client as `extensions: { code: 'RATE_LIMITED', retryAfter }`; REST maps it
 * to HTTP 429 with `Retry-After: <retryAfterSeconds>`.
 */
export class RateLimitedError extends ExpectedError {
  override name = 'RateLimitedError';
  readonly retryAfterSeconds: number;
  /** Which budget ran out, e.g. `apiKey.requests`, `account.tokens`, `ip.signIn`. */
  readonly limit: string;
  constructor(limit: string, retryAfterSeconds: number) {
    super('RATE_LIMITED', `Rate limit exceeded (${limit}); retry after ${retryAfterSeconds} s`, {
      retryAfter: retryAfterSeconds,
    });
    this.retryAfterSeconds = retryAfterSeconds;
    this.limit = limit;
  }
}

export type RateLimitedViewer = Pick<Viewer, 'accountId' | 'credential'>;

export interface RateLimits {
  /**
   * Counts `usage` against the viewer's buckets and throws `RateLimitedError` when any of them is over
   * its budget (then nothing is counted). `consume(viewer, {})` only checks that no bucket is exhausted.
   *
   * @example
   * await services.rateLimits.consume(viewer, { requests: 1 }); // before calling the upstream
   * await services.rateLimits.record(viewer, { tokens: usage.totalTokens }); // after it answered
   */
  consume(viewer: RateLimitedViewer, usage: RateLimitUsage): Promise<void>;
  /**
   * Counts usage that already happened (e.g. the tokens of a finished completion) and never throws: a
   * bucket may go over its budget, and then the viewer's next `consume` is refused until it drains.
   */
  record(viewer: RateLimitedViewer, usage: RateLimitUsage): Promise<void>;
  /**
   * Gives back what `consume` counted for a call that turned out not to be the viewer's to count (an API
   * key found revoked or expired only after its limits were taken). Never throws.
   */
  giveBack(viewer: RateLimitedViewer, usage: RateLimitUsage): Promise<void>;
  /** One call of `action` from `ip`; throws `RateLimitedError` past `ipActionsPerMinute`. */
  consumeIp(ip: string | null, action: IpAction): Promise<void>;
  /**
   * One gasless top-up attempt from the client IP (`by: 'ip'`) or for the paying wallet (`by: 'wallet'`);
   * throws `RateLimitedError` (`ip.relayPayment`, `wallet.relayPayment`) past the hourly budget.
   */
  consumeRelay(by: 'ip' | 'wallet', key: string | null): Promise<void>;
  close(): Promise<void>;
}

export interface CreateRateLimitsOptions {
  /** Share the budgets through this Redis; unset: process memory. */
  redisUrl?: string | undefined;
  logger?: Pick<Logger, 'warn'>;
}

interface Bucket {
  name: string;
  limiter: RateLimiterAbstract;
  key: string;
  points: number;
}

/** Builds the limiters from the configuration. Call `close()` on shutdown (it ends the Redis client). */
export async function createRateLimits(
  config: RateLimitConfig,
  options: CreateRateLimitsOptions = {},
): Promise<RateLimits> {
  let redis: Redis | null = null;
  if (options.redisUrl) {
    const { Redis: RedisClient } = await import('ioredis');
    // No offline queue: while Redis is down, calls fail fast and the insurance limiter counts instead.
    redis = new RedisClient(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    redis.on('error', (error: Error) =>
      options.logger?.warn({ err: error.message }, 'rate-limit redis error'),
    );
    await connected(redis, REDIS_CONNECT_TIMEOUT_MS).catch((error: unknown) => {
      options.logger?.warn(
        { err: String(error) },
        'rate limits: Redis not reachable yet, counting in memory',
      );
    });
  }
  const make = (name: string, points: number, duration = WINDOW_SECONDS): RateLimiterAbstract => {
    const keyPrefix = `${config.keyPrefix}:${name}`;
    const memory = new RateLimiterMemory({ keyPrefix, points, duration });
    if (!redis) return memory;
    return new RateLimiterRedis({
      storeClient: redis,
      keyPrefix,
      points,
      duration,
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory,
    });
  };
  const limiters = {
    keyRequests: make('key-req', config.requestsPerMinute),
    keyTokens: make('key-tok', config.tokensPerMinute),
    accountRequests: make('acct-req', config.accountRequestsPerMinute),
    accountTokens: make('acct-tok', config.accountTokensPerMinute),
    siweChallenge: make('ip-challenge', config.ipActionsPerMinute),
    signIn: make('ip-signin', config.ipActionsPerMinute),
    apiKeys: make('ip-keys', config.ipActionsPerMinute),
    relayIp: make('ip-relay', config.relayIpPerHour ?? 30, 3_600),
    relayWallet: make('wallet-relay', config.relayWalletPerHour ?? 10, 3_600),
  };

  const bucketsOf = (viewer: RateLimitedViewer, usage: RateLimitUsage): Bucket[] => {
    const requests = nonNegative(usage.requests);
    const tokens = nonNegative(usage.tokens);
    // Key buckets first: when several run out at once, the error names the most specific one.
    const buckets: Bucket[] = [];
    if (viewer.credential.kind === 'apiKey') {
      const keyId = viewer.credential.apiKeyId;
      buckets.push(
        { name: 'apiKey.requests', limiter: limiters.keyRequests, key: keyId, points: requests },
        { name: 'apiKey.tokens', limiter: limiters.keyTokens, key: keyId, points: tokens },
      );
    }
    buckets.push(
      {
        name: 'account.requests',
        limiter: limiters.accountRequests,
        key: viewer.accountId,
        points: requests,
      },
      { name: 'account.tokens', limiter: limiters.accountTokens, key: viewer.accountId, points: tokens },
    );
    return buckets;
  };

  /** Adds (`penalty`) or removes (`reward`) `usage` on each of the viewer's buckets; logs, never throws. */
  const adjust = async (viewer: RateLimitedViewer, usage: RateLimitUsage, change: 'penalty' | 'reward') => {
    await Promise.all(
      bucketsOf(viewer, usage)
        .filter((bucket) => bucket.points > 0)
        .map((bucket) =>
          bucket.limiter[change](bucket.key, bucket.points).catch((error: unknown) => {
            options.logger?.warn({ err: String(error), limit: bucket.name }, `rate-limit ${change} failed`);
          }),
        ),
    );
  };

  return {
    async consume(viewer, usage) {
      const buckets = bucketsOf(viewer, usage);
      assertCanEverFit(buckets);
      await consumeAll(buckets);
    },
    async record(viewer, usage) {
      await adjust(viewer, usage, 'penalty');
    },
    async giveBack(viewer, usage) {
      await adjust(viewer, usage, 'reward');
    },
    async consumeIp(ip, action) {
      await consumeAll([
        { name: `ip.${action}`, limiter: limiters[action], key: ip ?? 'unknown', points: 1 },
      ]);
    },
    async consumeRelay(by, key) {
      await consumeAll([
        {
          name: `${by}.relayPayment`,
          limiter: by === 'ip' ? limiters.relayIp : limiters.relayWallet,
          key: key ?? 'unknown',
          points: 1,
        },
      ]);
    },
    async close() {
      redis?.disconnect();
    },
  };
}

/**
 * A call that counts more than a bucket's whole budget would be refused every minute, forever: that is
 * not "retry later" (429) but a request that must change (BAD_USER_INPUT, REST 400), said as such.
 */
function assertCanEverFit(buckets: Bucket[]): void {
  for (const bucket of buckets) {
    if (bucket.points <= bucket.limiter.points) continue;
    const [owner, kind] = bucket.name.split('.') as [string, string];
    const whose = owner === 'apiKey' ? 'this API key' : 'this account';
    throw badInput(
      kind === 'tokens'
        ? `The request may count up to ${bucket.points} tokens (its prompt's size bounds them), more than the ${bucket.limiter.points} tokens per minute ${whose} may use (${bucket.name}): it could never pass. Send a shorter prompt.`
        : `The request counts ${bucket.points} ${kind}, more than the ${bucket.limiter.points} per minute ${whose} may make (${bucket.name}): it could never pass.`,
      'messages',
    );
  }
}

/**
 * Consumes the buckets one after another, the most specific first, and stops at the first that refuses;
 * then gives back what this call took (the refusing bucket counted it too), so a refused call costs
 * nothing and a busy key does not drain its account's budget with calls that never ran.
 *
 * One after another, not side by side: counted side by side, a call that took a key's last slot could lose
 * the account's last slot to a call the key then refused, and both were refused: fewer calls passed than
 * the budget allowed. In order, only calls the key let through reach the account.
 */
async function consumeAll(buckets: Bucket[]): Promise<void> {
  const taken: Bucket[] = [];
  let refusal: RateLimitedError | null = null;
  let failure: unknown = null;
  for (const bucket of buckets) {
    try {
      await bucket.limiter.consume(bucket.key, bucket.points);
      taken.push(bucket);
    } catch (error) {
      if (error instanceof RateLimiterRes) {
        taken.push(bucket);
        refusal = new RateLimitedError(bucket.name, Math.max(1, Math.ceil(error.msBeforeNext / 1000)));
      } else {
        failure = error;
      }
      break;
    }
  }
  if (!refusal && !failure) return;
  await Promise.all(
    taken
      .filter((bucket) => bucket.points > 0)
      .map((bucket) => bucket.limiter.reward(bucket.key, bucket.points).catch(() => {})),
  );
  if (refusal) throw refusal;
  throw failure;
}

function connected(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

function nonNegative(value: number | undefined): number {
  if (value === undefined) return 0;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`rate-limit usage must be a non-negative integer, got ${value}`);
  }
  return value;
}
