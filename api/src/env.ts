/**
 * The API's configuration: the one place that reads `process.env`. Every variable is validated up front and
 * every problem is reported at once, so a misconfigured start says exactly what is wrong and refuses to run.
 */
import {
  BASE_CHAIN_ID,
  BASE_USDC_ADDRESS,
  DEVNET_CHAIN_ID,
  DEVNET_RPC_URL,
  defaultConfirmations,
  PONDER_FINALITY_BLOCKS,
  parseRatio,
  type Ratio,
} from '@chainmeter/schema';
import { type Address, getAddress, isAddress } from 'viem';
import { z } from 'zod';
import type { RateLimitConfig } from './modules/ratelimit/ratelimit.service.ts';

const address = z
  .string()
  .trim()
  .refine((value) => isAddress(value, { strict: false }), 'must be an address: 0x followed by 40 hex digits')
  .transform((value) => getAddress(value));

/** Steps of a metered call where a test may crash the API process (`CHAINMETER_CRASH_AT`). */
export const CRASH_POINTS = ['after-hold', 'after-answer', 'after-settlement'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const optionalAddress = z.preprocess((value) => (value === '' ? undefined : value), address.optional());
const optionalString = z.preprocess((value) => (value === '' ? undefined : value), z.string().optional());
const optionalUrl = z.preprocess((value) => (value === '' ? undefined : value), z.url().optional());

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(4000),
  HOST: z.string().default('127.0.0.1'),
  /** The origin users reach the API on: SIWE messages carry its host as `domain` and it as `uri`. */
  PUBLIC_ORIGIN: optionalUrl,
  DATABASE_URL: optionalString,
  DATA_DIR: z.string().default('.data'),
  REDIS_URL: optionalString,
  RPC_URL: z.url().default(DEVNET_RPC_URL),
  CHAIN_ID: z.coerce.number().int().positive().default(DEVNET_CHAIN_ID),
  USDC_ADDRESS: optionalAddress,
  TREASURY_ADDRESS: optionalAddress,
  INDEXER_PORT: z.coerce.number().int().min(1).max(65_535).default(42_069),
  INDEXER_URL: optionalUrl,
  CONFIRMATIONS: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce
      .number()
      .int()
      .min(1)
      .max(PONDER_FINALITY_BLOCKS - 1, `must stay below Ponder's reorg window of ${PONDER_FINALITY_BLOCKS}`)
      .optional(),
  ),
  CREDITING_POLL_MS: z.coerce.number().int().min(20).max(60_000).default(200),
  SESSION_TTL_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 90)
    .default(24 * 7),
  LLM_BASE_URL: optionalUrl,
  LLM_API_KEY: optionalString,
  LLM_PRICES: optionalString,
  /** Upstream answer timeout (and, streaming, the longest silence between chunks). */
  LLM_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  /**
   * A hold not refreshed for this long is released: its process died mid-call (a running process refreshes
   * the holds of its in-flight calls every third of this, so a long stream keeps its hold).
   */
  METERING_HOLD_TTL_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(7 * 24 * 3_600_000)
    .default(15 * 60_000),
  /** Period of the loop that retries failed settlements and releases expired holds. */
  METERING_RETRY_MS: z.coerce.number().int().min(10).max(600_000).default(1_000),
  PRICE_MARKUP: z
    .string()
    .default('2.0')
    .refine((value) => /^\d+(\.\d+)?$/.test(value) && Number(value) >= 1, 'must be a decimal number >= 1'),
  AUDITOR_ADDRESSES: z
    .string()
    .default('')
    .transform((value, ctx) => {
      const out: Address[] = [];
      for (const part of value.split(',').map((item) => item.trim())) {
        if (!part) continue;
        if (!isAddress(part, { strict: false })) {
          ctx.addIssue({ code: 'custom', message: `"${part}" is not an address` });
          continue;
        }
        out.push(getAddress(part));
      }
      return out;
    }),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Per API key (and, unless the ACCOUNT variants are set, per account): requests per minute. */
  RATE_LIMIT_REQUESTS_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /** Per API key (and, unless the ACCOUNT variants are set, per account): LLM tokens per minute. */
  RATE_LIMIT_TOKENS_PER_MINUTE: z.coerce.number().int().min(1).default(2_000_000),
  RATE_LIMIT_ACCOUNT_REQUESTS_PER_MINUTE: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number().int().min(1).optional(),
  ),
  RATE_LIMIT_ACCOUNT_TOKENS_PER_MINUTE: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number().int().min(1).optional(),
  ),
  /** Per client IP: siweChallenge/signIn calls per minute, and key-management calls per minute. */
  RATE_LIMIT_IP_PER_MINUTE: z.coerce.number().int().min(1).default(30),
  /** Reverse proxies in front of the API whose X-Forwarded-For entry is trusted for the client IP. */
  TRUSTED_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
  /** GraphQL introspection: unset means on in development and test, off in production. */
  GRAPHQL_INTROSPECTION: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
  ),
  /** Origins (scheme://host[:port], comma-separated) whose browser code may call the API; none by default. */
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((value, ctx) => {
      const out: string[] = [];
      for (const part of value.split(',').map((item) => item.trim())) {
        if (!part) continue;
        let origin: string | null = null;
        try {
          origin = new URL(part).origin;
        } catch {}
        if (!origin || origin === 'null' || origin !== part.replace(/\/$/, '')) {
          ctx.addIssue({
            code: 'custom',
            message: `"${part}" is not an origin like https://app.example.com`,
          });
          continue;
        }
        out.push(origin);
      }
      return out;
    }),
  /** When set, `/metrics` requires `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.string().min(16, 'must be at least 16 characters').optional(),
  ),
  /** How long (ms) `/metrics` reuses what it read from the database, the indexer and the RPC. */
  METRICS_CACHE_MS: z.coerce.number().int().min(0).max(300_000).default(5_000),
  /** `/readyz` answers 503 when the indexer is more than this many blocks behind the chain's head. */
  READY_MAX_INDEXER_LAG_BLOCKS: z.coerce.number().int().min(0).default(30),
  /** Run the audit (chain RPC vs records) every this many ms and keep its metrics current; 0: never. */
  AUDIT_INTERVAL_MS: z.coerce
    .number()
    .int()
    .min(0)
    .refine((value) => value === 0 || value >= 100, 'must be 0 (off) or at least 100')
    .default(0),
  /** The block the scheduled audit starts from (the treasury's first payment, or the indexer's START_BLOCK). */
  AUDIT_FROM_BLOCK: z.coerce.bigint().min(0n).default(0n),
  /** Test only (refused unless NODE_ENV=test): the process kills itself (SIGKILL) at this step of a metered call. */
  CHAINMETER_CRASH_AT: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.enum(CRASH_POINTS).optional(),
  ),
});

