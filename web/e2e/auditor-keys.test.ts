/**
 * Auditor keys from the API keys page, in headless Chromium against the real API (in-process, on a fresh
 * PostgreSQL database, a real HTTP server speaking the indexer's contract): a wallet without the auditor role
 * sees no scope choice; an auditor's wallet chooses the scope (its own account by default), and the secret it
 * is shown once really reads every account's records through the API, as the audit CLI does with it; when the
 * wallet loses the role while the form is open (the API restarted without it in AUDITOR_ADDRESSES), the
 * API's refusal is shown in its own words and the page carries on.
 */
import { type RunningApi, startApi } from '@chainmeter/api/server';
import { testApiConfig } from '@chainmeter/api/testing/config';
import { type FakeIndexer, startFakeIndexer } from '@chainmeter/api/testing/fake-indexer';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshotIfFailed, screenshotPath, signInWithDevWallet } from './support.ts';

const CHAIN_ID = 31337;
const [AUDITOR, USER] = devAccounts.payers;
if (!AUDITOR || !USER) throw new Error('two dev payers are needed');

/** What the audit CLI reads first with its key: every account, auditors only. */
const AUDIT_ACCOUNTS = '{ audit { accounts(first: 10) { edges { node { walletAddress } } } } }';

interface GraphqlAnswer {
  data?: { audit?: { accounts: { edges: { node: { walletAddress: string } }[] } } } | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

describe('web client: auditor keys on the API keys page (real API)', () => {
  let database: TestDatabase;
  let indexer: FakeIndexer;
  let port: number;
  let api: RunningApi;
  let browser: Browser;
  let page: Page;
  /** The AUDITOR key's secret, as the page showed it once. */
  let auditorSecret = '';
  const pageErrors: string[] = [];

  /** The API on `port` over the test's database, with `auditors` as AUDITOR_ADDRESSES. */
  const startApiWith = (auditors: string) =>
    startApi(
      testApiConfig({
        PORT: String(port),
        PUBLIC_ORIGIN: `http://127.0.0.1:${port}`,
        DATABASE_URL: database.url,
        INDEXER_URL: indexer.url,
        CONFIRMATIONS: '2',
        AUDITOR_ADDRESSES: auditors,
        SOLVENCY_SNAPSHOT_MS: '0',
        LOG_LEVEL: 'warn',
      }),
    );

  /** A fresh browser context signed in with dev payer `index` (its own localStorage and cookie). */
  async function signedInPage(index: number): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const opened = await context.newPage();
    opened.on('pageerror', (error) => pageErrors.push(String(error)));
    opened.setDefaultTimeout(20_000);
    await signInWithDevWallet(opened, api.url, index);
    await opened
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'API keys', exact: true })
      .click();
    await opened.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
    return opened;
  }

  /** Creates a key through the form (the scope chosen first, if given) and returns the secret shown once. */
  async function createKey(name: string, scope?: RegExp): Promise<string> {
    await page.getByLabel('Name').fill(name);
    if (scope) await page.getByRole('radio', { name: scope }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByTestId('api-key-secret').inputValue();
    expect(secret).toMatch(/^cm_/);
    return secret;
  }

  const auditWith = async (secret: string): Promise<GraphqlAnswer> => {
    const response = await fetch(`${api.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      body: JSON.stringify({ query: AUDIT_ACCOUNTS }),
    });
    return (await response.json()) as GraphqlAnswer;
  };

  beforeAll(async () => {
    await ensureWebBuild();
    database = await createTestDatabase('cm_web_auditor_keys');
    indexer = await startFakeIndexer(CHAIN_ID);
    port = await findFreePort();
    api = await startApiWith(AUDITOR.address);
    browser = await launchChromium();
  }, 180_000);

  afterEach((context) => screenshotIfFailed(context, 'auditor-keys', page));

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await indexer?.close();
    await database?.drop();
  });

  it('a wallet without the auditor role sees no scope, neither to choose nor in the list', async () => {
    page = await signedInPage(USER.index);
    await page.getByText('No keys yet').waitFor();
    expect(await page.getByRole('radio').count()).toBe(0);
    expect(await page.getByText('Scope', { exact: true }).count()).toBe(0);
    const secret = await createKey('backend');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await page.getByTestId('api-key-backend').waitFor();
    expect(await page.getByRole('columnheader', { name: 'Scope' }).count()).toBe(0);
    expect(await page.getByTestId('key-scope').count()).toBe(0);
    // What the page made is an ordinary key: the auditors' query is refused to it.
    expect((await auditWith(secret)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it("an auditor chooses the scope; the AUDITOR key's secret reads every account through the API", async () => {
    page = await signedInPage(AUDITOR.index);
    const choice = page.getByRole('group', { name: 'Scope' });
    await choice.waitFor();
    // The account's own scope unless the auditor asks for more.
    expect(await choice.getByRole('radio', { name: 'This account only' }).isChecked()).toBe(true);
    expect(
      await choice.getByRole('radio', { name: /^Auditor: read every account's records/ }).isChecked(),
    ).toBe(false);
    await page.screenshot({ path: screenshotPath('auditor-keys-01-scope-choice'), fullPage: true });

    const plain = await createKey('integration');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    const secret = await createKey('audit-cli', /^Auditor: read every account's records/);
    auditorSecret = secret;
    // The auditor key's warning says how the audit CLI takes it.
    expect(await page.getByTestId('secret-once').textContent()).toContain(`--api ${api.url} --key`);
    await page.screenshot({ path: screenshotPath('auditor-keys-02-secret-once'), fullPage: true });
    await page.getByRole('button', { name: 'I have stored it' }).click();

    // The list marks the AUDITOR key; the form is back on the account's own scope.
    await page.getByTestId('api-key-audit-cli').waitFor();
    expect(await page.getByRole('columnheader', { name: 'Scope' }).count()).toBe(1);
    expect(await page.getByTestId('api-key-audit-cli').getByTestId('key-scope').textContent()).toMatch(
      /^Auditor\s*every account, read-only$/,
    );
    expect(await page.getByTestId('api-key-integration').getByTestId('key-scope').textContent()).toBe(
      'This account',
    );
    expect(await page.getByRole('radio', { name: 'This account only' }).isChecked()).toBe(true);
    await page.screenshot({ path: screenshotPath('auditor-keys-03-list'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    expect(
      await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
    ).toBeLessThanOrEqual(0);
    await page.screenshot({ path: screenshotPath('auditor-keys-03-list-phone'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    // The secret shown once is an auditor key: it reads every account, the other wallet's included.
    const answer = await auditWith(secret);
    expect(answer.errors).toBeUndefined();
    const wallets = answer.data?.audit?.accounts.edges.map((edge) => edge.node.walletAddress) ?? [];
    expect(wallets.sort()).toEqual([AUDITOR.address, USER.address].sort());
    // The default scope made an ordinary key, even for an auditor.
    expect((await auditWith(plain)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(pageErrors).toEqual([]);
  });

  it('the role lost while the form is open: the API refuses, the page says why, the key is powerless', async () => {
    // Still on the auditor's page with the choice shown; the API comes back without the role.
    await page.getByRole('group', { name: 'Scope' }).waitFor();
    await api.close();
    api = await startApiWith('');
    await page.getByLabel('Name').fill('audit-late');
    await page.getByRole('radio', { name: /^Auditor: read every account's records/ }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: 'Only a wallet with the auditor role may create an AUDITOR key' })
      .waitFor();
    await page.screenshot({ path: screenshotPath('auditor-keys-04-refused'), fullPage: true });
    expect(await page.getByTestId('api-key-audit-late').count()).toBe(0);

    // Afresh: no choice any more; the old AUDITOR key is still marked, and said to read its own account only.
    await page.reload();
    await page.getByTestId('api-key-audit-cli').waitFor();
    expect(await page.getByRole('radio').count()).toBe(0);
    expect(await page.getByTestId('api-key-audit-cli').getByTestId('key-scope').textContent()).toMatch(
      /^Auditor\s*own account only: your wallet lost the auditor role$/,
    );
    expect((await auditWith(auditorSecret)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(pageErrors).toEqual([]);
  });
});
