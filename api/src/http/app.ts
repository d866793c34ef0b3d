/**
 * The HTTP routes on one origin: health and readiness, `/metrics`, the OpenAI-compatible `/v1`, GraphQL
 * on `/graphql`, and the built web client.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getConnInfo } from '@hono/node-server/conninfo';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono, type MiddlewareHandler } from 'hono';
import type { AppServices } from '../context.ts';
import { clientIpOf, type TrustedProxies } from '../modules/ratelimit/client-ip.ts';
import { type RequestVariables, requestObservability } from '../observability/http.ts';
import { metricsRoute } from '../observability/metrics-route.ts';
import type { PlatformProbe } from '../observability/platform-probe.ts';
import { checkReadiness } from '../observability/readiness.ts';
import { MAX_REQUEST_BODY_BYTES } from './body-limit.ts';
import { graphqlBodyLimit, graphqlBodyTooLarge } from './graphql-security.ts';
import { nodeRequestAs, requestHeader, singleResultResponse } from './node-request.ts';
import { openAiRoutes } from './openai.routes.ts';
import { securityHeaders } from './security-headers.ts';
import type { GraphqlServer } from './yoga.ts';

const webDist = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../web/dist');

interface HttpAppParts {
  services: AppServices;
  probe: PlatformProbe;
  yoga: GraphqlServer;
  trustedProxies: TrustedProxies;
}

export function createHttpApp({ services, probe, yoga, trustedProxies }: HttpAppParts) {
  const { config, logger, metrics, orm } = services;
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
  app.on(['GET', 'POST', 'OPTIONS'], '/graphql', async (c) => {
    const request = await nodeRequestAs(c, yoga.fetchAPI.Request, MAX_REQUEST_BODY_BYTES);
    if (request === null) return graphqlBodyTooLarge(c);
    const response = await yoga.fetch(request ?? c.req.raw, {
      clientIp: clientIpOf(
        getConnInfo(c).remote.address,
        requestHeader(c, 'x-forwarded-for'),
        trustedProxies,
      ),
      requestId: c.get('requestId'),
      log: c.get('log'),
    });
    return singleResultResponse(c, response);
  });
  // Until web/dist exists, each request looks for it again (and falls through to a 404): `npm start` builds
  // the web client while the API starts, and the API serves it once the build is there.
  let webClient: { assets: MiddlewareHandler; index: MiddlewareHandler } | undefined;
  const web = () => {
    if (!webClient && existsSync(webDist)) {
      webClient = {
        assets: serveStatic({ root: path.relative(process.cwd(), webDist) }),
        index: serveStatic({ path: path.relative(process.cwd(), path.join(webDist, 'index.html')) }),
      };
    }
    return webClient;
  };
  app.use('/*', (c, next) => web()?.assets(c, next) ?? next());
  app.get('*', (c, next) => web()?.index(c, next) ?? next());
  return app;
}
