/**
 * A gasless top-up in headless Chromium against the real stack (anvil with the EIP-3009 test token, Ponder,
 * PostgreSQL, the API serving the production build and relaying): a dev-wallet account holding USDC and no
 * ETH signs an authorization on the buy page, the relayer submits it, and the page follows it live from
 * pending to credited.
 */

import { devPayer, type Platform, startPlatform } from '@chainmeter/api/testing/platform';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import { findFreePort } from '@chainmeter/testkit/ports';
import { mintUsdc, usdcBalance } from '@chainmeter/testkit/token';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { createPublicClient, createTestClient, http } from 'viem';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshotPath } from './support.ts';

const CONFIRMATIONS = 3;
/** anvil account 6: the dev wallet's "Account 6". */
const PAYER_INDEX = 6;
const payer = devPayer(PAYER_INDEX - 1);

describe('web client: gasless top-up in a real browser', () => {
  let platform: Platform;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    platform = await startPlatform({ confirmations: CONFIRMATIONS });
    const port = await findFreePort();
    origin = `http://127.0.0.1:${port}`;
    await platform.startApi({ PORT: String(port), PUBLIC_ORIGIN: origin });
    // USDC and not a wei of ETH: this wallet cannot send a transaction of its own.
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 20_000_000n);
    await createTestClient({ mode: 'anvil', transport: http(platform.anvil.rpcUrl) }).setBalance({
      address: payer.address,
      value: 0n,
    });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(20_000);
  }, 180_000);

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && page) {
      await page.screenshot({
        path: screenshotPath(`gasless-FAILED-${context.task.name.replace(/\W+/g, '-')}`),
      });
    }
  });

  afterAll(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('signs an authorization, the relayer pays the gas, and the credit arrives live', async () => {
    const chain = createPublicClient({ transport: http(platform.anvil.rpcUrl) });
    expect(await chain.getBalance({ address: payer.address })).toBe(0n);
    await page.goto(`${origin}/?rpc=${encodeURIComponent(platform.anvil.rpcUrl)}`);
    await page.getByLabel('Account').selectOption(String(PAYER_INDEX));
    await page.getByRole('button', { name: /Use Dev wallet/ }).click();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('balance').waitFor();

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Buy credits' }).click();
    await page.getByRole('heading', { name: 'Buy credits' }).waitFor();
    await page.getByTestId('usdc-balance').filter({ hasText: '$20.00 USDC' }).waitFor();
    await page.getByTestId('gasless-note').filter({ hasText: 'From $1.00 USDC' }).waitFor();
    // Below the relay minimum: said, and the gasless button stays off.
    await page.getByLabel('Custom amount (USD)').fill('0.5');
    await page.getByText('Paying without gas needs at least $1.00 USDC.').waitFor();
    expect(await page.getByRole('button', { name: /without gas/ }).isDisabled()).toBe(true);

    await page.getByRole('button', { name: '$5', exact: true }).click();
    await page.screenshot({ path: screenshotPath('gasless-01-buy') });
    await page.getByRole('button', { name: 'Pay $5.00 USDC without gas' }).click();

    const tracker = page.getByTestId('payment-tracker');
    await tracker.getByText('Your payment (relayed, no gas)').waitFor();
    await tracker.getByText(`Pending 0/${CONFIRMATIONS} confirmations`).waitFor();
    await page.screenshot({ path: screenshotPath('gasless-02-pending') });
    await mineBlocks(platform.anvil.rpcUrl, 1);
    await tracker.getByText(`Pending 1/${CONFIRMATIONS} confirmations`).waitFor();
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS - 1);
    await tracker.getByText('5,000 credits are in your balance.').waitFor();
    expect(await page.getByTestId('nav-balance').textContent()).toBe('5,000 credits');
    await page.screenshot({ path: screenshotPath('gasless-03-credited') });

    // The wallet paid no gas: still no ETH, 5 USDC less.
    expect(await chain.getBalance({ address: payer.address })).toBe(0n);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(15_000_000n);
    expect(pageErrors).toEqual([]);
  });
});
