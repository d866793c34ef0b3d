/**
 * Keys with budgets, the low-balance alert and auto top-up in headless Chromium against the fake API
 * (typed by the real schema): each screen's flow and its screenshots.
 */

import { usdcAuthorizationAbi } from '@chainmeter/schema';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { deployTestUsdc, mintUsdc, usdcBalance } from '@chainmeter/testkit/token';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, Page } from 'playwright-core';
import { type Address, createPublicClient, createWalletClient, type Hex, http } from 'viem';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeApi, startFakeApi } from './fake-api.ts';
import { launchChromium, screenshotPath } from './support.ts';

const WALLET = (devAccounts.payers[0]?.address ?? '') as Address;
const TREASURY = '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720' as Address; // the fake API's

describe('web client: budgets, alerts and auto top-up (fake API)', () => {
  let api: FakeApi;
  let anvil: Anvil;
  let token: Address;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    // A real chain for what the wallet reads and sends (the token's EIP-712 domain, cancelAuthorization).
    anvil = await startAnvil({ chainId: 31337 });
    token = await deployTestUsdc(anvil.rpcUrl);
    api = await startFakeApi(WALLET, 31337, { tokenAddress: token });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(15_000);
    await page.goto(`${api.url}/?rpc=${encodeURIComponent(anvil.rpcUrl)}`);
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
    await anvil?.stop();
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
    await nav('Alerts');
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

  it('auto top-up: sign N authorizations the token accepts, see it paused, cancel and cancel on chain', async () => {
    await nav('Alerts');
    const form = page.getByTestId('auto-top-up-form');
    await form.waitFor();
    await form.getByLabel('Top up below (credits)').fill('1000');
    await form.getByLabel('Amount each (USDC)').fill('2.5');
    await form.getByLabel('How many').fill('3');
    await form.getByRole('button', { name: 'Sign 3 authorizations' }).click();
    const status = page.getByTestId('auto-top-up-status');
    // Three EIP-712 signatures in the page, then the fake API checks each against the token on anvil: a
    // few seconds here, several times that on a loaded 2-core machine.
    await status
      .getByText('On: below 1,000 credits, the next of 3 stored authorizations is submitted.')
      .waitFor({ timeout: 60_000 });
    await page.screenshot({ path: screenshotPath('budgets-03-auto-top-up-on'), fullPage: true });

    const stored = api.autoTopUpAuthorizations();
    expect(stored).toHaveLength(3);
    expect(new Set(stored.map((a) => a.nonce)).size).toBe(3);
    for (const a of stored) {
      expect(a).toMatchObject({ from: WALLET, to: TREASURY, value: '2500000', validAfter: '0' });
      expect(Number(a.validBefore)).toBeGreaterThan(Date.now() / 1000 + 29 * 86_400);
    }
    // The first one is what the relayer would submit: the token accepts it (anyone may send it).
    await mintUsdc(anvil.rpcUrl, token, WALLET, 10_000_000n);
    const first = stored[0] as Record<string, string>;
    const submitter = createWalletClient({ account: devAccounts.deployer, transport: http(anvil.rpcUrl) });
    const chain = createPublicClient({ transport: http(anvil.rpcUrl) });
    const hash = await submitter.writeContract({
      chain: null,
      address: token,
      abi: usdcAuthorizationAbi,
      functionName: 'transferWithAuthorization',
      args: [
        WALLET,
        TREASURY,
        2_500_000n,
        0n,
        BigInt(first.validBefore as string),
        first.nonce as Hex,
        first.signature as Hex,
      ],
    });
    expect((await chain.waitForTransactionReceipt({ hash })).status).toBe('success');
    expect(await usdcBalance(anvil.rpcUrl, token, TREASURY)).toBe(2_500_000n);

    // A failed submission pauses it: said plainly, and the form is back to resume.
    api.pauseAutoTopUp('INSUFFICIENT_FUNDS');
    await page.reload();
    await status.getByText('Paused: the last submission failed (INSUFFICIENT_FUNDS)').waitFor();
    await form.waitFor();
    await page.screenshot({ path: screenshotPath('budgets-04-auto-top-up-paused'), fullPage: true });

    // Cancel: the platform's copies are deleted; the two unused ones are also cancelled on chain.
    await status.getByRole('button', { name: 'Cancel auto top-up' }).click();
    const onChain = page.getByTestId('cancel-on-chain');
    await onChain.getByText('deleted its 2 unused authorizations').waitFor();
    await onChain.getByRole('button', { name: 'Cancel on chain too' }).click();
    await onChain.getByText('All 2 cancelled on chain.').waitFor({ timeout: 30_000 });
    for (const a of stored.slice(1)) {
      expect(
        await chain.readContract({
          address: token,
          abi: usdcAuthorizationAbi,
          functionName: 'authorizationState',
          args: [WALLET, a.nonce as Hex],
        }),
      ).toBe(true);
    }
    await page.screenshot({ path: screenshotPath('budgets-05-auto-top-up-cancelled'), fullPage: true });
    expect(await status.count()).toBe(0);
  }, 120_000);
});
