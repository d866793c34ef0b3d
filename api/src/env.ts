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
import { type Address, getAddress, type Hex, isAddress, isHex, toHex } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { z } from 'zod';
import { parseCidr } from './modules/ratelimit/client-ip.ts';
import type { RateLimitConfig } from './modules/ratelimit/ratelimit.service.ts';

const address = z
  .string()
  .trim()
  .refine((value) => isAddress(value, { strict: false }), 'must be an address: 0x followed by 40 hex digits')
  .transform((value) => getAddress(value));

/** Steps of a metered call where a test may crash the API process (`CHAINMETER_CRASH_AT`). */
export const CRASH_POINTS = ['after-hold', 'mid-stream', 'after-answer', 'after-settlement'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/**
 * The devnet relayer: anvil's account 10 of its public mnemonic, funded with ETH by every devnet
 * (testkit `devAccounts.relayer`). Public knowledge, so it is used on the devnet's chain id only.
 */
const DEVNET_MNEMONIC = 'test test test test test test test test test test test junk';
const DEVNET_RELAYER_ACCOUNT_INDEX = 10;

function devnetRelayerKey(): Hex {
  const key = mnemonicToAccount(DEVNET_MNEMONIC, { addressIndex: DEVNET_RELAYER_ACCOUNT_INDEX }).getHdKey()
    .privateKey as Uint8Array;
  return toHex(key);
}

const optionalAddress = z.preprocess((value) => (value === '' ? undefined : value), address.optional());
const optionalString = z.preprocess((value) => (value === '' ? undefined : value), z.string().optional());
const optionalUrl = z.preprocess((value) => (value === '' ? undefined : value), z.url().optional());

/** A comma-separated list, each item checked (`parse` returns null for a bad one); every bad item is reported. */
function commaSeparated<T>(parse: (part: string) => T | null, problem: (part: string) => string) {
  return z
    .string()
    .default('')
    .transform((value, ctx) => {
      const out: T[] = [];
      for (const part of value.split(',').map((item) => item.trim())) {
        if (!part) continue;
        const parsed = parse(part);
        if (parsed === null) ctx.addIssue({ code: 'custom', message: problem(part) });
        else out.push(parsed);
      }
      return out;
    });
}

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
  /** How often the upstream's prices (LiteLLM `GET /model/info`) are read again. */
  LLM_PRICES_REFRESH_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(24 * 3_600_000)
    .default(5 * 60_000),
  /**
   * Upstream answer timeout (and, streaming, the longest silence between chunks; an x402 `upto` stream is
   * ended once it has lasted this long, so that its payment settles before its deadline).
   */
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
  /**
   * How often a running stream's progress is written: a stream whose process dies is billed for what it
   * had generated by then (what came after is not billed).
   */
  METERING_STREAM_PROGRESS_MS: z.coerce.number().int().min(10).max(60_000).default(1_000),
  PRICE_MARKUP: z
    .string()
    .default('2.0')
    .refine((value) => /^\d+(\.\d+)?$/.test(value) && Number(value) >= 1, 'must be a decimal number >= 1'),
  AUDITOR_ADDRESSES: commaSeparated(
    (part) => (isAddress(part, { strict: false }) ? getAddress(part) : null),
    (part) => `"${part}" is not an address`,
  ),
  /** Wallets with the operator role: their sessions may resolve NEEDS_REVIEW calls and adjust balances. */
  OPERATOR_ADDRESSES: commaSeparated(
    (part) => (isAddress(part, { strict: false }) ? getAddress(part) : null),
    (part) => `"${part}" is not an address`,
  ),
  /** Record the solvency figures (treasury on chain, what accounts hold) every this many ms; 0: never. */
  SOLVENCY_SNAPSHOT_MS: z.coerce
    .number()
    .int()
    .min(0)
    .refine((value) => value === 0 || value >= 1_000, 'must be 0 (off) or at least 1000')
    .default(3_600_000),
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
  /**
   * CIDRs (comma-separated, IPv4 and IPv6) of the reverse proxies in front of the API: X-Forwarded-For is
   * believed only from a socket peer inside one of them. None by default.
   */
  TRUSTED_PROXIES: commaSeparated(
    (part) => (parseCidr(part) ? part : null),
    (part) => `"${part}" is not a CIDR such as 10.0.0.0/8 or fd00::/8`,
  ),
  /** Replaced by TRUSTED_PROXIES: read only to refuse a start that still relies on it. */
  TRUSTED_PROXY_HOPS: optionalString,
  /** GraphQL introspection: unset means on in development and test, off in production. */
  GRAPHQL_INTROSPECTION: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
  ),
  /**
   * The web client's WalletConnect project id (read by its build). The API only needs to know whether it is
   * set: the web client's Content-Security-Policy then lets WalletConnect's services in.
   */
  WALLETCONNECT_PROJECT_ID: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.string().optional(),
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
  /**
   * Webhooks may go to http and to private, loopback and link-local addresses: unset means true on the
   * devnet (CHAIN_ID 31337) and false everywhere else.
   */
  WEBHOOK_ALLOW_PRIVATE_URLS: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
  ),
  /** The deadline of one webhook attempt (connect, send, first bytes of the answer). */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** Webhook attempts in flight at once per API process. */
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(16),
  /**
   * Webhook attempts in flight at once to one account's endpoints, all API processes together: a receiver
   * that hangs delays its own account's webhooks, not everyone's.
   */
  WEBHOOK_ACCOUNT_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(8),
  /** How often each API process looks for due webhook deliveries. */
  WEBHOOK_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(500),
  /** The delay after a failed webhook attempt, doubled after each further one up to WEBHOOK_RETRY_MAX_DELAY_MS. */
  WEBHOOK_RETRY_BASE_DELAY_MS: z.coerce.number().int().min(1).max(3_600_000).default(10_000),
  WEBHOOK_RETRY_MAX_DELAY_MS: z.coerce.number().int().min(1).max(86_400_000).default(3_600_000),
  /** Finished webhook deliveries (and their attempt logs) are deleted this many days after their event. */
  WEBHOOK_RETENTION_DAYS: z.coerce.number().int().min(1).max(3_650).default(30),
  /** A delivery is retried for this long after its event (or its redelivery), then FAILED. */
  WEBHOOK_RETRY_WINDOW_MS: z.coerce
    .number()
    .int()
    .min(1)
    .max(7 * 86_400_000)
    .default(86_400_000),
  /**
   * The wallet that submits x402 settlements and gasless top-ups and pays their gas (0x + 64 hex).
   * On the devnet (CHAIN_ID 31337) the devnet's funded relayer account by default; elsewhere unset: off.
   */
  RELAYER_PRIVATE_KEY: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z
      .string()
      .trim()
      .refine((value) => isHex(value) && value.length === 66, 'must be 0x followed by 64 hex digits')
      .optional(),
  ),
  /** How often the relayer polls for its receipts (ms): 250 on the devnet, 1,000 elsewhere by default. */
  RELAYER_POLLING_MS: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number().int().min(10).max(60_000).optional(),
  ),
  /** How often the relayer's gas balance (`chainmeter_relayer_gas_balance_wei`) is read from the chain. */
  RELAYER_GAS_REFRESH_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  /** Pay per request on `/v1` (x402): `on` or `off`; on by default when a relayer is configured. */
  X402: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.enum(['on', 'off'], { message: 'must be on or off' }).optional(),
  ),
  /**
   * How often (ms) each replica looks for paid calls whose settlement a deep reorg removed, to submit the
   * payer's signed authorization again (x402 `paid-call-resubmission.ts`).
   */
  X402_RESUBMIT_MS: z.coerce.number().int().min(50).max(3_600_000).default(5_000),
  /**
   * The least time (ms) between two attempts to settle an UNPAID `upto` call again while its authorization is
   * valid (x402 `paid-call-resubmission.ts`); the wait grows with the time the call has been unpaid.
   */
  X402_UNPAID_RETRY_MS: z.coerce.number().int().min(50).max(3_600_000).default(5_000),
  /**
   * How long a payer's signed payment stays valid for its settlement, in seconds (the `exact` offer's
   * `maxTimeoutSeconds`; `upto`, settled after serving, is offered this plus `LLM_TIMEOUT_MS` and ended at it),
   * and so the longest a paid call waits (twice: x402's server looks at a pending settlement once more) for its
   * settlement to be mined before it gives up and serves nothing; an `exact` authorization valid for longer is
   * refused, an `upto` deadline shorter than its offer too.
   */
  X402_MAX_TIMEOUT_SECONDS: z.coerce.number().int().min(10).max(3_600).default(60),
  /** The smallest gasless top-up (`relayPayment`), in token base units (micro-USD): 1 USDC by default. */
  RELAY_MIN_AMOUNT: z.coerce.bigint().min(1n).default(1_000_000n),
  /** Gasless top-ups (`relayPayment`) per paying wallet per hour. */
  RELAY_RATE_LIMIT_WALLET_PER_HOUR: z.coerce.number().int().min(1).default(10),
  /** Gasless top-ups (`relayPayment`) per client IP per hour. */
  RELAY_RATE_LIMIT_IP_PER_HOUR: z.coerce.number().int().min(1).default(30),
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
  /** The web client offers WalletConnect (`WALLETCONNECT_PROJECT_ID` set): its CSP allows WalletConnect's services. */
  walletConnect: boolean;
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
    pricesRefreshMs: number;
    timeoutMs: number;
    holdTtlMs: number;
    settlementRetryMs: number;
    streamProgressMs: number;
  };
  priceMarkup: Ratio;
  auditorAddresses: Address[];
  /** Wallets whose sessions have the operator role (`OPERATOR_ADDRESSES`). */
  operatorAddresses: Address[];
  /** How often the solvency figures are recorded for their history (0: never). */
  solvencySnapshotMs: number;
  logLevel: string;
  rateLimits: RateLimitConfig;
  /** CIDRs of the reverse proxies whose X-Forwarded-For is believed (`TRUSTED_PROXIES`). */
  trustedProxies: string[];
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
  /** Webhook delivery (see modules/webhooks). */
  webhooks: {
    allowPrivateUrls: boolean;
    timeoutMs: number;
    concurrency: number;
    accountConcurrency: number;
    pollIntervalMs: number;
    retryBaseDelayMs: number;
    retryMaxDelayMs: number;
    retryWindowMs: number;
    retentionMs: number;
  };
  /** The wallet that submits settlements and gasless top-ups; null: x402 and relaying are off. */
  relayer: { privateKey: Hex; pollingIntervalMs: number; gasRefreshMs: number } | null;
  /** Pay per request on `/v1` (`X402`); never on without a relayer. */
  x402: boolean;
  /** How often paid calls whose settlement a deep reorg removed are looked for (`X402_RESUBMIT_MS`). */
  x402ResubmitMs: number;
  /** The least time between two attempts to settle an UNPAID `upto` call again (`X402_UNPAID_RETRY_MS`). */
  x402UnpaidRetryMs: number;
  /**
   * How long a signed payment stays valid for its settlement, and its settlement is awaited
   * (`X402_MAX_TIMEOUT_SECONDS`); an `upto` offer adds the longest call (`llm.timeoutMs`).
   */
  x402MaxTimeoutSeconds: number;
  /** Gasless top-ups (`relayPayment`); their rates are in `rateLimits`. */
  relay: { minAmount: bigint };
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
  if (env.TRUSTED_PROXY_HOPS !== undefined && env.TRUSTED_PROXY_HOPS !== '0') {
    // A count of hops believed X-Forwarded-For from any peer; silently ignoring it would key every
    // client behind the proxy on the proxy's address.
    problems.push(
      'TRUSTED_PROXY_HOPS: removed; list the proxies in front of the API as TRUSTED_PROXIES (CIDRs, e.g. 10.0.0.0/8)',
    );
  }
  if (env.METERING_HOLD_TTL_MS <= env.LLM_TIMEOUT_MS) {
    problems.push('METERING_HOLD_TTL_MS: must be longer than LLM_TIMEOUT_MS (a hold must outlive its call)');
  }
  const relayerKey =
    (env.RELAYER_PRIVATE_KEY as Hex | undefined) ??
    (env.CHAIN_ID === DEVNET_CHAIN_ID ? devnetRelayerKey() : undefined);
  if (env.X402 === 'on' && !relayerKey) {
    problems.push('X402: on needs a relayer to settle payments: set RELAYER_PRIVATE_KEY');
  }
  if (!usdcAddress || !env.TREASURY_ADDRESS || problems.length > 0) throw new ConfigError(problems);
  const publicOrigin = (env.PUBLIC_ORIGIN ?? `http://localhost:${env.PORT}`).replace(/\/$/, '');
  return {
    env: env.NODE_ENV,
    port: env.PORT,
    host: env.HOST,
    publicOrigin,
    walletConnect: env.WALLETCONNECT_PROJECT_ID !== undefined,
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
      pricesRefreshMs: env.LLM_PRICES_REFRESH_MS,
      timeoutMs: env.LLM_TIMEOUT_MS,
      holdTtlMs: env.METERING_HOLD_TTL_MS,
      settlementRetryMs: env.METERING_RETRY_MS,
      streamProgressMs: env.METERING_STREAM_PROGRESS_MS,
    },
    priceMarkup: parseRatio(env.PRICE_MARKUP),
    auditorAddresses: env.AUDITOR_ADDRESSES,
    operatorAddresses: env.OPERATOR_ADDRESSES,
    solvencySnapshotMs: env.SOLVENCY_SNAPSHOT_MS,
    logLevel: env.LOG_LEVEL,
    rateLimits: {
      requestsPerMinute: env.RATE_LIMIT_REQUESTS_PER_MINUTE,
      tokensPerMinute: env.RATE_LIMIT_TOKENS_PER_MINUTE,
      accountRequestsPerMinute:
        env.RATE_LIMIT_ACCOUNT_REQUESTS_PER_MINUTE ?? env.RATE_LIMIT_REQUESTS_PER_MINUTE,
      accountTokensPerMinute: env.RATE_LIMIT_ACCOUNT_TOKENS_PER_MINUTE ?? env.RATE_LIMIT_TOKENS_PER_MINUTE,
      ipActionsPerMinute: env.RATE_LIMIT_IP_PER_MINUTE,
      relayWalletPerHour: env.RELAY_RATE_LIMIT_WALLET_PER_HOUR,
      relayIpPerHour: env.RELAY_RATE_LIMIT_IP_PER_HOUR,
      keyPrefix: 'cm:rl',
    },
    trustedProxies: env.TRUSTED_PROXIES,
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
    webhooks: {
      allowPrivateUrls: env.WEBHOOK_ALLOW_PRIVATE_URLS
        ? env.WEBHOOK_ALLOW_PRIVATE_URLS === 'true'
        : env.CHAIN_ID === DEVNET_CHAIN_ID,
      timeoutMs: env.WEBHOOK_TIMEOUT_MS,
      concurrency: env.WEBHOOK_CONCURRENCY,
      accountConcurrency: env.WEBHOOK_ACCOUNT_CONCURRENCY,
      pollIntervalMs: env.WEBHOOK_POLL_MS,
      retryBaseDelayMs: env.WEBHOOK_RETRY_BASE_DELAY_MS,
      retryMaxDelayMs: env.WEBHOOK_RETRY_MAX_DELAY_MS,
      retryWindowMs: env.WEBHOOK_RETRY_WINDOW_MS,
      retentionMs: env.WEBHOOK_RETENTION_DAYS * 86_400_000,
    },
    relayer: relayerKey
      ? {
          privateKey: relayerKey,
          pollingIntervalMs: env.RELAYER_POLLING_MS ?? (env.CHAIN_ID === DEVNET_CHAIN_ID ? 250 : 1_000),
          gasRefreshMs: env.RELAYER_GAS_REFRESH_MS,
        }
      : null,
    x402: relayerKey !== undefined && env.X402 !== 'off',
    x402ResubmitMs: env.X402_RESUBMIT_MS,
    x402UnpaidRetryMs: env.X402_UNPAID_RETRY_MS,
    x402MaxTimeoutSeconds: env.X402_MAX_TIMEOUT_SECONDS,
    relay: { minAmount: env.RELAY_MIN_AMOUNT },
    crashAt: env.CHAINMETER_CRASH_AT,
  };
}
