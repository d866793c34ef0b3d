/**
 * The web client end to end in headless Chromium against the real stack (anvil, Ponder, PostgreSQL,
 * the API serving the production build): connect the dev wallet, sign in with Ethereum, buy credits,
 * watch the deposit confirm and the balance move live without a reload, read the ledger.
 */

import type { RunningApi } from '@chainmeter/api/server';
import { gqlData, signIn } from '@chainmeter/api/testing/graphql';
import { devPayer, type Platform, startPlatform } from '@chainmeter/api/testing/platform';
import { waitFor } from '@chainmeter/api/testing/wait-for';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import { findFreePort } from '@chainmeter/testkit/ports';
import { mintUsdc } from '@chainmeter/testkit/token';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isQuery, launchChromium, screenshotPath } from './support.ts';

const CONFIRMATIONS = 3;

describe('web client: payment journey in a real browser', () => {
  let platform: Platform;
  let api: RunningApi;
  let port: number;
  let browser: Browser;
  let page: Page;
  let origin: string;
  let exportHref: string | null = null;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    platform = await startPlatform({ confirmations: CONFIRMATIONS });
    port = await findFreePort();
    origin = `http://127.0.0.1:${port}`;
    api = await platform.startApi({ PORT: String(port), PUBLIC_ORIGIN: origin });
    await mintUsdc(platform.anvil.rpcUrl, platform.token, devPayer(0).address, 50_000_000n);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    // The API serves the page under its Content-Security-Policy: anything the policy blocks is recorded.
    await page.addInitScript(() => {
      const seen: string[] = [];
      (globalThis as { __cspViolations?: string[] }).__cspViolations = seen;
      document.addEventListener('securitypolicyviolation', (event) =>
        seen.push(`${event.effectiveDirective} blocked ${event.blockedURI}`),
      );
    });
    page.setDefaultTimeout(20_000);
  }, 180_000);

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && page) {
      await page.screenshot({
        path: screenshotPath(`real-FAILED-${context.task.name.replace(/\W+/g, '-')}`),
      });
    }
  });

  afterEach(async () => {
    const violations = await page.evaluate(
      () => (globalThis as { __cspViolations?: string[] }).__cspViolations ?? [],
    );
    expect(violations).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('signs in with the dev wallet, buys credits and sees them credited live', async () => {
    const served = await page.goto(`${origin}/?rpc=${encodeURIComponent(platform.anvil.rpcUrl)}`);
    // The page runs under the API's policy (api/src/http/security-headers.ts).
    expect(await served?.headerValue('content-security-policy')).toMatch(/script-src 'self';/);
    await page.getByRole('heading', { name: 'Pay for AI with USDC' }).waitFor();
    await page.screenshot({ path: screenshotPath('01-connect') });

    await page.getByLabel('Account').selectOption('1');
    await page.getByRole('button', { name: /Use Dev wallet/ }).click();
    await page.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    await page.screenshot({ path: screenshotPath('02-sign-in') });
    await page.getByRole('button', { name: 'Sign in' }).click();

    await page.getByTestId('balance').waitFor();
    expect(await page.getByTestId('balance').textContent()).toMatch(/^0\s*credits$/);
    await page.screenshot({ path: screenshotPath('03-dashboard-empty') });

    await navTo(page, 'Buy credits');
    await page.getByRole('heading', { name: 'Buy credits' }).waitFor();
    await page.getByTestId('usdc-balance').filter({ hasText: '$50.00 USDC' }).waitFor();
    // More than the wallet holds: a clear message, and nothing can be sent.
    await page.getByLabel('Custom amount (USD)').fill('75');
    await page.getByText('Your wallet holds too little USDC for this amount.').waitFor();
    // Neither the transfer nor the gasless top-up.
    const payButtons = page.getByRole('button', { name: /^Pay/ });
    expect(await payButtons.count()).toBe(2);
    for (const button of await payButtons.all()) expect(await button.isDisabled()).toBe(true);
    await page.getByLabel('Custom amount (USD)').fill('0.0000001');
    await page.getByText('Use at most 6 decimals').waitFor();

    await page.getByRole('button', { name: '$10', exact: true }).click();
    expect(await page.getByTestId('quote-credits').textContent()).toBe('10,000 credits');
    await page.screenshot({ path: screenshotPath('04-buy') });
    await page.getByRole('button', { name: 'Pay $10.00 USDC', exact: true }).click();

    // automine: the transfer is in a block at once; each further block is one more confirmation.
    const tracker = page.getByTestId('payment-tracker');
    await tracker.getByText(`Pending 0/${CONFIRMATIONS} confirmations`).waitFor();
    await page.screenshot({ path: screenshotPath('05-pending') });
    await mineBlocks(platform.anvil.rpcUrl, 1);
    await tracker.getByText(`Pending 1/${CONFIRMATIONS} confirmations`).waitFor();
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS - 1);
    await tracker.getByText('10,000 credits are in your balance.').waitFor();
    expect(await page.getByTestId('nav-balance').textContent()).toBe('10,000 credits');
    await page.screenshot({ path: screenshotPath('06-credited') });

    await navTo(page, 'Dashboard');
    await page.getByTestId('balance').filter({ hasText: '10,000' }).waitFor();
    expect(await page.getByTestId('balance-usd').textContent()).toBe('$10.00');
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

    expect(pageErrors).toEqual([]);
  });

  it('calls a model in the playground, sees usage, creates and revokes a key', async () => {
    await navTo(page, 'Playground');
    await page.getByRole('heading', { name: 'Playground' }).waitFor();
    await page.getByLabel('Message').fill('Say hello to ChainMeter.');
    await page.getByRole('button', { name: 'Send' }).click();
    const meta = page.getByTestId('completion-meta').first();
    await meta.waitFor({ timeout: 30_000 });
    expect(await meta.textContent()).toMatch(/\d+ in \+ \d+ out tokens · [\d.,]+ credits/);
    // The USAGE entry lowers the balance live.
    await page
      .getByTestId('nav-balance')
      .filter({ hasNotText: /^10,000 credits$/ })
      .waitFor();
    await page.screenshot({ path: screenshotPath('10-playground') });

    await navTo(page, 'Usage');
    await page
      .getByTestId('usage-table')
      .getByRole('cell', { name: /chainmeter|dev/ })
      .first()
      .waitFor();
    await page.screenshot({ path: screenshotPath('11-usage') });
    exportHref = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');

    await navTo(page, 'API keys');
    await page.getByLabel('Name').fill('e2e-key');
    await page.getByLabel('Spend limit (credits, optional)').fill('500');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByTestId('api-key-secret').inputValue();
    expect(secret).toMatch(/^cm_/);
    await page.getByTestId('api-key-e2e-key').waitFor();
    await page.screenshot({ path: screenshotPath('12-api-key-created') });
    await page.getByRole('button', { name: 'I have stored it' }).click();
    // Shown once: gone from the page, and not in the list.
    expect(await page.getByTestId('api-key-secret').count()).toBe(0);
    expect(await page.content()).not.toContain(secret);

    const row = page.getByTestId('api-key-e2e-key');
    await row.getByRole('button', { name: 'Revoke e2e-key' }).click();
    await row.getByRole('button', { name: 'Revoke now' }).click();
    await row.getByText('Revoked').waitFor();
    await page.screenshot({ path: screenshotPath('13-api-key-revoked') });
    // The revoked key no longer authenticates.
    const denied = await fetch(`${origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      body: JSON.stringify({ query: '{ me { id } }' }),
    }).then((response) => response.json() as Promise<{ data?: { me: unknown }; errors?: unknown[] }>);
    expect(denied.data?.me ?? null).toBeNull();
    expect(pageErrors).toEqual([]);
  });

  // Page JavaScript never holds the session token: the export link works through the httpOnly cookie.
  it('downloads the usage export with the session cookie', async () => {
    expect(exportHref).toMatch(/^\/v1\/usage\/export\?format=csv&from=.+&to=.+/);
    const csv = await page.request.get(`${origin}${exportHref}`);
    expect(csv.status()).toBe(200);
    expect(await csv.text()).toMatch(/chainmeter-dev/);
  });

  it('keeps the session over a reload (httpOnly cookie) and signs out', async () => {
    await page.reload();
    // Still signed in: the navigation (only shown to a signed-in wallet) comes back by itself.
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await navTo(page, 'Dashboard');
    await page.getByTestId('balance').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    expect(pageErrors).toEqual([]);
  });

  it('shows a payment mined and credited while the live streams were down once they are back', async () => {
    const payer = devPayer(1);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 20_000_000n);
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(20_000);
    await page.goto(`${origin}/?rpc=${encodeURIComponent(platform.anvil.rpcUrl)}`);
    await page.getByLabel('Account').selectOption('2');
    await page.getByRole('button', { name: /Use Dev wallet/ }).click();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByTestId('balance')
      .filter({ hasText: /^0\s*credits$/ })
      .waitFor();
    await navTo(page, 'Buy credits');
    await page.getByTestId('usdc-balance').filter({ hasText: '$20.00 USDC' }).waitFor();

    // The streams drop, and the page cannot open them again until the test lets its probe through: the
    // deposit is never told live, neither pending nor credited.
    let away = true;
    await page.route(isQuery('LiveCatchUp'), (route) =>
      away ? route.abort('connectionrefused') : route.fallback(),
    );
    await api.close();
    await page.getByTestId('reconnecting').waitFor();
    api = await platform.startApi({ PORT: String(port), PUBLIC_ORIGIN: origin });

    await page.getByRole('button', { name: '$5', exact: true }).click();
    await page.getByRole('button', { name: 'Pay $5.00 USDC', exact: true }).click();
    const tracker = page.getByTestId('payment-tracker');
    await tracker.getByText(/mined in block/).waitFor();
    await mineBlocks(platform.anvil.rpcUrl, CONFIRMATIONS);
    const token = await signIn(origin, payer, platform.chainId);
    await waitFor(
      'the payment credited',
      async () => {
        const { me } = await gqlData<{ me: { balance: string } }>(origin, '{ me { balance } }', {}, token);
        return me.balance === '5000';
      },
      30_000,
    );
    expect(await tracker.getAttribute('data-step')).toBe('sent');

    // Back: the catch-up brings the balance ($5 = 5,000 credits) and, in the same answer, the payment's
    // deposit, credited.
    away = false;
    await page
      .getByTestId('nav-balance')
      .filter({ hasText: /^5,000 credits$/ })
      .waitFor();
    expect(await tracker.getAttribute('data-step')).toBe('credited');
    await tracker.getByText('5,000 credits are in your balance.').waitFor();
    await page.getByTestId('reconnecting').waitFor({ state: 'detached' });
    await page.screenshot({ path: screenshotPath('14-credited-while-away') });
    expect(pageErrors).toEqual([]);
  });
});

async function navTo(page: Page, name: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
}
