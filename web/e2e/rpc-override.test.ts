/**
 * `?rpc=` in a real browser (issue 9, item 12): the production build against a fake API that says which
 * chain the platform is on. On Base a link's `?rpc=` is ignored, said so in the console, and not remembered;
 * on the devnet it is honoured and remembered. (The choice itself: web/src/wallet/config.test.ts.)
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeApi, startFakeApi } from './fake-api.ts';
import { launchChromium } from './support.ts';

const HOSTILE_RPC = 'https://rpc.attacker.example';
const WALLET = devAccounts.payers[0]?.address ?? '';

describe('web client: the ?rpc= override', () => {
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

  async function visit(chainId: number) {
    const api = await startFakeApi(WALLET, chainId);
    apis.push(api);
    const page = await browser.newPage();
    const warnings: string[] = [];
    const hostileRequests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'warning') warnings.push(message.text());
    });
    page.on('request', (request) => {
      if (request.url().startsWith(HOSTILE_RPC)) hostileRequests.push(request.url());
    });
    await page.goto(`${api.url}/?rpc=${encodeURIComponent(HOSTILE_RPC)}`);
    await page.getByRole('heading', { name: 'Pay for AI with USDC' }).waitFor({ timeout: 15_000 });
    const remembered = await page.evaluate(
      (key) => localStorage.getItem(key),
      `chainmeter.rpcUrl.${chainId}`,
    );
    await page.close();
    return { warnings, hostileRequests, remembered };
  }

  it('on Base: ignored, said so in the console, never remembered, never contacted', async () => {
    const { warnings, hostileRequests, remembered } = await visit(8453);
    expect(warnings.join('\n')).toContain(`ignored the RPC override "${HOSTILE_RPC}"`);
    expect(remembered).toBeNull();
    expect(hostileRequests).toEqual([]);
  });

  it('on the devnet: honoured and remembered', async () => {
    const { warnings, remembered } = await visit(31337);
    expect(remembered).toBe(HOSTILE_RPC);
    expect(warnings.join('\n')).not.toContain('ignored the RPC override');
  });
});
