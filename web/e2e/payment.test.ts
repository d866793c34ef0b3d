/**
 * The web client end to end in headless Chromium against the real stack (anvil, Ponder, PostgreSQL,
 * the API serving the production build): connect the dev wallet, sign in with Ethereum, buy credits,
 * watch the deposit confirm and the balance move live without a reload, read the ledger.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devPayer, type Platform, startPlatform } from '../../api/test/support/platform.ts';
import { mineBlocks } from '../../scripts/src/devnet/anvil.ts';
import { findFreePort } from '../../scripts/src/devnet/ports.ts';
import { mintUsdc } from '../../scripts/src/devnet/token.ts';
import { ensureWebBuild, launchChromium, screenshotPath } from './support.ts';

const CONFIRMATIONS = 3;

describe('web client: payment journey in a real browser', () => {
  let platform: Platform;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    ensureWebBuild();
    platform = await startPlatform({ confirmations: CONFIRMATIONS });
    const port = await findFreePort();
    origin = `http://127.0.0.1:${port}`;
    await platform.startApi({ PORT: String(port), PUBLIC_ORIGIN: origin });
    await mintUsdc(platform.anvil.rpcUrl, platform.token, devPayer(0).address, 50_000_000n);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(20_000);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('signs in with the dev wallet, buys credits and sees them credited live', async () => {
    await page.goto(`${origin}/?rpc=${encodeURIComponent(platform.anvil.rpcUrl)}`);
    await page.getByRole('heading', { name: 'Pay for AI with USDC' }).waitFor();
    await page.screenshot({ path: screenshotPath('01-connect') });

    await page.getByLabel('Account').selectOption('1');
    await page.getByRole('button', { name: /Use Dev wallet/ }).click();
    await page.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    await page.screenshot({ path: screenshotPath('02-sign-in') });
    await page.getByRole('button', { name: 'Sign in' }).click();

    await page.getByTestId('balance').waitFor();
    expect(await page.getByTestId('balance').innerText()).toMatch(/^0\s*credits$/);
    await page.screenshot({ path: screenshotPath('03-dashboard-empty') });

    await navTo(page, 'Buy credits');
    await page.getByRole('heading', { name: 'Buy credits' }).waitFor();
    await page.getByTestId('usdc-balance').filter({ hasText: '$50.00 USDC' }).waitFor();
    // More than the wallet holds: a clear message, and nothing can be sent.
    await page.getByLabel('Custom amount (USD)').fill('75');
    await page.getByText('Your wallet holds too little USDC for this amount.').waitFor();
    expect(await page.getByRole('button', { name: /^Pay/ }).isDisabled()).toBe(true);
    await page.getByLabel('Custom amount (USD)').fill('0.0000001');
    await page.getByText('Use at most 6 decimals').waitFor();

    await page.getByRole('button', { name: '$10', exact: true }).click();
    expect(await page.getByTestId('quote-credits').innerText()).toBe('10,000 credits');
    await page.screenshot({ path: screenshotPath('04-buy') });
    await page.getByRole('button', { name: 'Pay $10.00 USDC' }).click();

    // automine: the transfer is in a block at once; each further block is one more confirmation.
    const tracker = page.getByTestId('payment-tracker');
    await tracker.getByText(`Pending 0/${CONFIRMATIONS} confirmations`).waitFor();
    await page.screenshot({ path: screenshotPath('05-pending') });
    await mineBlocks(platform.anvil.rpcUrl, 1);
    await tracker.getByText(`Pending 1/${CONFIRMATIONS} confirmations`).waitFor();
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS - 1);
    await tracker.getByText('10,000 credits are in your balance.').waitFor();
    expect(await page.getByTestId('nav-balance').innerText()).toBe('10,000 credits');
    await page.screenshot({ path: screenshotPath('06-credited') });

    await navTo(page, 'Dashboard');
    await page.getByTestId('balance').filter({ hasText: '10,000' }).waitFor();
    expect(await page.getByTestId('balance-usd').innerText()).toBe('$10.00');
    await page.getByRole('cell', { name: '+10,000' }).first().waitFor();
    await page.screenshot({ path: screenshotPath('07-dashboard') });

    await navTo(page, 'Ledger');
    await page.getByRole('heading', { name: 'Ledger' }).waitFor();
    await page.getByRole('cell', { name: 'Deposit' }).waitFor();
    await page.screenshot({ path: screenshotPath('08-ledger') });

    await page.setViewportSize({ width: 390, height: 844 });
    await navTo(page, 'Dashboard');
    await page.getByTestId('balance').waitFor();
    await page.screenshot({ path: screenshotPath('09-dashboard-phone'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 860 });

    // The session survives a reload (httpOnly cookie); signing out ends it.
    await page.reload();
    await page.getByTestId('balance').filter({ hasText: '10,000' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();

    expect(pageErrors).toEqual([]);
  });
});

async function navTo(page: Page, name: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
}
