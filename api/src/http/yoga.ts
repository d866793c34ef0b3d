/**
 * GraphQL over HTTP and SSE on `/graphql` (graphql-yoga), and the context every operation gets, over
 * HTTP and graphql-ws alike: a fresh EntityManager fork, the caller, the session cookie, the request's id.
 */
import { useGraphQlJit } from '@envelop/graphql-jit';
import { initContextCache } from '@pothos/core';
import { useCookies } from '@whatwg-node/server-plugin-cookies';
import { getOperationAST } from 'graphql';
import { createYoga, type Plugin, type YogaInitialContext } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { AppServices, GraphQLContext } from '../context.ts';
import type { Em } from '../db/orm.ts';
import { maskError } from '../errors.ts';
import { Account } from '../modules/accounts/accounts.entity.ts';
import type { AccountRecord } from '../modules/accounts/accounts.store.ts';
import { accountFiguresOfOneMoment } from '../modules/accounts/one-moment.ts';
import { graphqlMetricsPlugins } from '../observability/graphql.ts';
import { schema } from '../schema/index.ts';
import { type Caller, resolveCaller, SESSION_COOKIE } from './caller.ts';
import { isPreflighted } from './csrf.ts';
import { jitRunsAsGraphqlJs } from './graphql-jit.ts';
import {
  corsPolicy,
  graphqlArmor,
  introspectionPolicy,
  malformedRequestAsBadRequest,
  uncoercedVariablesAsBadInput,
  variableInputLimits,
} from './graphql-security.ts';
import { type CookieStoreLike, sessionCookie } from './session-cookie.ts';

/** What the transports hand yoga besides the request: graphql-ws params, the client's IP, the request's log. */
interface TransportContext {
  connectionParams?: Record<string, unknown>;
  clientIp?: string | null;
  requestId?: string;
  log?: Logger;
}

export function createGraphqlServer(services: AppServices) {
  const { config, logger, metrics } = services;
  return createYoga<TransportContext, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: config.env !== 'production',
    // Hardening (http/graphql-security.ts, docs/security.md): no CORS unless CORS_ORIGINS, no batching.
    cors: corsPolicy(config),
    batching: false,
    // The route enforces the body limit before yoga (graphqlBodyLimit, or reading Node's request with it;
    // graphql-ws messages have their own). Yoga's own (25 MB) re-wraps every body in a counting stream and
    // a new Request: about 3% of the API's CPU on the ledger read path, for a limit that never fires.
    maxRequestBodySize: false,
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
      malformedRequestAsBadRequest(),
      requestContext(services),
      graphqlArmor(config),
      variableInputLimits(config, schema),
      uncoercedVariablesAsBadInput(),
      ...introspectionPolicy(config),
      ...graphqlMetricsPlugins(metrics),
      // Queries run as compiled JavaScript, one compilation per document (cached with the parsed document):
      // graphql-js's generic executor was most of the CPU of a ledger page of 100 entries. Mutations and
      // subscriptions keep graphql-js, and so do the few queries graphql-jit would run wrongly (graphql-jit.ts).
      useGraphQlJit(
        {},
        {
          enableIf: (args) =>
            getOperationAST(args.document, args.operationName)?.operation === 'query' &&
            jitRunsAsGraphqlJs(args.schema, args.document),
          onError: (result) =>
            logger.error({ errors: result.errors }, 'graphql-jit could not compile a query'),
        },
      ),
      // After the executor is chosen: it runs a query again while the signed-in account moves under it.
      accountFiguresOfOneMoment(services),
    ],
  });
}

export type GraphqlServer = ReturnType<typeof createGraphqlServer>;

/**
 * Each operation's context, filled in by an envelop plugin rather than yoga's `context` option, which copies
 * the properties of the object it returns onto the context: `em` must stay a getter.
 */
function requestContext(services: AppServices): Plugin<TransportContext> {
  return {
    async onContextBuilding({ context }) {
      const { caller, ...fields } = await contextFields(services, context);
      Object.assign(context, fields);
      startReads(context, services, caller?.account ?? null);
      Object.defineProperty(context, 'readAgainFrom', {
        enumerable: false,
        value(account: AccountRecord) {
          Object.assign(context, { viewerAccount: account.view, viewerAccountReads: new Set() });
          startReads(context, services, account);
        },
      });
    },
  };
}

/**
 * What the request reads starts here (again, when an operation runs again: `accounts/one-moment.ts`): an
 * empty Pothos cache and an EntityManager not forked yet.
 */
function startReads(context: object, services: AppServices, account: AccountRecord | null): void {
  let em: Em | undefined;
  // Pothos's per-request caches (the deposits' DataLoader, looked up for every entry of a ledger page)
  // are keyed by this own property rather than by a lookup of a missing symbol on the whole context.
  Object.assign(context, initContextCache());
  // Forked on first use: the read path (`me`, the ledger, its deposits) reads through stores and needs
  // none. The caller's account goes into its identity map, so what reads it through the ORM finds it.
  // Not enumerable: plugins copy the context (the Prometheus plugin spreads it on every response), and
  // a copy must not fork it.
  Object.defineProperty(context, 'em', {
    enumerable: false,
    configurable: true,
    get(): Em {
      if (!em) {
        em = services.orm.em.fork();
        if (account) em.map(Account, account.row);
      }
      return em;
    },
  });
}

async function contextFields(
  services: AppServices,
  initial: YogaInitialContext & TransportContext,
): Promise<Omit<GraphQLContext, 'em' | 'readAgainFrom'> & { caller: Caller | null }> {
  // Absent over graphql-ws, where the credential comes in `connectionParams`.
  const request = initial.request as (Request & { cookieStore?: CookieStoreLike }) | undefined;
  const cookieStore = request?.cookieStore;
  const preflighted = request ? isPreflighted(request.headers) : false;
  const caller = await resolveCaller(services, {
    authorization: [initial.connectionParams?.authorization, request?.headers.get('authorization')],
    sessionCookie: cookieStore
      ? { value: (await cookieStore.get(SESSION_COOKIE))?.value, accepted: preflighted }
      : undefined,
  });
  return {
    caller,
    viewer: caller?.viewer ?? null,
    viewerAccount: caller?.account?.view ?? null,
    viewerAccountReads: new Set(),
    services,
    // Only a preflighted request may receive the cookie: no signing a browser in from another site.
    sessionCookie: cookieStore && preflighted ? sessionCookie(cookieStore, services.config) : null,
    clientIp: initial.clientIp ?? null,
    requestId: initial.requestId ?? null,
    log: initial.log ?? services.logger,
  };
}
