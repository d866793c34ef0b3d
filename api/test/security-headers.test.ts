/**
 * Security headers and the production metrics lock (issue 9, item 12), checked with real HTTP requests to
 * real API instances on one fresh PostgreSQL database, serving the real production build of the web client:
 * - `dev`: NODE_ENV=test on the devnet (chain 31337), plain-http origin, no METRICS_TOKEN;
 * - `prod`: NODE_ENV=production on Base (8453) behind https, an RPC_URL with a provider key in its path,
 *   and no METRICS_TOKEN;
 * - `prodWithToken`: production with METRICS_TOKEN, and a web client built with WalletConnect.
 * That the web client still works under its policy is shown in headless Chromium by web/e2e/payment.test.ts.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';

const WEB_ASSETS = fileURLToPath(new URL('../../web/dist/assets', import.meta.url));
const PROD_ORIGIN = 'https://chainmeter.example';
const PROVIDER_KEY = 'k3y0fTheRpcProvider0123456789';
const METRICS_TOKEN = 'metrics-token-0123456789';

let anvil: Anvil;
let database: TestDatabase;
let dev: RunningApi;
let prod: RunningApi;
let prodWithToken: RunningApi;
const prodLog: string[] = [];

function env(overrides: Record<string, string>) {
  return testApiConfig({
    RPC_URL: anvil.rpcUrl,
    DATABASE_URL: database.url,
    METERING_RETRY_MS: '600000',
    ...overrides,
  });
}

const PRODUCTION_ON_BASE = {
  NODE_ENV: 'production',
  PUBLIC_ORIGIN: PROD_ORIGIN,
  CHAIN_ID: '8453',
  // Never contacted by these tests; its path carries a key that must not reach any header.
  RPC_URL: `https://base-rpc.provider.example/v2/${PROVIDER_KEY}`,
  USDC_ADDRESS: '',
  LOG_LEVEL: 'warn',
};

beforeAll(async () => {
  await ensureWebBuild();
  anvil = await startAnvil();
  database = await createTestDatabase('cm_headers');
  dev = await startApi(env({ PUBLIC_ORIGIN: 'http://localhost:4000' }), { crediting: false });
  prod = await startApi(env(PRODUCTION_ON_BASE), {
    crediting: false,
    logger: createLogger({ level: 'warn', destination: { write: (line: string) => prodLog.push(line) } }),
  });
  prodWithToken = await startApi(
    // A web client built with WalletConnect (the API only learns that the id is set).
    env({
      ...PRODUCTION_ON_BASE,
      LOG_LEVEL: 'silent',
      METRICS_TOKEN,
      WALLETCONNECT_PROJECT_ID: 'wc-public-id',
    }),
    {
      crediting: false,
    },
  );
}, 180_000);

afterAll(async () => {
  for (const api of [dev, prod, prodWithToken]) await api?.close();
  await database?.drop();
  await anvil?.stop();
});

/** The Content-Security-Policy as a map: directive -> its sources. */
function cspOf(response: Response): Map<string, string[]> {
  const header = response.headers.get('content-security-policy');
  if (!header) throw new Error(`${response.url} has no Content-Security-Policy`);
  return new Map(
    header
      .split(';')
      .map((part) => part.trim().split(/\s+/))
      .filter((words) => words[0])
      .map(([name, ...sources]) => [name as string, sources]),
  );
}

function expectCommonHeaders(response: Response): void {
  expect(response.headers.get('x-content-type-options'), response.url).toBe('nosniff');
  expect(response.headers.get('x-frame-options'), response.url).toBe('DENY');
  expect(response.headers.get('referrer-policy'), response.url).toBe('no-referrer');
  expect(cspOf(response).get('frame-ancestors'), response.url).toEqual(["'none'"]);
}

