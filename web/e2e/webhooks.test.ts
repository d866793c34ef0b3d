/**
 * The Webhooks page in headless Chromium against the real API (in-process, on a fresh PostgreSQL database),
 * a real HTTP server speaking the indexer's contract that the test drives, and a real receiver that verifies
 * each request with `standardwebhooks`: add an endpoint and read its secret once, watch a deposit's delivery
 * fail, be retried and succeed (status, response code, latency), redeliver it, delete the endpoint.
 */
import { type RunningApi, startApi } from '@chainmeter/api/server';
import { testApiConfig } from '@chainmeter/api/testing/config';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from '@chainmeter/api/testing/fake-indexer';
import { startWebhookReceiver, type WebhookReceiver } from '@chainmeter/api/testing/webhook-receiver';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshotPath } from './support.ts';

const CHAIN_ID = 31337;

describe('web client: webhooks page (real API)', () => {
  let database: TestDatabase;
  let indexer: FakeIndexer;
  let api: RunningApi;
  let receiver: WebhookReceiver;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  const payer = devAccounts.payers[0]?.address as `0x${string}`;

  beforeAll(async () => {
    await ensureWebBuild();
    database = await createTestDatabase('cm_web_webhooks');
    indexer = await startFakeIndexer(CHAIN_ID);
    receiver = await startWebhookReceiver();
    const port = await findFreePort();
    api = await startApi(
      testApiConfig({
        PORT: String(port),
        PUBLIC_ORIGIN: `http://127.0.0.1:${port}`,
        DATABASE_URL: database.url,
        INDEXER_URL: indexer.url,
        CONFIRMATIONS: '2',
        CREDITING_POLL_MS: '50',
        WEBHOOK_POLL_MS: '50',
        WEBHOOK_RETRY_BASE_DELAY_MS: '300',
        LOG_LEVEL: 'warn',
      }),
    );
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(20_000);
    await page.goto(api.url);
    await page.getByRole('button', { name: /Use Dev wallet/ }).click();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('balance').waitFor();
  }, 180_000);

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && page) {
      await page.screenshot({
        path: screenshotPath(`webhooks-FAILED-${context.task.name.replace(/\W+/g, '-')}`),
      });
    }
  });

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await receiver?.close();
    await indexer?.close();
    await database?.drop();
  });

  it('adds an endpoint, shows its secret once, and shows a delivery retried until it succeeds', async () => {
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Webhooks', exact: true })
      .click();
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await page.getByText('No endpoints yet').waitFor();

    // A bad URL is refused by the API with its reason.
    await page.getByLabel('Endpoint URL').fill('https://user:secret@127.0.0.1/hook');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page.getByRole('alert').filter({ hasText: 'credentials' }).waitFor();

    await page.getByLabel('Endpoint URL').fill(receiver.url);
    await page.getByLabel(/Deposit pending/).check();
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const secret = await page.getByTestId('webhook-secret').inputValue();
    expect(secret).toMatch(/^whsec_/);
    receiver.secret = secret;
    await page.screenshot({ path: screenshotPath('webhooks-01-secret-once') });
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await expect(page.getByTestId('webhook-secret').count()).resolves.toBe(0);

    // The receiver fails its first request, then answers.
    receiver.answer = (index) => (index === 0 ? 500 : 200);
    const transfer = makeTransfer(CHAIN_ID, payer, 25_000_000n, 10n);
    indexer.transfers.push(transfer);
    indexer.setHead(12n);

    const row = page.getByTestId('webhook-delivery').filter({ hasText: 'deposit.credited' });
    await row.filter({ hasText: 'DELIVERED' }).waitFor();
    expect(await row.textContent()).toContain('200');
    expect(await row.getByRole('cell').nth(2).textContent()).toBe('2');
    expect(await row.getByRole('cell').nth(4).textContent()).toMatch(/^\d+ ms$/);
    expect(receiver.received.map((r) => r.status)).toEqual([500, 200]);
    expect(receiver.received.every((r) => r.verifyError === null)).toBe(true);
    expect(receiver.received[1]?.payload?.data).toMatchObject({ txHash: transfer.txHash, credits: '25000' });
    await page.screenshot({ path: screenshotPath('webhooks-02-deliveries'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await row.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath('webhooks-02-deliveries-phone') });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('redelivers a delivery and deletes the endpoint', async () => {
    const row = page.getByTestId('webhook-delivery').filter({ hasText: 'deposit.credited' });
    await row.getByRole('button', { name: /Redeliver/ }).click();
    await row.getByRole('cell').nth(2).filter({ hasText: '3' }).waitFor();
    await row.filter({ hasText: 'DELIVERED' }).waitFor();
    expect(receiver.received).toHaveLength(3);
    expect(receiver.received[2]?.id).toBe(receiver.received[1]?.id);

    await page.getByRole('button', { name: `Delete ${receiver.url}` }).click();
    await page.screenshot({ path: screenshotPath('webhooks-03-confirm-delete') });
    await page.getByRole('button', { name: 'Delete now' }).click();
    await page.getByText('No endpoints yet').waitFor();
    expect(pageErrors).toEqual([]);
  });
});