export interface ApiConfig {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  publicOrigin: string;
  databaseUrl: string | undefined;
  dataDir: string;
  redisUrl: string | undefined;
  rpcUrl: string;
  chainId: number;
  usdcAddress: Address;
  treasuryAddress: Address;
  indexerUrl: string;
  confirmations: number;
  creditingPollMs: number;
  sessionTtlMs: number;
  llm: {
    baseUrl: string | undefined;
    apiKey: string | undefined;
    pricesPath: string | undefined;
    timeoutMs: number;
    holdTtlMs: number;
    settlementRetryMs: number;
  };
  priceMarkup: Ratio;
  auditorAddresses: Address[];
  logLevel: string;
  rateLimits: RateLimitConfig;
  trustedProxyHops: number;
  /** GraphQL hardening choices that differ by deployment (see docs/security.md). */
  security: {
    introspection: boolean;
    corsOrigins: string[];
  };
  observability: {
    metricsToken: string | undefined;
    metricsCacheMs: number;
    readyMaxIndexerLagBlocks: number;
  };
  /** The scheduled audit: every `intervalMs` (0: off), from `fromBlock`. */
  audit: { intervalMs: number; fromBlock: bigint };
  /** Test only: the step of a metered call at which the process kills itself. */
  crashAt: CrashPoint | undefined;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.problems = problems;
  }
}

