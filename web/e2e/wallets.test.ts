/**
 * The wallets people hold, in a real browser against the production build: the connect page lists Coinbase
 * Wallet beside the injected/EIP-6963 wallets (and the dev wallet on the devnet), and its SDK is not
 * downloaded until someone picks it; a build with WALLETCONNECT_PROJECT_ID lists WalletConnect too, and its
 * first load stays within the size budget.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { devAccounts } from '@chainmeter/testkit/accounts';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUDGET_KB, measureBuild } from '../scripts/size-budget.ts';
import { type FakeApi, startFakeApi } from './fake-api.ts';
import { launchChromium, screenshotPath } from './support.ts';

const WALLET = devAccounts.payers[0]?.address ?? '';
const WEB = fileURLToPath(new URL('..', import.meta.url));
/** The chunks of the WalletConnect connector and its SDK (see vite.config.ts). */
const WALLETCONNECT_CHUNK = /\/assets\/(walletconnect|walletConnect)-[^/]+\.js$/i;
/** The chunks of the Coinbase Wallet connector and its SDK (see vite.config.ts). */
const COINBASE_CHUNK = /\/assets\/(coinbase-wallet-sdk|coinbaseWallet)-[^/]+\.js$/;

describe('web client: wallet connectors', () => {
  let browser: Browser;
  const apis: FakeApi[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const api of apis) await api.close();
  });

  async function open(chainId: number, dist?: string) {
    const api = await startFakeApi(WALLET, chainId, { dist });
    apis.push(api);
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const scripts: string[] = [];
    page.on('request', (request) => {
      if (request.resourceType() === 'script') scripts.push(new URL(request.url()).pathname);
    });
    await page.goto(api.url);
    await page.getByRole('heading', { name: 'Pay for AI with USDC' }).waitFor({ timeout: 15_000 });
    return { page, scripts };
  }

  it('on Base: lists Coinbase Wallet and loads its SDK only once it is picked', async () => {
    const { page, scripts } = await open(8453);
    const coinbase = page.getByRole('button', { name: 'Coinbase Wallet' });
    await coinbase.waitFor();
    // No dev wallet off the devnet.
    expect(await page.getByRole('button', { name: /Use Dev wallet/ }).count()).toBe(0);
    await page.waitForLoadState('networkidle');
    await page.screenshot({ path: screenshotPath('wallets-01-base') });
    expect(scripts.filter((script) => COINBASE_CHUNK.test(script))).toEqual([]);

    const sdkRequested = page.waitForRequest(
      (request) => COINBASE_CHUNK.test(new URL(request.url()).pathname),
      {
        timeout: 15_000,
      },
    );
    await coinbase.click();
    await sdkRequested;
    await page.close();
  });

  it('on the devnet: Coinbase Wallet and the dev wallet', async () => {
    const { page, scripts } = await open(31337);
    await page.getByRole('button', { name: 'Coinbase Wallet' }).waitFor();
    await page.getByRole('button', { name: /Use Dev wallet/ }).waitFor();
    await page.waitForLoadState('networkidle');
    expect(scripts.filter((script) => COINBASE_CHUNK.test(script))).toEqual([]);
    await page.screenshot({ path: screenshotPath('wallets-02-devnet') });
    await page.close();
  });

  it('with WALLETCONNECT_PROJECT_ID in the build: lists WalletConnect, loads it only once picked, first load in budget', async () => {
    const dist = mkdtempSync(path.join(tmpdir(), 'cm-web-wc-'));
    try {
      const vite = path.join(WEB, '..', 'node_modules', 'vite', 'bin', 'vite.js');
      const build = spawnSync(
        process.execPath,
        [vite, 'build', '--logLevel', 'warn', '--outDir', dist, '--emptyOutDir'],
        {
          cwd: WEB,
          encoding: 'utf8',
          env: {
            ...process.env,
            NODE_ENV: 'production',
            WALLETCONNECT_PROJECT_ID: '0123456789abcdef0123456789abcdef',
          },
          timeout: 300_000,
        },
      );
      expect(build.status, build.stderr).toBe(0);
      const report = measureBuild(dist);
      expect(report.initialKb).toBeLessThanOrEqual(BUDGET_KB.initial);
      expect(report.files.some((file) => WALLETCONNECT_CHUNK.test(`/${file.file}`))).toBe(true);

      const { page, scripts } = await open(8453, dist);
      const walletConnect = page.getByRole('button', { name: 'WalletConnect' });
      await walletConnect.waitFor();
      await page.getByRole('button', { name: 'Coinbase Wallet' }).waitFor();
      await page.waitForLoadState('networkidle');
      await page.screenshot({ path: screenshotPath('wallets-03-walletconnect') });
      expect(scripts.filter((script) => WALLETCONNECT_CHUNK.test(script))).toEqual([]);
      const sdkRequested = page.waitForRequest(
        (request) => WALLETCONNECT_CHUNK.test(new URL(request.url()).pathname),
        { timeout: 15_000 },
      );
      await walletConnect.click();
      await sdkRequested;
      await page.close();
    } finally {
      rmSync(dist, { recursive: true, force: true });
    }
  }, 360_000);
});
