/**
 * Security headers on every response of the API's origin (docs/security.md; tests:
 * api/test/security-headers.test.ts and the web client's end-to-end tests, which run under this policy):
 * - the web client's pages: a Content-Security-Policy that runs only this origin's scripts and styles
 *   (the Vite build has no inline script or style), connects only to this origin (HTTP, SSE, and its ws/wss
 *   form), to the RPC the page reads the chain through and to the services of the wallets it offers
 *   (Coinbase Wallet always; WalletConnect when the build has a project id), and may not be framed;
 * - GraphiQL (yoga's page, development only) loads its bundle from unpkg.com and boots with inline scripts:
 *   it gets a policy that allows exactly that, and still may not be framed;
 * - everything else (GraphQL, JSON, CSV, SSE, metrics) is data, never a document: `default-src 'none'`;
 * - all of them: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (browsers without
 *   frame-ancestors), `Referrer-Policy: no-referrer` (no page address, which may carry a `?rpc=` or a
 *   usage filter, leaves in a Referer);
 * - when PUBLIC_ORIGIN is https: `Strict-Transport-Security` for a year, so a browser that has been here
 *   once never sends the session cookie over plain HTTP again (not for subdomains: they are not ours).
 */
import { browserRpcUrl, DEVNET_CHAIN_ID } from '@chainmeter/schema';
import type { Context, MiddlewareHandler } from 'hono';
import type { ApiConfig } from '../env.ts';

export type SecurityHeadersConfig = Pick<ApiConfig, 'publicOrigin' | 'chainId' | 'rpcUrl' | 'walletConnect'>;

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

/**
 * Coinbase Wallet's SDK (always offered): its popup's origin and the smart wallet's RPC, and WalletLink's
 * relay (HTTP and WebSocket) for the mobile app. Read off the SDK's own constants (`@coinbase/wallet-sdk` 4).
 */
const COINBASE_WALLET_CONNECT_SOURCES = [
  'https://keys.coinbase.com',
  'https://rpc.wallet.coinbase.com',
  'https://www.walletlink.org',
  'wss://www.walletlink.org',
];

/** WalletConnect's services, as its maintainers' CSP guidance lists them (Reown, "Content Security Policy"). */
const WALLETCONNECT_SOURCES = {
  connect: ['rpc', 'relay', 'pulse', 'keys', 'notify', 'echo', 'push']
    .flatMap((host) => [`https://${host}.walletconnect.com`, `https://${host}.walletconnect.org`])
    .concat([
      'wss://relay.walletconnect.com',
      'wss://relay.walletconnect.org',
      'https://api.web3modal.com',
      'https://api.web3modal.org',
    ]),
  // Wallets' logos come from its API and CDNs.
  img: [
    'https://walletconnect.com',
    'https://walletconnect.org',
    'https://secure.walletconnect.com',
    'https://secure.walletconnect.org',
    'https://api.web3modal.com',
    'https://api.web3modal.org',
  ],
  font: ['https://fonts.gstatic.com', 'https://fonts.reown.com'],
  style: ['https://fonts.googleapis.com'],
  frame: [
    'https://verify.walletconnect.com',
    'https://verify.walletconnect.org',
    'https://secure.walletconnect.com',
    'https://secure.walletconnect.org',
  ],
};

/** The web client's policy (index.html and the SPA fallback). */
function webClientCsp(config: SecurityHeadersConfig): string {
  const walletConnect = config.walletConnect ? WALLETCONNECT_SOURCES : null;
  return policy({
    'default-src': ["'self'"],
    'script-src': ["'self'"],
    'style-src': ["'self'", ...(walletConnect?.style ?? [])],
    // The favicon and the icons EIP-6963 wallets announce are data: URLs.
    'img-src': ["'self'", 'data:', ...(walletConnect?.img ?? [])],
    'font-src': ["'self'", ...(walletConnect?.font ?? [])],
    'connect-src': [
      "'self'",
      webSocketOrigin(config.publicOrigin),
      ...rpcConnectSources(config),
      ...COINBASE_WALLET_CONNECT_SOURCES,
      ...(walletConnect?.connect ?? []),
    ],
    ...(walletConnect ? { 'frame-src': ["'self'", ...walletConnect.frame] } : {}),
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
  const transport: Record<string, string> = config.publicOrigin.startsWith('https:')
    ? { 'strict-transport-security': 'max-age=31536000' }
    : {};
  return async (c, next) => {
    await next();
    const isPage = (c.res.headers.get('content-type') ?? '').toLowerCase().startsWith('text/html');
    const csp = !isPage ? DATA_CSP : c.req.path === '/graphql' ? graphiql : webClient;
    setHeaders(c, {
      'content-security-policy': csp,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      ...transport,
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
