/**
 * Keys with budgets, the low-balance alert and auto top-up in headless Chromium against the fake API
 * (typed by the real schema): each screen's flow and its screenshots.
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeApi, startFakeApi } from './fake-api.ts';
import { launchChromium, screenshotPath } from './support.ts';

describe('web client: budgets, alerts and auto top-up (fake API)', () => {
  let api: FakeApi;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    ensureWebBuild();
    api = await startFakeApi(devAccounts.payers[0]?.address ?? '');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(15_000);
    await page.goto(api.url);
    await page.getByRole('button', { name: /Use Dev wallet/ }).click();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('balance').waitFor();
  }, 120_000);

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && page) {
      await page.screenshot({
        path: screenshotPath(`budgets-FAILED-${context.task.name.replace(/\W+/g, '-')}`),
      });
    }
  });

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    expect(pageErrors).toEqual([]);
  });

  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();

  it('API keys: a daily budget limited to one model', async () => {
    await nav('API keys');
    await page.getByText('No keys yet').waitFor();
    await page.getByLabel('Name').fill('nightly-agent');
    await page.getByLabel('Limit resets').selectOption('DAILY');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText('A reset needs a spend limit to reset.').waitFor();
    await page.getByLabel('Spend limit (credits, optional)').fill('5');
    await page.getByLabel('Allowed models (optional)').fill('chainmeter-dev, chainmeter-dev ,');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByTestId('api-key-secret').waitFor();
    await page.getByRole('button', { name: 'I have stored it' }).click();
    const row = page.getByTestId('api-key-nightly-agent');
    expect(await row.getByTestId('key-spent').innerText()).toMatch(/^0 \/ 5 per day\s+0 in all$/);
    expect(await row.getByTestId('key-models').innerText()).toBe('chainmeter-dev');
    await page.getByLabel('Name').fill('open');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByRole('button', { name: 'I have stored it' }).click();
    expect(await page.getByTestId('api-key-open').getByTestId('key-models').innerText()).toBe('Any');
    await page.screenshot({ path: screenshotPath('budgets-01-api-keys'), fullPage: true });
  });

  it('low-balance alert: a threshold above the balance shows the banner on every page; off hides it', async () => {
    await nav('Alerts & top-up');
    await page.getByTestId('alert-status').getByText('No alert is set.').waitFor();
    expect(await page.getByTestId('low-balance-banner').count()).toBe(0);
    await page.getByLabel('Alert below (credits)').fill('0');
    await page.getByRole('button', { name: 'Save alert' }).click();
    await page.getByText('The threshold must be more than zero.').waitFor();
    // The fake account holds 10,000 credits.
    await page.getByLabel('Alert below (credits)').fill('12500');
    await page.getByRole('button', { name: 'Save alert' }).click();
    await page.getByTestId('alert-status').getByText('Alert set below 12,500 credits.').waitFor();
    const banner = page.getByTestId('low-balance-banner');
    await banner.waitFor();
    expect(await banner.innerText()).toContain(
      '10,000 credits, is below your alert threshold of 12,500 credits',
    );
    await page.screenshot({ path: screenshotPath('budgets-02-low-balance-alert'), fullPage: true });
    await nav('Usage');
    await banner.waitFor();
    await banner.getByRole('link', { name: 'Alert settings' }).click();
    await page.getByRole('button', { name: 'Turn off' }).click();
    await page.getByTestId('alert-status').getByText('The alert is off.').waitFor();
    await banner.waitFor({ state: 'detached' });
    await page.getByLabel('Alert below (credits)').fill('500');
    await page.getByRole('button', { name: 'Save alert' }).click();
    await page.getByTestId('alert-status').getByText('Alert set below 500 credits.').waitFor();
    expect(await banner.count()).toBe(0);
  });
});
