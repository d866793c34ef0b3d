/**
 * The API process: GraphQL over HTTP, SSE and graphql-ws on `/graphql`, health endpoints, the crediting
 * worker, and the built web client, all on one origin.
 */
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { serveStatic } from '@hono/node-server/serve-static';
import { useCookies } from '@whatwg-node/server-plugin-cookies';
import { type ExecutionArgs, type execute, GraphQLError, type subscribe } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type YogaInitialContext } from 'graphql-yoga';
import { Hono } from 'hono';
import type { Logger } from 'pino';
import { createPublicClient, http } from 'viem';
import { WebSocketServer } from 'ws';
import type { AppServices, GraphQLContext, SessionCookie } from './context.ts';
import { createOrm, migrateUp } from './db/orm.ts';
import { type DevModelServer, startDevModelServer } from './dev-model/dev-model.server.ts';
import { type ApiConfig, ConfigError, type CrashPoint } from './env.ts';
import { maskError } from './errors.ts';
import { authenticate, bearerToken, SESSION_COOKIE } from './http/authenticate.ts';
import { cookieNotAccepted, isPreflighted } from './http/csrf.ts';
import {
  corsPolicy,
  GRAPHQL_MAX_BODY_BYTES,
  graphqlArmor,
  graphqlBodyLimit,
  introspectionPolicy,
  nulCharacterErrors,
  variableCostErrors,
  variableInputLimits,
} from './http/graphql-security.ts';
import { openAiRoutes } from './http/openai.routes.ts';
import { securityHeaders } from './http/security-headers.ts';
import { RecentApiKeys } from './modules/apikeys/apikeys.service.ts';
import { startAuditScheduler } from './modules/audit/audit.scheduler.ts';
import type { CreditingEvent } from './modules/deposits/crediting.service.ts';
import { startCreditingWorker } from './modules/deposits/crediting.worker.ts';
import { createIndexerClient } from './modules/deposits/indexer.client.ts';
import { createLlmUpstream, type LlmUpstream } from './modules/metering/llm.upstream.ts';
import { createMeteringService, type MeteringFaults } from './modules/metering/metering.service.ts';
import { loadPriceBook, type PriceBook } from './modules/metering/price-book.ts';
import { loadPriceTable, type PriceTable, PriceTableError } from './modules/metering/pricing.ts';
import { clientIpOf, TrustedProxies } from './modules/ratelimit/client-ip.ts';
import { createRateLimits } from './modules/ratelimit/ratelimit.service.ts';
import { graphqlMetricsPlugins } from './observability/graphql.ts';
import { type RequestVariables, requestObservability } from './observability/http.ts';
import { createLogger } from './observability/logger.ts';
import { instrumentMetering } from './observability/metering-metrics.ts';
import { createAppMetrics, registerPlatformGauges } from './observability/metrics.ts';
import { metricsRoute } from './observability/metrics-route.ts';
import { createPlatformProbe } from './observability/platform-probe.ts';
import { checkReadiness } from './observability/readiness.ts';
import { createAppPubSub } from './pubsub.ts';
import { schema } from './schema/index.ts';

const webDist = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../web/dist');

interface EnvelopedRoot {
  execute(args: ExecutionArgs): ReturnType<typeof execute>;
  subscribe(args: ExecutionArgs): ReturnType<typeof subscribe>;
}

export interface RunningApi {
  url: string;
  port: number;
  services: AppServices;
  close(): Promise<void>;
}

export interface StartApiOptions {
  logger?: Logger;
  /** Run the crediting worker in this process (default true). */
  crediting?: boolean;
  /** Test hooks for the metering path (inject settlement failures). */
  meteringFaults?: MeteringFaults;
}

