/**
 * The Operations section in headless Chromium against the fake API: hidden from a wallet that is not an
 * operator; for an operator, solvency with its plot, the review queue (a refusal shown in the API's own
 * words, a bill, a waiver), a balance adjustment and revenue; screenshots at desktop and phone width.
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeApi, startFakeApi } from './fake-api.ts';
import { type FakeOperations, fakeOperations } from './fake-operations.ts';
import { launchChromium, screenshotPath } from './support.ts';

const WALLET = devAccounts.payers[0]?.address ?? '';

async function signedInPage(browser: Browser, api: FakeApi, width = 1280): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  page.setDefaultTimeout(15_000);
  await page.goto(api.url);
  await page.getByRole('button', { name: /Use Dev wallet/ }).click();
  const signIn = page.getByRole('button', { name: 'Sign in' });
  const balance = page.getByTestId('balance');
  // The fake API keeps one session: a second page of the same API finds it signed in already.
  await signIn.or(balance).first().waitFor();
  if (await signIn.isVisible()) await signIn.click();
  await balance.waitFor();
  return page;
}

describe('web client: the Operations section (fake API)', () => {
  let browser: Browser;
  let operatorApi: FakeApi;
  let userApi: FakeApi;
  let ops: FakeOperations;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    ops = fakeOperations(true);
    operatorApi = await startFakeApi(WALLET, 31337, { extraResolvers: ops.resolvers });
    userApi = await startFakeApi(WALLET, 31337, { extraResolvers: fakeOperations(false).resolvers });
    browser = await launchChromium();
  }, 120_000);

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && page) {
      await page.screenshot({ path: screenshotPath(`ops-FAILED-${context.task.name.replace(/\W+/g, '-')}`) });
    }
  });

  afterAll(async () => {
    await browser?.close();
    await operatorApi?.close();
    await userApi?.close();
  });

  it('is neither linked nor shown to a wallet that is not an operator', async () => {
    page = await signedInPage(browser, userApi);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Usage', exact: true }).waitFor();
    expect(await nav.getByRole('link', { name: 'Operations' }).count()).toBe(0);
    await page.goto(`${userApi.url}/operations`);
    await page.getByTestId('operations-refused').waitFor();
    expect(await page.getByTestId('operations-refused').textContent()).toContain('Operators only');
    await page.close();
  });

  it('shows an operator solvency with its plot, the queue, adjustments and revenue', async () => {
    page = await signedInPage(browser, operatorApi);
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Operations' }).click();
    const figures = page.getByTestId('solvency-figures');
    await figures.waitFor();
    const text = await figures.textContent();
    expect(text).toContain('Treasury on chain74,500');
    expect(text).toContain('Outstanding credits51,876.482');
    expect(await page.getByTestId('solvency-status').textContent()).toContain('Covered: treasury 143.6% of');
    // Two series over the 12 snapshots and the figures now.
    expect(await page.locator('.line-chart polyline').count()).toBe(2);
    expect(await page.locator('.line-chart circle').count()).toBe(26);
    const queue = page.getByTestId('review-queue');
    expect(await queue.locator('li.review-item').count()).toBe(2);
    await page.screenshot({ path: screenshotPath('ops-01-operations'), fullPage: true });

    // Bill without a reason: refused here; at a price the account cannot pay: the API's reason, shown as is.
    const first = page.getByTestId('review-0f8d2a44-1111-4c55-9d0e-2b1f7a3c9e11');
    await first.getByRole('button', { name: 'Bill' }).click();
    await first.getByText('Give a reason').waitFor();
    await first.getByLabel('Price to bill (credits)').fill('970000');
    await first.getByLabel('Reason').fill('Priced from the invoice');
    await first.getByRole('button', { name: 'Bill' }).click();
    await first.getByText('can spend 120500 micro-USD').waitFor();
    await page.screenshot({ path: screenshotPath('ops-02-refused-bill') });
    // At the provider's cost: resolved, and gone from the queue.
    await first.getByLabel('Price to bill (credits)').fill('33.156');
    await first.getByRole('button', { name: 'Bill' }).click();
    await page.waitForFunction(() => document.querySelectorAll('li.review-item').length === 1);
    const second = page.getByTestId('review-0f8d2a44-2222-4c55-9d0e-2b1f7a3c9e11');
    await second.getByLabel('Reason').fill('Model retired mid-call: goodwill');
    await second.getByRole('button', { name: 'Waive' }).click();
    await page.getByText('Nothing to review.').waitFor();
    expect(ops.actions.filter((a) => a.kind === 'resolveUsage').map((a) => a.input)).toEqual([
      {
        id: '0f8d2a44-1111-4c55-9d0e-2b1f7a3c9e11',
        action: 'BILL',
        price: '970000',
        reason: 'Priced from the invoice',
      },
      {
        id: '0f8d2a44-1111-4c55-9d0e-2b1f7a3c9e11',
        action: 'BILL',
        price: '33.156',
        reason: 'Priced from the invoice',
      },
      {
        id: '0f8d2a44-2222-4c55-9d0e-2b1f7a3c9e11',
        action: 'WAIVE',
        price: null,
        reason: 'Model retired mid-call: goodwill',
      },
    ]);

    // Adjust a balance: a bad wallet caught here, a debit above what can be spent refused with the API's reason.
    const form = page.getByRole('form', { name: 'Adjust a balance' });
    await form.getByLabel('Wallet').fill('0x123');
    await form.getByLabel('Amount (credits, signed)').fill('25');
    await form.getByLabel('Reason').fill('Refund for the outage of Dec 1');
    await form.getByRole('button', { name: 'Adjust balance' }).click();
    await form.getByText('The wallet is an address').waitFor();
    await form.getByLabel('Wallet').fill('0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC');
    await form.getByLabel('Amount (credits, signed)').fill('-250');
    await form.getByRole('button', { name: 'Adjust balance' }).click();
    await form.getByText('held by calls in flight 0').waitFor();
    await form.getByLabel('Amount (credits, signed)').fill('25');
    await form.getByRole('button', { name: 'Adjust balance' }).click();
    await form.getByText('Adjusted by 25 credits; the balance is now 125.').waitFor();
    expect(ops.actions.at(-1)).toEqual({
      kind: 'adjustBalance',
      input: {
        wallet: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC',
        amount: '25',
        reason: 'Refund for the outage of Dec 1',
      },
    });

    // Revenue: by model with exact totals.
    const byModel = page.getByTestId('revenue-by-model');
    const total = await byModel.locator('tfoot tr').textContent();
    expect(total).toContain('1838');
    expect(total).toContain('22,648.518');
    expect(total).toContain('11,348.415');
    expect(total).toContain('11,300.103');
    await page.screenshot({ path: screenshotPath('ops-03-operations-after'), fullPage: true });
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('fits a phone screen', async () => {
    page = await signedInPage(browser, operatorApi, 390);
    await page.goto(`${operatorApi.url}/operations`);
    await page.getByTestId('solvency-figures').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: screenshotPath('ops-04-operations-phone'), fullPage: true });
    await page
      .locator('section', { has: page.getByTestId('solvency-figures') })
      .screenshot({ path: screenshotPath('ops-05-solvency-phone') });
    await page
      .locator('section', { has: page.getByTestId('revenue-by-model') })
      .screenshot({ path: screenshotPath('ops-06-revenue-phone') });
    await page.close();
  });
});
