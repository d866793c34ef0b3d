/**
 * What a demanding user meets in the forms and with the keyboard, in headless Chromium against the real API
 * (in-process, a fresh PostgreSQL database, a real HTTP server speaking the indexer's contract, the API's own
 * dev model as the upstream): a value longer than the API takes is refused with a message, never cut
 * silently into another value; a number beyond what the API can hold gets a message naming the field, not
 * GraphQL's coercion error; each page names itself in the tab's title, on a deep link too; the secret shown
 * once takes the focus, and a confirmation moves the focus to its harmless choice and back; a long key name
 * wraps instead of pushing the key's Revoke out of sight.
 */
import { type RunningApi, startApi } from '@chainmeter/api/server';
import { testApiConfig } from '@chainmeter/api/testing/config';
import { type FakeIndexer, startFakeIndexer } from '@chainmeter/api/testing/fake-indexer';
import { gqlData } from '@chainmeter/api/testing/graphql';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshotIfFailed, screenshotPath, signInWithDevWallet } from './support.ts';

const CHAIN_ID = 31337;

describe('web client: forms and the keyboard (real API)', () => {
  let database: TestDatabase;
  let indexer: FakeIndexer;
  let api: RunningApi;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  /** What the signed-in account has, read from the API with the page's own session. */
  async function account(): Promise<Account> {
    const cookie = (await context.cookies()).find((c) => c.name === 'cm_session');
    if (!cookie) throw new Error('no session cookie');
    const { me } = await gqlData<{ me: Account }>(
      api.url,
      '{ me { lowBalanceThreshold apiKeys { name revokedAt } webhookEndpoints { url } } }',
      {},
      cookie.value,
    );
    return me;
  }

  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();

  /** Until the tab's title is `title`. */
  const titled = (title: string) =>
    page.waitForFunction((expected) => document.title === expected, title, { timeout: 10_000 });

  /** The element that has the focus: its tag, its accessible text or label, its test id. */
  const focused = () =>
    page.evaluate(() => {
      const element = document.activeElement as HTMLElement | null;
      return {
        tag: element?.tagName ?? '',
        text: (element?.textContent ?? '').trim(),
        testId: element?.getAttribute('data-testid') ?? null,
      };
    });

  beforeAll(async () => {
    await ensureWebBuild();
    database = await createTestDatabase('cm_web_forms_focus');
    indexer = await startFakeIndexer(CHAIN_ID);
    const port = await findFreePort();
    api = await startApi(
      testApiConfig({
        PORT: String(port),
        PUBLIC_ORIGIN: `http://127.0.0.1:${port}`,
        DATABASE_URL: database.url,
        INDEXER_URL: indexer.url,
        CONFIRMATIONS: '2',
        LOG_LEVEL: 'warn',
      }),
    );
    browser = await launchChromium();
    context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      permissions: ['clipboard-read', 'clipboard-write'],
    });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(20_000);
  }, 180_000);

  afterEach((testContext) => screenshotIfFailed(testContext, 'forms', page));

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await api?.close();
    await indexer?.close();
    await database?.drop();
  });

  it('names each page in the tab title, on a deep link and a reload too', async () => {
    await page.goto(api.url);
    await page.getByRole('heading', { name: 'Pay for AI with USDC' }).waitFor();
    await titled('Connect a wallet · ChainMeter');
    await signInWithDevWallet(page, api.url, 1);
    await titled('Dashboard · ChainMeter');
    for (const [link, title] of [
      ['Buy credits', 'Buy credits'],
      ['Ledger', 'Ledger'],
      ['Usage', 'Usage'],
      ['API keys', 'API keys'],
      ['Webhooks', 'Webhooks'],
      ['Playground', 'Playground'],
      ['Alerts', 'Alerts'],
      ['Dashboard', 'Dashboard'],
    ] as const) {
      await nav(link);
      await titled(`${title} · ChainMeter`);
    }
    // A deep link, reloaded: the server answers the client's route, and the page names it.
    const served = await page.goto(`${api.url}/webhooks`);
    expect(served?.status()).toBe(200);
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await titled('Webhooks · ChainMeter');
    await page.reload();
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await titled('Webhooks · ChainMeter');
    // A link typed or bookmarked with a trailing slash is the same page.
    await page.goto(`${api.url}/keys/`);
    await page.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
    await titled('API keys · ChainMeter');
    expect(new URL(page.url()).pathname).toBe('/keys');
    await page.goto(`${api.url}/no-such-page`);
    await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    await titled('Page not found · ChainMeter');
    expect(pageErrors).toEqual([]);
  });

  it('refuses a value longer than the API takes, with a message, never cutting it into another value', async () => {
    // A key name of 101 characters: the API takes 1 to 100.
    await page.goto(`${api.url}/keys`);
    const name = page.getByLabel('Name');
    await name.fill('n'.repeat(101));
    await page.getByRole('button', { name: 'Create key' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: 'The name is at most 100 characters; this one has 101.' })
      .waitFor();
    expect(await name.inputValue()).toBe('n'.repeat(101));
    expect(await page.getByTestId('secret-once').count()).toBe(0);

    // A pasted webhook URL of 2,049 characters (20 for "https://example.com/" and 2,029 more): the API
    // takes at most 2,048. Cut at 2,048 it would be another URL, saved as if it were this one.
    await nav('Webhooks');
    const pasted = `https://example.com/${'a'.repeat(2_029)}`;
    expect(pasted.length).toBe(2_049);
    const url = page.getByLabel('Endpoint URL');
    await url.focus();
    await page.keyboard.insertText(pasted);
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: 'The URL is at most 2,048 characters; this one has 2,049.' })
      .waitFor();
    expect(await url.inputValue()).toBe(pasted);
    expect(await page.getByTestId('webhook-secret-once').count()).toBe(0);

    // Nothing was created from a cut value.
    const me = await account();
    expect(me.apiKeys).toEqual([]);
    expect(me.webhookEndpoints).toEqual([]);
    await page.screenshot({ path: screenshotPath('forms-01-too-long') });
    expect(pageErrors).toEqual([]);
  });

  it("says a number is out of range in the field's own words, not GraphQL's", async () => {
    // The API keeps micro-USD in bigint columns: at most 2^63 - 1 = 9,223,372,036,854,775,807 micro-USD,
    // 9,223,372,036,854,775.807 credits. 10^16 credits is past it.
    const most = '9,223,372,036,854,775.807';
    await page.goto(`${api.url}/keys`);
    await page.getByLabel('Name').fill('too-large');
    await page.getByLabel('Spend limit (credits, optional)').fill('10000000000000000');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: `The spend limit is too large: at most ${most} credits.` })
      .waitFor();

    await nav('Alerts');
    await page.getByLabel('Alert below (credits)').fill('10000000000000000');
    await page.getByRole('button', { name: 'Save alert' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: `The threshold is too large: at most ${most} credits.` })
      .waitFor();

    // Max tokens past 32 bits (the API takes 1 to 1,000,000): the message is kept, the question too.
    await nav('Playground');
    await page.getByLabel('Max tokens').fill('9999999999');
    await page.getByLabel('Message').fill('Hi');
    await page.getByRole('button', { name: 'Send' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: 'Max tokens is a whole number from 1 to 1,000,000.' })
      .waitFor();
    expect(await page.getByLabel('Message').inputValue()).toBe('Hi');
    expect(await page.getByTestId('turn-user').count()).toBe(0);

    expect(await page.getByText(/Variable|cannot represent/).count()).toBe(0);
    const me = await account();
    expect(me.apiKeys.filter((key) => key.name === 'too-large')).toEqual([]);
    expect(me.lowBalanceThreshold).toBeNull();
    expect(pageErrors).toEqual([]);
  });

  it('keyboard only: a new key leaves the focus on its secret to copy; revoking focuses Cancel, then gives it back', async () => {
    await page.goto(`${api.url}/keys`);
    await page.getByLabel('Name').focus();
    await page.keyboard.type('keyboard');
    await page.keyboard.press('Enter');
    const secret = page.getByTestId('api-key-secret');
    await secret.waitFor();
    // The form that had the focus is gone: the secret has it, selected.
    expect(await focused()).toMatchObject({ tag: 'INPUT', testId: 'api-key-secret' });
    const value = await secret.inputValue();
    expect(value).toMatch(/^cm_/);
    expect(
      await secret.evaluate((input: HTMLInputElement) => [input.selectionStart, input.selectionEnd]),
    ).toEqual([0, value.length]);
    await page.keyboard.press('Tab');
    expect(await focused()).toMatchObject({ tag: 'BUTTON', text: 'Copy' });
    await page.keyboard.press('Enter');
    await page.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(value);
    await page.keyboard.press('Tab');
    expect(await focused()).toMatchObject({ tag: 'BUTTON', text: 'I have stored it' });
    await page.keyboard.press('Enter');
    await page.getByLabel('Name').waitFor();

    // Revoke asks first: the focus goes to Cancel, and Cancel gives it back to Revoke.
    const row = page.getByTestId('api-key-keyboard');
    await row.getByRole('button', { name: 'Revoke keyboard' }).focus();
    await page.keyboard.press('Enter');
    await row.getByRole('button', { name: 'Cancel' }).waitFor();
    expect(await focused()).toMatchObject({ tag: 'BUTTON', text: 'Cancel' });
    await page.keyboard.press('Enter');
    await row.getByRole('button', { name: 'Revoke keyboard' }).waitFor();
    expect(await focused()).toMatchObject({ tag: 'BUTTON', text: 'Revoke keyboard' });
    // Asked again, and confirmed from the keyboard.
    await page.keyboard.press('Enter');
    await row.getByRole('button', { name: 'Cancel' }).waitFor();
    await page.keyboard.press('Shift+Tab');
    expect(await focused()).toMatchObject({ tag: 'BUTTON', text: 'Revoke now' });
    await page.keyboard.press('Enter');
    await row.getByText('Revoked').waitFor();
    const me = await account();
    expect(me.apiKeys.filter((key) => key.name === 'keyboard')).toEqual([
      { name: 'keyboard', revokedAt: expect.any(String) },
    ]);
    await page.screenshot({ path: screenshotPath('forms-02-keyboard') });
    expect(pageErrors).toEqual([]);
  });

  it('a key with the longest name the API takes (100 characters, one word) keeps its Revoke on screen', async () => {
    const name = 'n'.repeat(100);
    await page.goto(`${api.url}/keys`);
    await page.getByLabel('Name').fill(name);
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByRole('button', { name: 'I have stored it' }).click();
    const revoke = page.getByTestId(`api-key-${name}`).getByRole('button', { name: `Revoke ${name}` });
    await revoke.waitFor();
    // The table fits its card (nothing to scroll sideways to), and Revoke is inside what the card shows.
    const wrap = page.locator('.table-wrap');
    const [visible, full] = await wrap.evaluate((element) => [element.clientWidth, element.scrollWidth]);
    expect(full).toBe(visible);
    const [button, shown] = [await revoke.boundingBox(), await wrap.boundingBox()];
    if (!button || !shown) throw new Error('no layout');
    expect(button.x + button.width).toBeLessThanOrEqual(shown.x + shown.width);
    await page.screenshot({ path: screenshotPath('forms-03-long-key-name') });
    expect(pageErrors).toEqual([]);
  });
});

interface Account {
  lowBalanceThreshold: string | null;
  apiKeys: { name: string; revokedAt: string | null }[];
  webhookEndpoints: { url: string }[];
}
