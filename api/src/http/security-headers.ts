/**
 * Security headers on every response of the API's origin (docs/security.md; tests:
 * api/test/security-headers.test.ts and the web client's end-to-end tests, which run under this policy):
 * - the web client's pages: a Content-Security-Policy that runs only this origin's scripts and styles
 *   (the Vite build has no inline script or style), connects only to this origin (HTTP, SSE, and its ws/wss
 *   form) and to the RPC the page reads the chain through, and may not be framed;
 * - GraphiQL (yoga's page, development only) loads its bundle from unpkg.com and boots with inline scripts:
 *   it gets a policy that allows exactly that, and still may not be framed;
 * - everything else (GraphQL, JSON, CSV, SSE, metrics) is data, never a document: `default-src 'none'`;
 * - all of them: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (browsers without
 *   frame-ancestors), `Referrer-Policy: no-referrer` (no page address, which may carry a `?rpc=` or a
 *   usage filter, leaves in a Referer).
 */
import { browserRpcUrl, DEVNET_CHAIN_ID } from '@chainmeter/schema';
import type { Context, MiddlewareHandler } from 'hono';
import type { ApiConfig } from '../env.ts';

export type SecurityHeadersConfig = Pick<ApiConfig, 'publicOrigin' | 'chainId' | 'rpcUrl'>;

/** yoga's GraphiQL page (graphql-yoga's `graphiql-html`) fetches its bundle and workers from here. */
const GRAPHIQL_CDN = 'https://unpkg.com';
const GRAPHIQL_FAVICON_HOST = 'https://raw.githubusercontent.com';

/** Data responses: nothing in them may load or run anything, and nobody may frame them. */
const DATA_CSP = "default-src 'none'; frame-ancestors 'none'";

function policy(directives: Record<string, string[]>): string {
  return Object.entries(directives)
    .map(([name, sources]) => `${name} ${sources.join(' ')}`)
    .join('; ');
}

/** `https://host` -> `wss://host`: the WebSocket form of an origin (graphql-ws on /graphql). */
function webSocketOrigin(origin: string): string {
  return origin.replace(/^http/, 'ws');
}

/**
 * The origins the web client's `connect-src` allows besides its own: the RPC it reads the chain through
 * (the public one of the chain, see `browserRpcUrl`) and, on the devnet only, the API's own `RPC_URL`,
 * which a test or a `?rpc=` link points the page at. Origins only: a path may carry a provider's key.
 */
function rpcConnectSources(config: SecurityHeadersConfig): string[] {
  const urls = [browserRpcUrl(config.chainId)];
  if (config.chainId === DEVNET_CHAIN_ID) urls.push(config.rpcUrl);
  return [...new Set(urls.map((url) => new URL(url).origin))];
}

/** The web client's policy (index.html and the SPA fallback). */
function webClientCsp(config: SecurityHeadersConfig): string {
  return policy({
    'default-src': ["'self'"],
    'script-src': ["'self'"],
    'style-src': ["'self'"],
    // The favicon and the icons EIP-6963 wallets announce are data: URLs.
    'img-src': ["'self'", 'data:'],
    'font-src': ["'self'"],
    'connect-src': ["'self'", webSocketOrigin(config.publicOrigin), ...rpcConnectSources(config)],
    'object-src': ["'none'"],
    'base-uri': ["'self'"],
    'form-action': ["'self'"],
    'frame-ancestors': ["'none'"],
  });
}

/** GraphiQL's policy: its CDN and inline boot scripts, its blob: workers; never framed. */
function graphiqlCsp(config: SecurityHeadersConfig): string {
  return policy({
    'default-src': ["'self'"],
    'script-src': ["'self'", "'unsafe-inline'", GRAPHIQL_CDN],
    'style-src': ["'self'", "'unsafe-inline'", GRAPHIQL_CDN],
    'img-src': ["'self'", 'data:', GRAPHIQL_FAVICON_HOST],
    'font-src': ["'self'", 'data:', GRAPHIQL_CDN],
    'connect-src': ["'self'", webSocketOrigin(config.publicOrigin), GRAPHIQL_CDN],
    'worker-src': ["'self'", 'blob:'],
    'object-src': ["'none'"],
    'base-uri': ["'self'"],
    'frame-ancestors': ["'none'"],
  });
}

export function securityHeaders(config: SecurityHeadersConfig): MiddlewareHandler {
  const webClient = webClientCsp(config);
  const graphiql = graphiqlCsp(config);
  return async (c, next) => {
    await next();
    const isPage = (c.res.headers.get('content-type') ?? '').toLowerCase().startsWith('text/html');
    const csp = !isPage ? DATA_CSP : c.req.path === '/graphql' ? graphiql : webClient;
    setHeaders(c, {
      'content-security-policy': csp,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    });
  };
}

function setHeaders(c: Context, headers: Record<string, string>): void {
  try {
    for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
  } catch {
    // Immutable headers (a fetched Response): copy the response once.
    const copy = new Response(c.res.body, c.res);
    for (const [name, value] of Object.entries(headers)) copy.headers.set(name, value);
    c.res = copy;
  }
}