export async function startApi(config: ApiConfig, options: StartApiOptions = {}): Promise<RunningApi> {
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
  const chain = createPublicClient({ transport: http(config.rpcUrl, { timeout: 10_000 }) });
  const pubsubHandle = createAppPubSub(config.redisUrl, logger);
  const rateLimits = await createRateLimits(config.rateLimits, { redisUrl: config.redisUrl, logger });
  const trustedProxies = new TrustedProxies(config.trustedProxies);
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
    // Every replica's subscribers see the balance move when a call is charged, as for a deposit.
    onCharged: ({ accountId, ledgerEntryId }) =>
      pubsubHandle.pubsub.publish('balanceUpdated', accountId, { ledgerEntryId }),
  });
  let indexedHead: bigint | null = null;
  const services: AppServices = {
    config,
    orm,
    pubsub: pubsubHandle.pubsub,
    chain,
    logger,
    indexedHead: () => indexedHead,
    rateLimits,
    recentApiKeys: new RecentApiKeys(),
    metering: instrumentMetering(metering, metrics),
    metrics,
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

  const yoga = createYoga<
    {
      connectionParams?: Record<string, unknown>;
      clientIp?: string | null;
      requestId?: string;
      log?: Logger;
    },
    GraphQLContext
  >({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: config.env !== 'production',
    // Hardening (http/graphql-security.ts, docs/security.md): no CORS unless CORS_ORIGINS, no batching.
    cors: corsPolicy(config),
    batching: false,
    // Expected errors carry extensions.code and pass through; anything else becomes "Unexpected error."
    maskedErrors: { maskError },
    logging: {
      debug: (...args) => logger.debug(args),
      info: (...args) => logger.info(args),
      warn: (...args) => logger.warn(args),
      error: (...args) => logger.error(args),
    },
    plugins: [
      useCookies(),
      graphqlArmor(config),
      variableInputLimits(config, schema),
      ...introspectionPolicy(config),
      ...graphqlMetricsPlugins(metrics),
    ],
    context: (initial) => createContext(services, initial),
  });

  const app = new Hono<{ Variables: RequestVariables }>();
  app.use('*', requestObservability({ logger, metrics }));
  app.use('*', securityHeaders(config));
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const readiness = await checkReadiness({
      orm,
      probe,
      maxIndexerLagBlocks: config.observability.readyMaxIndexerLagBlocks,
    });
    return c.json(readiness, readiness.ready ? 200 : 503);
  });
  app.get('/metrics', metricsRoute({ config, metrics, logger }));
  app.route('/', openAiRoutes(services));
  app.use('/graphql', graphqlBodyLimit());
  app.on(['GET', 'POST', 'OPTIONS'], '/graphql', (c) =>
    yoga.fetch(c.req.raw, {
      clientIp: clientIpOf(getConnInfo(c).remote.address, c.req.header('x-forwarded-for'), trustedProxies),
      requestId: c.get('requestId'),
      log: c.get('log'),
    }),
  );
  if (existsSync(webDist)) {
    app.use('/*', serveStatic({ root: path.relative(process.cwd(), webDist) }));
    app.get('*', serveStatic({ path: path.relative(process.cwd(), path.join(webDist, 'index.html')) }));
  }

  const server = await new Promise<Server>((resolve, reject) => {
    const listening = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () =>
      resolve(listening as Server),
    ) as Server;
    listening.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new ConfigError([`PORT: ${config.host}:${config.port} is already in use by another process`])
          : error,
      ),
    );
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;

  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: GRAPHQL_MAX_BODY_BYTES });
  const wsServer = useServer(
    {
      // onSubscribe below hands each operation yoga's enveloped execute/subscribe through rootValue.
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const {
          schema: envelopedSchema,
          execute,
          subscribe,
          contextFactory,
          parse,
          validate,
        } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          connectionParams: ctx.connectionParams,
          clientIp: clientIpOf(
            ctx.extra.request.socket.remoteAddress,
            headerValue(ctx.extra.request.headers['x-forwarded-for']),
            trustedProxies,
          ),
        });
        let document: ReturnType<typeof parse>;
        try {
          document = parse(payload.query);
        } catch (error) {
          // A syntax error or the token limit: answer it as an error, not by dropping the socket.
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const errors = validate(envelopedSchema, document);
        if (errors.length > 0) return errors;
        const inputErrors = [
          ...nulCharacterErrors(payload.query, payload.variables),
          ...variableCostErrors(config, envelopedSchema, document, payload.variables),
        ];
        if (inputErrors.length > 0) return inputErrors;
        return {
          schema: envelopedSchema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
    },
    wss,
  );

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
          onEvents: (events: CreditingEvent[]) => publishCreditingEvents(services, events),
          onReversedCredits: (credits) => services.metrics.creditedDepositsReorged.inc(credits.length),
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

  const url = `http://${config.host}:${port}`;
  logger.info({ url }, 'api listening');
  return {
    url,
    port,
    services,
    close: async () => {
      await audits?.stop();
      await worker?.stop();
      await wsServer.dispose();
      wss.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      await metering.stop();
      await devModel?.stop();
      await pubsubHandle.close();
      await rateLimits.close();
      await orm.close(true);
    },
  };
}

async function createContext(
  services: AppServices,
  initial: YogaInitialContext & {
    connectionParams?: Record<string, unknown>;
    clientIp?: string | null;
    requestId?: string;
    log?: Logger;
  },
): Promise<GraphQLContext> {
  const em = services.orm.em.fork();
  const request = initial.request as (Request & { cookieStore?: CookieStoreLike }) | undefined;
  let token = bearerToken(initial.connectionParams?.authorization);
  if (!token && request) {
    token = bearerToken(request.headers.get('authorization'));
    if (!token && request.cookieStore) {
      token = (await request.cookieStore.get(SESSION_COOKIE))?.value ?? null;
      // A cross-site page can make the browser send the cookie on a form, text/plain body or GET (http/csrf.ts).
      if (token && !isPreflighted(request.headers)) throw cookieNotAccepted();
    }
  }
  return {
    em,
    viewer: await authenticate(em, services.config, token),
    services,
    // Only a preflighted request may receive the cookie: no signing a browser in from another site.
    sessionCookie:
      request?.cookieStore && isPreflighted(request.headers)
        ? sessionCookie(request.cookieStore, services.config)
        : null,
    clientIp: initial.clientIp ?? null,
    requestId: initial.requestId ?? null,
    log: initial.log ?? services.logger,
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

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

interface CookieStoreLike {
  get(name: string): Promise<{ value?: string } | null | undefined>;
  set(init: Record<string, unknown>): Promise<void>;
  delete(name: string): Promise<void>;
}

function sessionCookie(store: CookieStoreLike, config: ApiConfig): SessionCookie {
  const secure = config.publicOrigin.startsWith('https://');
  return {
    set: (token, expiresAt) =>
      store.set({
        name: SESSION_COOKIE,
        value: token,
        expires: expiresAt,
        httpOnly: true,
        sameSite: 'lax',
        path: '/',
        secure,
        domain: null,
      }),
    clear: () => store.delete(SESSION_COOKIE),
  };
}

function publishCreditingEvents(services: AppServices, events: CreditingEvent[]): void {
  for (const event of events) {
    if (event.type === 'balanceUpdated') {
      services.pubsub.publish('balanceUpdated', event.accountId, { ledgerEntryId: event.ledgerEntryId });
    } else {
      services.pubsub.publish('depositUpdated', event.accountId, { depositId: event.depositId });
    }
  }
}