const graphqlPost = (api: RunningApi) =>
  fetch(`${api.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ paymentConfig { chainId } }' }),
  });

describe('the web client (served by the API)', () => {
  it("index.html runs only this origin's scripts and styles, and connects only to it and the devnet RPC", async () => {
    for (const path of ['/', '/ledger']) {
      const response = await fetch(`${dev.url}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expectCommonHeaders(response);
      const csp = cspOf(response);
      expect(csp.get('default-src')).toEqual(["'self'"]);
      expect(csp.get('script-src')).toEqual(["'self'"]);
      expect(csp.get('style-src')).toEqual(["'self'"]);
      expect(csp.get('object-src')).toEqual(["'none'"]);
      expect(csp.get('base-uri')).toEqual(["'self'"]);
      // The origin's own HTTP and WebSocket forms; anvil's origin (RPC_URL, what a `?rpc=` link on the
      // devnet points at) and the default devnet RPC.
      expect(csp.get('connect-src')).toEqual([
        "'self'",
        'ws://localhost:4000',
        'http://127.0.0.1:8545',
        new URL(anvil.rpcUrl).origin,
        // Coinbase Wallet (always offered): its popup, its smart wallet's RPC, WalletLink's relay.
        'https://keys.coinbase.com',
        'https://rpc.wallet.coinbase.com',
        'https://www.walletlink.org',
        'wss://www.walletlink.org',
      ]);
      // No WalletConnect without its project id: nothing of it is let in.
      expect(response.headers.get('content-security-policy')).not.toMatch(
        /walletconnect|web3modal|frame-src/,
      );
      const html = await response.text();
      // What the policy relies on: the build has no inline script or style.
      expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(html).not.toMatch(/<style|\sstyle=/);
    }
  });

  it('on Base, connect-src names the public Base RPC and never the RPC_URL the API itself uses', async () => {
    const response = await fetch(`${prod.url}/`);
    expectCommonHeaders(response);
    expect(cspOf(response).get('connect-src')).toEqual([
      "'self'",
      'wss://chainmeter.example',
      'https://mainnet.base.org',
      'https://keys.coinbase.com',
      'https://rpc.wallet.coinbase.com',
      'https://www.walletlink.org',
      'wss://www.walletlink.org',
    ]);
    expect(response.headers.get('content-security-policy')).not.toContain('provider.example');
    expect(response.headers.get('content-security-policy')).not.toContain(PROVIDER_KEY);
  });

  it("built with WalletConnect, lets exactly WalletConnect's services in: relay, RPC, API, logos, fonts, verify frame", async () => {
    const response = await fetch(`${prodWithToken.url}/`);
    expectCommonHeaders(response);
    const csp = cspOf(response);
    const connect = csp.get('connect-src') ?? [];
    expect(connect.slice(0, 3)).toEqual(["'self'", 'wss://chainmeter.example', 'https://mainnet.base.org']);
    for (const source of [
      'wss://relay.walletconnect.org',
      'wss://relay.walletconnect.com',
      'https://rpc.walletconnect.org',
      'https://pulse.walletconnect.org',
      'https://api.web3modal.org',
      'wss://www.walletlink.org',
    ]) {
      expect(connect).toContain(source);
    }
    expect(csp.get('img-src')).toEqual(
      expect.arrayContaining(["'self'", 'data:', 'https://api.web3modal.org']),
    );
    expect(csp.get('frame-src')).toEqual(
      expect.arrayContaining(["'self'", 'https://verify.walletconnect.org']),
    );
    expect(csp.get('font-src')).toEqual(expect.arrayContaining(["'self'", 'https://fonts.reown.com']));
    // Still no inline or foreign script, and never framed.
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
    expect(csp.get('img-src')).not.toContain('*');
  });

  it('serves its assets with nosniff and a policy that lets them load nothing', async () => {
    const script = readdirSync(WEB_ASSETS).find((name) => name.endsWith('.js'));
    const response = await fetch(`${dev.url}/assets/${script}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/javascript/);
    expectCommonHeaders(response);
    expect(cspOf(response).get('default-src')).toEqual(["'none'"]);
  });
});

describe('the API', () => {
  it('answers GraphQL, REST and health with nosniff, no framing and nothing to load', async () => {
    const responses: [Response, number][] = [
      [await graphqlPost(dev), 200],
      [await graphqlPost(prod), 200],
      // Without a key: refused, and the refusal carries the headers too.
      [await fetch(`${dev.url}/v1/models`), 401],
      [await fetch(`${prod.url}/v1/models`), 401],
      [await fetch(`${dev.url}/healthz`), 200],
      [
        await fetch(`${dev.url}/graphql?query=${encodeURIComponent('{ paymentConfig { chainId } }')}`, {
          headers: { accept: 'application/graphql-response+json' },
        }),
        200,
      ],
    ];
    for (const [response, status] of responses) {
      expect(response.status, response.url).toBe(status);
      expectCommonHeaders(response);
      expect(cspOf(response).get('default-src'), response.url).toEqual(["'none'"]);
    }
  });

  it('asks browsers for HTTPS only (HSTS, a year) when its public origin is https, never on plain http', async () => {
    for (const response of [
      await graphqlPost(prod),
      await fetch(`${prod.url}/`),
      await fetch(`${prod.url}/v1/models`),
    ]) {
      expect(response.headers.get('strict-transport-security'), response.url).toBe('max-age=31536000');
    }
    for (const response of [await graphqlPost(dev), await fetch(`${dev.url}/`)]) {
      expect(response.headers.get('strict-transport-security'), response.url).toBeNull();
    }
  });

  it('gives GraphiQL (development only) the allowances it needs, and still no framing', async () => {
    const page = await fetch(`${dev.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('graphiql');
    expectCommonHeaders(page);
    const csp = cspOf(page);
    expect(csp.get('script-src')).toEqual(["'self'", "'unsafe-inline'", 'https://unpkg.com']);
    expect(csp.get('object-src')).toEqual(["'none'"]);
    // Production has no GraphiQL: the same request is not served a page.
    const none = await fetch(`${prod.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(none.headers.get('content-type') ?? '').not.toMatch(/^text\/html/);
    expectCommonHeaders(none);
  });
});

describe('/metrics', () => {
  it('is refused in production without METRICS_TOKEN, whatever the request carries, with a warning at start', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer anything-0123456789' }];
    for (const headers of attempts) {
      const response = await fetch(`${prod.url}/metrics`, { headers });
      expect(response.status).toBe(403);
      const body = await response.text();
      expect(body).toContain('METRICS_TOKEN');
      expect(body).not.toContain('chainmeter_');
      expectCommonHeaders(response);
    }
    const warnings = prodLog.map((line) => JSON.parse(line) as { level: number; msg: string });
    expect(warnings.some((line) => line.level === 40 && /METRICS_TOKEN is not set/.test(line.msg))).toBe(
      true,
    );
  });

  it('in production with METRICS_TOKEN: 401 without the token, the metrics with it', async () => {
    expect((await fetch(`${prodWithToken.url}/metrics`)).status).toBe(401);
    const scrape = await fetch(`${prodWithToken.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toContain('chainmeter_http_requests_total');
  });

  it('stays open outside production when no token is set (a local Prometheus)', async () => {
    const scrape = await fetch(`${dev.url}/metrics`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toContain('chainmeter_http_requests_total');
  });
});
