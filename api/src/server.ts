/**
 * The API process: GraphQL over HTTP, SSE and graphql-ws on `/graphql`, the OpenAI-compatible `/v1`,
 * health endpoints, the crediting worker, and the built web client, all on one origin. The services are
 * built in app-services.ts; the routes live in http/.
 */
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { type AppServicesOptions, composeApp } from './app-services.ts';
import type { AppServices } from './context.ts';
import { type ApiConfig, ConfigError } from './env.ts';
import { createHttpApp } from './http/app.ts';
import { serveGraphqlOverWebSocket } from './http/graphql-ws.ts';
import { createGraphqlServer } from './http/yoga.ts';
import { TrustedProxies } from './modules/ratelimit/client-ip.ts';

export interface RunningApi {
  url: string;
  port: number;
  services: AppServices;
  close(): Promise<void>;
}

export async function startApi(config: ApiConfig, options: AppServicesOptions = {}): Promise<RunningApi> {
  const app = await composeApp(config, options);
  const { services } = app;
  const trustedProxies = new TrustedProxies(config.trustedProxies);
  const yoga = createGraphqlServer(services);
  const http = createHttpApp({ services, probe: app.probe, yoga, trustedProxies });
  const server = await listen(http.fetch, config);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const webSocket = serveGraphqlOverWebSocket(server, yoga, config, trustedProxies);
  const background = app.startBackgroundWork();

  const url = `http://${config.host}:${port}`;
  services.logger.info({ url }, 'api listening');
  return {
    url,
    port,
    services,
    close: async () => {
      await background.stop();
      await webSocket.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      await app.close();
    },
  };
}

function listen(fetch: Parameters<typeof serve>[0]['fetch'], config: ApiConfig): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const listening = serve({ fetch, port: config.port, hostname: config.host }, () =>
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
}
