/**
 * The metering pages (playground, usage, API keys) in headless Chromium against a fake API typed by
 * the same schema: each page's flow, its states, and screenshots at desktop and phone width.
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeApi, startFakeApi } from './fake-api.ts';
import { launchChromium, screenshotPath } from './support.ts';

describe('web client: metering pages (fake API)', () => {
  let api: FakeApi;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    api = await startFakeApi(devAccounts.payers[0]?.address ?? '');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (m) => {
      if (m.type() === 'error') console.log('console:', m.text());
    });
    page.setDefaultTimeout(15_000);
    await page.goto(api.url);
    await page.getByRole('button', { name: /Use Dev wallet/ }).click();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('balance').waitFor();
  }, 120_000);

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && page) {
      await page.screenshot({
        path: screenshotPath(`fake-FAILED-${context.task.name.replace(/\W+/g, '-')}`),
      });
    }
  });

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();

  it('playground: an answer with its tokens and price', async () => {
    await nav('Playground');
    await page.getByLabel('Model').selectOption('chainmeter-dev-large');
    await page.getByLabel('Message').fill('Hello there');
    await page.getByLabel('Message').press('Control+Enter');
    const meta = page.getByTestId('completion-meta');
    await meta.waitFor();
    expect(await meta.textContent()).toContain('12 in + 34 out tokens · 2.468 credits ($0.002468)');
    expect(await page.getByTestId('chat-cost').textContent()).toBe('This chat: 2.468 credits');
    await page.screenshot({ path: screenshotPath('fake-01-playground') });
  });

  it('usage: rows, filters, charts and export links', async () => {
    await nav('Usage');
    const table = page.getByTestId('usage-table');
    await table.waitFor();
    expect(await table.locator('tbody tr').count()).toBe(4);
    await page.getByLabel('Model').selectOption('chainmeter-dev-large');
    await page.waitForFunction(
      () => document.querySelectorAll('[data-testid=usage-table] tbody tr').length === 2,
    );
    const csv = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
    expect(csv).toMatch(/^\/v1\/usage\/export\?format=csv&from=.+&to=.+/);
    await page.getByLabel('Model').selectOption('');
    await page.screenshot({ path: screenshotPath('fake-02-usage'), fullPage: true });
    // The range is whole UTC days, the last one included; a start after the end is said, not sent.
    const exportHref = () => page.getByRole('link', { name: 'Export JSON' }).getAttribute('href');
    await page.getByLabel('From').fill('2026-03-10');
    await page.getByLabel('To').fill('2026-03-09');
    await page.getByText('The start day must not be after the end day.').waitFor();
    await page.getByLabel('To').fill('2026-03-12');
    await page.getByText('The start day must not be after the end day.').waitFor({ state: 'detached' });
    expect(await exportHref()).toBe(
      '/v1/usage/export?format=json&from=2026-03-10T00%3A00%3A00.000Z&to=2026-03-13T00%3A00%3A00.000Z',
    );
  });

  it('API keys: create, secret once with a warning, revoke with confirmation', async () => {
    await nav('API keys');
    await page.getByText('No keys yet').waitFor();
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText('Give the key a name.').waitFor();
    await page.getByLabel('Name').fill('ci-bot');
    await page.getByLabel('Spend limit (credits, optional)').fill('1.2345');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText('at most 3 decimals').waitFor();
    await page.getByLabel('Spend limit (credits, optional)').fill('250');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByTestId('api-key-secret').inputValue();
    expect(secret).toMatch(/^cm_fake1_secret_/);
    await page.getByText('It is shown only once').waitFor();
    await page.screenshot({ path: screenshotPath('fake-03-key-created') });
    await page.getByRole('button', { name: 'I have stored it' }).click();
    expect(await page.content()).not.toContain(secret);

    const row = page.getByTestId('api-key-ci-bot');
    await row.getByRole('button', { name: 'Revoke ci-bot' }).click();
    await row.getByRole('button', { name: 'Cancel' }).click();
    await row.getByRole('button', { name: 'Revoke ci-bot' }).click();
    await page.screenshot({ path: screenshotPath('fake-04-key-confirm-revoke') });
    await row.getByRole('button', { name: 'Revoke now' }).click();
    await row.getByText('Revoked').waitFor();
    expect(await row.getByRole('button').count()).toBe(0);
  });

  it('dashboard: what the account owes after a deep reorg, said plainly, and nothing when it owes nothing', async () => {
    await nav('Dashboard');
    await page.getByTestId('balance').waitFor();
    expect(await page.getByTestId('debt').count()).toBe(0);
    api.setDebt(1_234_500n); // micro-USD: 1,234.5 credits, $1.2345
    await page.reload();
    const notice = page.getByTestId('debt');
    await notice.waitFor();
    const text = await notice.innerText();
    expect(text).toContain('1,234.5 credits');
    expect(text).toContain('$1.2345');
    expect(text).toMatch(/next credits pay this first/);
    await page.screenshot({ path: screenshotPath('fake-dashboard-debt') });
    api.setDebt(0n);
    await page.reload();
    await page.getByTestId('balance').waitFor();
    expect(await page.getByTestId('debt').count()).toBe(0);
  });

  it('works at phone width', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [name, shot] of [
      ['Usage', 'fake-05-usage-phone'],
      ['API keys', 'fake-06-keys-phone'],
      ['Playground', 'fake-07-playground-phone'],
    ] as const) {
      await nav(name);
      await page.getByRole('heading', { name, level: 1 }).waitFor();
      await page.screenshot({ path: screenshotPath(shot), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${name} scrolls sideways at phone width`).toBeLessThanOrEqual(0);
    }
    expect(pageErrors).toEqual([]);
  });
});
