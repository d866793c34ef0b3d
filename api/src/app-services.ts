/**
 * The composition root: the app's long-lived services built from the config (database, chain client,
 * pub/sub, rate limits, the LLM upstream and its prices, metering, metrics), and the background work
 * that runs beside them. The HTTP side (server.ts, http/) only receives what is built here.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { createPublicClient, http } from 'viem';
import type { AppServices } from './context.ts';
import { createOrm, migrateUp } from './db/orm.ts';
import { sqlFor } from './db/sql.ts';
import { type DevModelServer, startDevModelServer } from './dev-model/dev-model.server.ts';
import { type ApiConfig, ConfigError, type CrashPoint } from './env.ts';
import { RecentApiKeys } from './modules/apikeys/apikeys.service.ts';
import { startAuditScheduler } from './modules/audit/audit.scheduler.ts';
import { startCreditingWorker } from './modules/deposits/crediting.worker.ts';
import { createIndexerClient } from './modules/deposits/indexer.client.ts';
import { createLlmUpstream, type LlmUpstream } from './modules/metering/llm.upstream.ts';
import { createMeteringService, type MeteringFaults } from './modules/metering/metering.service.ts';
import { loadPriceBook, type PriceBook } from './modules/metering/price-book.ts';
import { loadPriceTable, type PriceTable, PriceTableError } from './modules/metering/pricing.ts';
import { createRateLimits } from './modules/ratelimit/ratelimit.service.ts';
import { createRelayer, type Relayer, startGasBalanceRefresh } from './modules/relayer/relayer.ts';
import { createSolvencyService } from './modules/solvency/solvency.service.ts';
import { type AutoTopUpWorker, startAutoTopUpWorker } from './modules/topup/topup.service.ts';
import { createWebhookMetrics } from './modules/webhooks/webhook.metrics.ts';
import { startWebhookDeliveryWorker } from './modules/webhooks/webhook-delivery.worker.ts';
import { startPaidCallResubmission } from './modules/x402/paid-call-resubmission.ts';
import { createX402Service } from './modules/x402/x402.service.ts';
import { createLogger } from './observability/logger.ts';
import { instrumentMetering } from './observability/metering-metrics.ts';
import { createAppMetrics, METRIC_PREFIX, registerPlatformGauges } from './observability/metrics.ts';
import { createPlatformProbe, type PlatformProbe } from './observability/platform-probe.ts';
import { createAppPubSub, publishCreditingEvents } from './pubsub.ts';

export interface AppServicesOptions {
  logger?: Logger;
  /** Run the crediting worker in this process (default true). */
  crediting?: boolean;
  /** Run the webhook delivery worker in this process (default true). */
  webhookDelivery?: boolean;
  /** Test hooks for the metering path (inject settlement failures). */
  meteringFaults?: MeteringFaults;
  /** The clock of metered calls' holds (tests cross a key's budget period with it); default the system's. */
  clock?: () => Date;
  /** Period of the auto top-up worker's rounds (default 1 s; it also runs after each charge). */
  autoTopUpIntervalMs?: number;
}

interface ComposedApp {
  services: AppServices;
  /** The platform's state for `/readyz` and the gauges of `/metrics`. */
  probe: PlatformProbe;
  /**
   * Starts the crediting worker and the webhook delivery worker (unless disabled), the settlement loop, the
   * audit scheduler, the relayer's gas reads and the solvency snapshots.
   */
  startBackgroundWork(): BackgroundWork;
  /** Closes what the services hold: call after the HTTP server and the background work have stopped. */
  close(): Promise<void>;
}

interface BackgroundWork {
  /**
   * Stops the crediting worker, the webhook delivery worker (after its attempts in flight), the audit
   * scheduler, the relayer's gas reads, the x402 resubmissions and the solvency snapshots (the settlement loop stops in `close`).
   */
  stop(): Promise<void>;
}