/** Parses and checks the environment; throws a `ConfigError` that lists every problem. */
export function loadConfig(source: Record<string, string | undefined> = process.env): ApiConfig {
  // An empty variable (VAR= in a .env file) means "use the default", as if it were unset.
  const parsed = schema.safeParse(
    Object.fromEntries(Object.entries(source).filter(([, value]) => value !== '')),
  );
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`),
    );
  }
  const env = parsed.data;
  const problems: string[] = [];
  const usdcAddress =
    env.USDC_ADDRESS ?? (env.CHAIN_ID === BASE_CHAIN_ID ? getAddress(BASE_USDC_ADDRESS) : undefined);
  // `npm start` passes the devnet deployment's addresses; a standalone API must be told them.
  if (!usdcAddress) problems.push(`USDC_ADDRESS: required on chain ${env.CHAIN_ID}`);
  if (!env.TREASURY_ADDRESS) problems.push('TREASURY_ADDRESS: required');
  if (env.CHAINMETER_CRASH_AT && env.NODE_ENV !== 'test') {
    problems.push('CHAINMETER_CRASH_AT: a test hook that kills the process, refused unless NODE_ENV=test');
  }
  if (env.METERING_HOLD_TTL_MS <= env.LLM_TIMEOUT_MS) {
    problems.push('METERING_HOLD_TTL_MS: must be longer than LLM_TIMEOUT_MS (a hold must outlive its call)');
  }
  if (!usdcAddress || !env.TREASURY_ADDRESS || problems.length > 0) throw new ConfigError(problems);
  const publicOrigin = (env.PUBLIC_ORIGIN ?? `http://localhost:${env.PORT}`).replace(/\/$/, '');
  return {
    env: env.NODE_ENV,
    port: env.PORT,
    host: env.HOST,
    publicOrigin,
    databaseUrl: env.DATABASE_URL,
    dataDir: env.DATA_DIR,
    redisUrl: env.REDIS_URL,
    rpcUrl: env.RPC_URL,
    chainId: env.CHAIN_ID,
    usdcAddress,
    treasuryAddress: env.TREASURY_ADDRESS,
    indexerUrl: (env.INDEXER_URL ?? `http://127.0.0.1:${env.INDEXER_PORT}`).replace(/\/$/, ''),
    confirmations: env.CONFIRMATIONS ?? defaultConfirmations(env.CHAIN_ID),
    creditingPollMs: env.CREDITING_POLL_MS,
    sessionTtlMs: env.SESSION_TTL_HOURS * 3_600_000,
    llm: {
      baseUrl: env.LLM_BASE_URL,
      apiKey: env.LLM_API_KEY,
      pricesPath: env.LLM_PRICES,
      timeoutMs: env.LLM_TIMEOUT_MS,
      holdTtlMs: env.METERING_HOLD_TTL_MS,
      settlementRetryMs: env.METERING_RETRY_MS,
    },
    priceMarkup: parseRatio(env.PRICE_MARKUP),
    auditorAddresses: env.AUDITOR_ADDRESSES,
    logLevel: env.LOG_LEVEL,
    rateLimits: {
      requestsPerMinute: env.RATE_LIMIT_REQUESTS_PER_MINUTE,
      tokensPerMinute: env.RATE_LIMIT_TOKENS_PER_MINUTE,
      accountRequestsPerMinute:
        env.RATE_LIMIT_ACCOUNT_REQUESTS_PER_MINUTE ?? env.RATE_LIMIT_REQUESTS_PER_MINUTE,
      accountTokensPerMinute: env.RATE_LIMIT_ACCOUNT_TOKENS_PER_MINUTE ?? env.RATE_LIMIT_TOKENS_PER_MINUTE,
      ipActionsPerMinute: env.RATE_LIMIT_IP_PER_MINUTE,
      keyPrefix: 'cm:rl',
    },
    trustedProxyHops: env.TRUSTED_PROXY_HOPS,
    security: {
      introspection: env.GRAPHQL_INTROSPECTION
        ? env.GRAPHQL_INTROSPECTION === 'true'
        : env.NODE_ENV !== 'production',
      corsOrigins: env.CORS_ORIGINS,
    },
    observability: {
      metricsToken: env.METRICS_TOKEN,
      metricsCacheMs: env.METRICS_CACHE_MS,
      readyMaxIndexerLagBlocks: env.READY_MAX_INDEXER_LAG_BLOCKS,
    },
    audit: { intervalMs: env.AUDIT_INTERVAL_MS, fromBlock: env.AUDIT_FROM_BLOCK },
    crashAt: env.CHAINMETER_CRASH_AT,
  };
}
