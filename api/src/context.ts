/**
 * What every GraphQL operation gets: a fresh EntityManager fork (never shared across requests), the
 * authenticated viewer (or null) and its account, and the app's long-lived services.
 */

import type { Logger } from 'pino';
import type { PublicClient } from 'viem';
import type { Em, Orm } from './db/orm.ts';
import type { ApiConfig } from './env.ts';
import { unauthenticated } from './errors.ts';
import type { AccountRecord, AccountView } from './modules/accounts/accounts.store.ts';
import type { RecentApiKeys } from './modules/apikeys/apikeys.service.ts';
import type { MeteringService } from './modules/metering/metering.service.ts';
import type { RateLimits } from './modules/ratelimit/ratelimit.service.ts';
import type { Relayer } from './modules/relayer/relayer.ts';
import type { SolvencyService } from './modules/solvency/solvency.service.ts';
import type { X402Service } from './modules/x402/x402.service.ts';
import type { AppMetrics } from './observability/metrics.ts';
import type { AppPubSub } from './pubsub.ts';
import type { Viewer } from './viewer.ts';

export interface AppServices {
  config: ApiConfig;
  orm: Orm;
  pubsub: AppPubSub;
  chain: PublicClient;
  logger: Logger;
  /** The newest block the indexer has processed, as last seen by the crediting worker. */
  indexedHead(): bigint | null;
  /** Metered LLM completions (hold, call, settle) and the settlement loop. */
  metering: MeteringService;
  /** Per key, account and IP limits; shared through Redis when `REDIS_URL` is set. */
  rateLimits: RateLimits;
  /** Who the API keys this replica authenticated lately are (metered calls check them in the hold). */
  recentApiKeys: RecentApiKeys;
  /** The wallet that submits settlements and gasless top-ups (`RELAYER_PRIVATE_KEY`); null: relaying is off. */
  relayer: Relayer | null;
  /** The treasury on chain against what the platform owes (public), and its recorded history. */
  solvency: SolvencyService;
  /** Prometheus metrics of this process (`/metrics`); modules count their events here. */
  metrics: AppMetrics;
  /** Pay per request on `/v1/chat/completions`; null when x402 is off (no relayer). */
  x402: X402Service | null;
}

/** Sets or clears the httpOnly session cookie on the HTTP response (absent over graphql-ws). */
export interface SessionCookie {
  set(token: string, expiresAt: Date): Promise<void>;
  clear(): Promise<void>;
}

export interface GraphQLContext {
  /** Forked on first use (a request that reads through stores alone forks none). */
  em: Em;
  viewer: Viewer | null;
  /** The viewer's account as the credential's lookup read it at the start of the request (`me`). */
  viewerAccount: AccountView | null;
  /**
   * What `me` read of `viewerAccount` in this operation: its row (served as the credential's lookup read it)
   * and each field that reads its records by a statement of its own. More than one: the response is checked
   * to be of one moment before it leaves (`accounts/one-moment.ts`).
   */
  viewerAccountReads: Set<string>;
  /**
   * The operation is to run again on `account` as read now: `viewerAccount` becomes it, and what the
   * request read and cached so far (its EntityManager, its loaders) is dropped.
   */
  readAgainFrom(account: AccountRecord): void;
  services: AppServices;
  sessionCookie: SessionCookie | null;
  /** The caller's IP (see `clientIpOf`), for per-IP rate limits; null when unknown. */
  clientIp: string | null;
  /** The HTTP request's id (`x-request-id`, see `observability/http.ts`); null over graphql-ws. */
  requestId: string | null;
  /** The logger of this request: lines carry its `requestId`. */
  log: Logger;
}

/** The authenticated viewer; resolvers behind the `authenticated` scope can rely on it. */
export function viewerOf(context: GraphQLContext): Viewer {
  if (!context.viewer) throw unauthenticated();
  return context.viewer;
}