export async function composeApp(config: ApiConfig, options: AppServicesOptions = {}): Promise<ComposedApp> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  // Without LLM_BASE_URL the built-in dev model serves on loopback, so credits can be spent offline.
  const devModel: DevModelServer | null = config.llm.baseUrl ? null : await startDevModelServer();
  const upstream = createLlmUpstream({
    baseUrl: config.llm.baseUrl ?? (devModel as DevModelServer).baseUrl,
    apiKey: config.llm.apiKey,
    timeoutMs: config.llm.timeoutMs,
  });
  // First, before anything else is opened: without prices nothing can be billed, so the API refuses to start.
  const prices = await loadPrices(config, upstream, logger).catch(async (error: unknown) => {
    await devModel?.stop();
    throw error;
  });
  const metrics = createAppMetrics();
  const orm = await createOrm({
    databaseUrl: config.databaseUrl,
    pgliteDataDir: config.databaseUrl ? undefined : path.join(config.dataDir, 'api'),
  });
  await migrateUp(orm);
  // cacheTime 0: viem would otherwise answer getBlockNumber from a cache up to 4 s old, and the audit, the
  // solvency report and the probes must each read the head the chain has now.
  const chain = createPublicClient({ transport: http(config.rpcUrl, { timeout: 10_000 }), cacheTime: 0 });
  const pubsubHandle = createAppPubSub(config.redisUrl, logger, {
    listening: (channel) => {
      metrics.liveSubscriptions.inc({ channel });
      metrics.subscriptionsStarted.inc({ channel });
    },
    stopped: (channel) => metrics.liveSubscriptions.dec({ channel }),
  });
  const { pubsub } = pubsubHandle;
  const rateLimits = await createRateLimits(config.rateLimits, { redisUrl: config.redisUrl, logger });
  /** Started with the background work, when a relayer is configured. */
  let autoTopUp: AutoTopUpWorker | null = null;
  const metering = createMeteringService({
    orm,
    upstream,
    prices,
    markup: config.priceMarkup,
    logger,
    holdTtlMs: config.llm.holdTtlMs,
    settlementRetryMs: config.llm.settlementRetryMs,
    streamProgressMs: config.llm.streamProgressMs,
    rateLimits,
    faults: { ...crashFaults(config.crashAt), ...options.meteringFaults },
    clock: options.clock,
    // Every replica's subscribers see the balance move when a call is charged, as for a deposit.
    onCharged: ({ accountId, ledgerEntryId }) => {
      pubsub.publish('balanceUpdated', accountId, { ledgerEntryId });
      // A charge may have taken the balance below an auto top-up threshold.
      autoTopUp?.nudge();
    },
    onUnpaid: (scheme) => metrics.unpaidCalls.inc({ scheme }),
  });
  const relayer: Relayer | null = config.relayer
    ? createRelayer({
        rpcUrl: config.rpcUrl,
        privateKey: config.relayer.privateKey,
        chainId: config.chainId,
        logger,
        pollingIntervalMs: config.relayer.pollingIntervalMs,
      })
    : null;
  let indexedHead: bigint | null = null;
  const services: AppServices = {
    config,
    orm,
    pubsub,
    chain,
    logger,
    indexedHead: () => indexedHead,
    rateLimits,
    recentApiKeys: new RecentApiKeys(),
    metering: instrumentMetering(metering, metrics),
    relayer,
    solvency: createSolvencyService({
      orm,
      chain,
      tokenAddress: config.usdcAddress,
      treasuryAddress: config.treasuryAddress,
      snapshotMs: config.solvencySnapshotMs,
      logger,
    }),
    metrics,
    x402:
      relayer && config.x402
        ? createX402Service({
            relayer,
            chain,
            chainId: config.chainId,
            usdcAddress: config.usdcAddress,
            treasuryAddress: config.treasuryAddress,
            logger,
            registry: metrics.registry,
            maxTimeoutSeconds: config.x402MaxTimeoutSeconds,
            longestCallSeconds: Math.ceil(config.llm.timeoutMs / 1_000),
          })
        : null,
  };
  const probe = createPlatformProbe({
    orm,
    chain,
    indexer: createIndexerClient(config.indexerUrl, { timeoutMs: 2_500 }),
    chainId: config.chainId,
    confirmations: config.confirmations,
    cacheMs: config.observability.metricsCacheMs,
    queuedSettlements: () => metering.queuedSettlements(),
  });
  registerPlatformGauges(metrics, probe);
  const webhookMetrics = createWebhookMetrics(metrics.registry, METRIC_PREFIX);

  const startBackgroundWork = (): BackgroundWork => {
    autoTopUp = relayer
      ? startAutoTopUpWorker({
          sql: sqlFor(orm),
          config,
          chain,
          relayer,
          logger,
          intervalMs: options.autoTopUpIntervalMs ?? 1_000,
        })
      : null;
    // Sends what crediting (and any other writer of the outbox) enqueued; every replica runs one.
    const webhooks =
      options.webhookDelivery === false
        ? null
        : startWebhookDeliveryWorker({
            ...config.webhooks,
            sql: sqlFor(orm),
            logger,
            metrics: webhookMetrics,
          });
    const worker =
      options.crediting === false
        ? null
        : startCreditingWorker({
            orm,
            indexer: createIndexerClient(config.indexerUrl),
            chainId: config.chainId,
            confirmations: config.confirmations,
            pollIntervalMs: config.creditingPollMs,
            logger,
            onHead: (head: bigint) => {
              indexedHead = head;
            },
            onEvents: (events) => {
              // A deposit changed: its webhooks (if the account has endpoints) were enqueued in the same
              // transaction; this replica sends them now rather than at its next poll.
              if (events.length > 0) webhooks?.wake();
              return publishCreditingEvents(pubsub, events);
            },
            onReversedCredits: (credits) => metrics.creditedDepositsReorged.inc(credits.length),
          });
    // Settles what a previous process left behind, then retries failed settlements and expired holds.
    metering.start();
    const audits =
      config.audit.intervalMs > 0
        ? startAuditScheduler({
            orm,
            chain,
            config,
            metrics,
            logger,
            intervalMs: config.audit.intervalMs,
            fromBlock: config.audit.fromBlock,
          })
        : null;
    const gasRefresh =
      relayer && config.relayer
        ? startGasBalanceRefresh({
            relayer,
            intervalMs: config.relayer.gasRefreshMs,
            logger,
            onBalance: (balance) => {
              if (balance === null) metrics.relayerGasBalance.reset();
              else metrics.relayerGasBalance.set(Number(balance));
            },
          })
        : null;
    const solvencySnapshots = services.solvency.startSnapshots();
    // Submits again the payments whose settlement a reorg deeper than CONFIRMATIONS removed, and settles again
    // the upto calls whose settlement failed after serving (UNPAID) while their authorization is valid.
    const resubmission = services.x402
      ? startPaidCallResubmission({
          sql: sqlFor(orm),
          chain,
          x402: services.x402,
          logger,
          intervalMs: config.x402ResubmitMs,
          unpaidRetryMs: config.x402UnpaidRetryMs,
          onUnpaid: (scheme) => metrics.unpaidCalls.inc({ scheme }),
        })
      : null;
    return {
      stop: async () => {
        await resubmission?.stop();
        await autoTopUp?.stop();
        autoTopUp = null;
        gasRefresh?.stop();
        await solvencySnapshots.stop();
        await audits?.stop();
        await worker?.stop();
        await webhooks?.stop();
      },
    };
  };

  return {
    services,
    probe,
    startBackgroundWork,
    close: async () => {
      await metering.stop();
      await devModel?.stop();
      await pubsubHandle.close();
      await rateLimits.close();
      await orm.close(true);
    },
  };
}

/** The upstream's prices (LiteLLM `/model/info`) under the `LLM_PRICES` overrides; refuses when there are none. */
async function loadPrices(config: ApiConfig, upstream: LlmUpstream, logger: Logger): Promise<PriceBook> {
  let overrides: PriceTable = new Map();
  if (config.llm.pricesPath) {
    try {
      overrides = await loadPriceTable(config.llm.pricesPath);
    } catch (error) {
      if (error instanceof PriceTableError) throw new ConfigError([`LLM_PRICES: ${error.message}`]);
      throw error;
    }
  }
  return loadPriceBook({
    fetchModelInfo: () => upstream.modelInfo(),
    overrides,
    upstreamName: config.llm.baseUrl ? `the upstream ${config.llm.baseUrl}` : 'the built-in dev model',
    refreshMs: config.llm.pricesRefreshMs,
    logger,
  });
}

/** `CHAINMETER_CRASH_AT` (tests only, see env.ts): SIGKILL of this process at that step of a metered call. */
function crashFaults(crashAt: CrashPoint | undefined): MeteringFaults {
  if (!crashAt) return {};
  const crash = () => process.kill(process.pid, 'SIGKILL');
  if (crashAt === 'after-hold') return { afterHold: crash };
  if (crashAt === 'mid-stream') return { afterProgress: crash };
  if (crashAt === 'after-answer') return { afterAnswer: crash };
  return { afterSettlement: crash };
}
