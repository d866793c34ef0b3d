/**
 * The balance the web client shows is never wrong or silently stale, in headless Chromium against the real
 * API (in-process, a fresh PostgreSQL database, a real HTTP server speaking the indexer's contract, the
 * API's own dev model as the upstream): the API goes away while money moves and comes back; the session
 * ends behind the page's back (revoked server-side, signed out in another tab); amounts at the edges
 * (one micro-USD, over a million USDC, a debt after a deep reorg) are shown digit for digit; what the page
 * reads (to catch up after a reconnection, after a playground completion) never replaces a newer live figure.
 */
import { type RunningApi, startApi } from '@chainmeter/api/server';
import { testApiConfig } from '@chainmeter/api/testing/config';
import { type FakeIndexer, makeTransfer, startFakeIndexer } from '@chainmeter/api/testing/fake-indexer';
import { gqlData, signIn } from '@chainmeter/api/testing/graphql';
import { sample, scrape } from '@chainmeter/api/testing/prometheus';
import { waitFor } from '@chainmeter/api/testing/wait-for';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import type { Browser, BrowserContext, Page, Route } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  isQuery,
  launchChromium,
  screenshotIfFailed,
  screenshotPath,
  signInWithDevWallet,
} from './support.ts';

const CHAIN_ID = 31337;
const CONFIRMATIONS = 2;

/** `"1234567.5"` -> `"1,234,567.5"`, written here apart from the client's formatter. */
function grouped(decimal: string): string {
  const [whole = '', fraction] = decimal.replace(/^-/, '').split('.');
  const groups: string[] = [];
  for (let end = whole.length; end > 0; end -= 3) groups.unshift(whole.slice(Math.max(0, end - 3), end));
  return `${decimal.startsWith('-') ? '-' : ''}${groups.join(',')}${fraction ? `.${fraction}` : ''}`;
}

/** Micro-USD as a Credits string (1 credit = 1,000 micro-USD), no trailing zeros: `-1500n` -> `"-1.5"`. */
function microToCredits(micro: bigint): string {
  const size = micro < 0n ? -micro : micro;
  const fraction = String(size % 1000n)
    .padStart(3, '0')
    .replace(/0+$/, '');
  return `${micro < 0n ? '-' : ''}${size / 1000n}${fraction ? `.${fraction}` : ''}`;
}

/** A Credits string (1 credit = 1,000 micro-USD) as micro-USD. */
function creditsToMicro(credits: string): bigint {
  const [whole = '0', fraction = ''] = credits.split('.');
  return BigInt(whole) * 1000n + BigInt(fraction.padEnd(3, '0').slice(0, 3));
}

describe('web client: a balance never wrong or silently stale (real API)', () => {
  let database: TestDatabase;
  let indexer: FakeIndexer;
  let port: number;
  let api: RunningApi;
  let browser: Browser;
  let page: Page;
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];
  let block = 0n;

  /** An API on `listenPort` over the shared database and indexer, or over `platform`'s. */
  const startApiOn = (
    listenPort: number,
    platform: { database: TestDatabase; indexer: FakeIndexer } = { database, indexer },
    extra: Record<string, string> = {},
  ) =>
    startApi(
      testApiConfig({
        PORT: String(listenPort),
        PUBLIC_ORIGIN: `http://127.0.0.1:${listenPort}`,
        DATABASE_URL: platform.database.url,
        INDEXER_URL: platform.indexer.url,
        CONFIRMATIONS: String(CONFIRMATIONS),
        CREDITING_POLL_MS: '100',
        SOLVENCY_SNAPSHOT_MS: '0',
        LOG_LEVEL: 'warn',
        ...extra,
      }),
    );

  /** A transfer of `value` micro-USD from `from`, mined in `on` (the shared fake indexer by default). */
  function mine(from: `0x${string}`, value: bigint, on = indexer) {
    block += 1n;
    const transfer = makeTransfer(CHAIN_ID, from, value, block);
    on.transfers.push(transfer);
    on.setHead(block);
    return transfer;
  }

  /** A transfer of `value` micro-USD from `from`, mined and confirmed in `on`. */
  function pay(from: `0x${string}`, value: bigint, on = indexer) {
    const transfer = mine(from, value, on);
    block += BigInt(CONFIRMATIONS);
    on.setHead(block);
    return transfer;
  }

  /** The balance `token`'s account has on `apiUrl`, once it satisfies `ready`. */
  async function balanceWhen(apiUrl: string, token: string, ready: (me: Me) => boolean): Promise<Me> {
    const me = await waitFor(
      'the balance',
      async () => {
        const { me } = await gqlData<{ me: Me }>(apiUrl, '{ me { balance debt } }', {}, token);
        return ready(me) ? me : null;
      },
      20_000,
    );
    if (!me) throw new Error('no balance');
    return me;
  }

  /** One call to the dev model, charged to `token`'s account. */
  async function callModel(apiUrl: string, token: string): Promise<void> {
    const response = await fetch(`${apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'chainmeter-dev',
        messages: [{ role: 'user', content: 'Say hello.' }],
        max_tokens: 16,
      }),
    });
    expect(response.status).toBe(200);
  }

  /**
   * A platform of its own (database, indexer, an API on `listenPort` with `extra`): its API's gauge counts
   * one page's streams only, and its crediting publishes to them (without Redis, events stay in the API that
   * wrote the entry).
   */
  async function ownPlatform(name: string, listenPort: number, extra: Record<string, string> = {}) {
    const own = { database: await createTestDatabase(name), indexer: await startFakeIndexer(CHAIN_ID) };
    return { ...own, api: await startApiOn(listenPort, own, extra) };
  }

  /** Until `apiUrl` (started with METRICS_CACHE_MS=0) has one subscription on each of `channels`. */
  async function streamsListening(apiUrl: string, channels: string[]): Promise<void> {
    await waitFor(
      'the streams listening',
      async () => {
        const metrics = await scrape(apiUrl);
        return channels.every(
          (channel) => sample(metrics, 'chainmeter_graphql_live_subscriptions', { channel }) === 1,
        );
      },
      20_000,
    );
  }

  /** A fresh browser context signed in with dev payer `index` (1-8) on the dashboard of `apiUrl`. */
  async function signedInPage(index: number, apiUrl = api.url): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    const opened = await context.newPage();
    opened.on('pageerror', (error) => pageErrors.push(String(error)));
    opened.setDefaultTimeout(20_000);
    await signInWithDevWallet(opened, apiUrl, index);
    return opened;
  }

  const balanceText = (credits: string) =>
    new RegExp(`^${grouped(credits).replace(/\./g, '\\.')}\\s*credits$`);

  beforeAll(async () => {
    await ensureWebBuild();
    database = await createTestDatabase('cm_web_live_session');
    indexer = await startFakeIndexer(CHAIN_ID);
    port = await findFreePort();
    api = await startApiOn(port);
    browser = await launchChromium();
  }, 180_000);

  afterEach((context) => screenshotIfFailed(context, 'live-session', page));

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await api?.close();
    await indexer?.close();
    await database?.drop();
  });

  it('says it is reconnecting while the API is away, and shows what happened meanwhile once back', async () => {
    const payer = devAccounts.payers[0];
    if (!payer) throw new Error('no dev payer');
    page = await signedInPage(1);
    pay(payer.address, 2_000_000n);
    await page
      .getByTestId('balance')
      .filter({ hasText: balanceText('2000') })
      .waitFor();

    // A deposit the page sees pending (mined, no confirmation yet) when the API leaves.
    const pending = mine(payer.address, 3_000_000n);
    const tracked = page.getByTestId(`deposit-${pending.txHash}`);
    await tracked.getByText(`Pending 0/${CONFIRMATIONS} confirmations`).waitFor();

    await api.close();
    await page.getByTestId('reconnecting').waitFor();

    // Money moves on another replica of the API while this page's one is away: its events never reach
    // the page (subscriptions have no replay).
    const otherPort = await findFreePort();
    const other = await startApiOn(otherPort);
    try {
      const token = await signIn(other.url, payer, CHAIN_ID);
      block += BigInt(CONFIRMATIONS);
      indexer.setHead(block);
      await balanceWhen(other.url, token, (me) => me.balance === '5000');
      await callModel(other.url, token);
      const after = await balanceWhen(other.url, token, (me) => me.balance !== '5000');
      expect(creditsToMicro(after.balance)).toBeLessThan(5_000_000n);
      await other.close();

      // Still reconnecting: nothing it showed is presented as current.
      expect(await page.getByTestId('reconnecting').count()).toBe(1);
      api = await startApiOn(port);
      await page
        .getByTestId('balance')
        .filter({ hasText: balanceText(after.balance) })
        .waitFor();
      expect(await page.getByTestId('nav-balance').textContent()).toBe(`${grouped(after.balance)} credits`);
      await page.getByTestId('reconnecting').waitFor({ state: 'detached' });
      // The deposit it showed pending is credited, not left pending forever.
      await tracked.getByText(/^Credited/).waitFor();
      expect(await tracked.getByText(/Pending/).count()).toBe(0);
      // The recent activity missed while away is there too: the call's USAGE entry.
      await page.getByRole('cell', { name: 'Usage' }).first().waitFor();
      await page.screenshot({ path: screenshotPath('live-01-reconnected') });

      // Live again: a new deposit moves the balance without a reload.
      pay(payer.address, 1_000_000n);
      const latest = await balanceWhen(api.url, token, (me) => me.balance !== after.balance);
      await page
        .getByTestId('balance')
        .filter({ hasText: balanceText(latest.balance) })
        .waitFor();
    } finally {
      await other.close().catch(() => {});
    }
    expect(pageErrors).toEqual([]);
  });

  it('while the API is away, a dashboard it cannot read says so, never "nothing yet", and fills in once back', async () => {
    const payer = devAccounts.payers[0];
    if (!payer) throw new Error('no dev payer');
    // The account has activity: a deposit, on the ledger. A reload there: this client has never read the
    // dashboard.
    pay(payer.address, 1_000_000n);
    page = await signedInPage(1);
    await page.goto(`${api.url}/ledger`);
    await page.getByRole('cell', { name: 'Deposit' }).first().waitFor();
    await api.close();
    try {
      await page.getByTestId('reconnecting').waitFor();
      await page
        .getByRole('navigation', { name: 'Main' })
        .getByRole('link', { name: 'Dashboard', exact: true })
        .click();
      const activity = page.getByRole('region', { name: 'Recent activity' });
      await activity.getByRole('alert').filter({ hasText: 'could not be reached' }).waitFor();
      expect(await page.getByText(/Nothing yet/).count()).toBe(0);
      await page.screenshot({ path: screenshotPath('live-11-dashboard-unreachable') });
    } finally {
      api = await startApiOn(port);
    }
    const activity = page.getByRole('region', { name: 'Recent activity' });
    await activity.getByRole('cell', { name: 'Deposit' }).first().waitFor();
    await page.getByTestId('reconnecting').waitFor({ state: 'detached' });
    expect(await activity.getByRole('alert').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('keeps a live balance and deposit state newer than what its catch-up read after a reconnection', async () => {
    const payer = devAccounts.payers[7];
    if (!payer) throw new Error('no dev payer');
    const ownPort = await findFreePort();
    const own = await ownPlatform('cm_web_live_catchup', ownPort);
    let ownApi = own.api;
    // The catch-up's answer, read for real and held in the browser until the test lets it through.
    let read: () => void = () => {};
    const catchUpRead = new Promise<void>((resolve) => {
      read = resolve;
    });
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      page = await signedInPage(8, ownApi.url);
      pay(payer.address, 2_000_000n, own.indexer);
      await page
        .getByTestId('balance')
        .filter({ hasText: balanceText('2000') })
        .waitFor();
      const pending = mine(payer.address, 3_000_000n, own.indexer);
      const tracked = page.getByTestId(`deposit-${pending.txHash}`);
      await tracked.getByText(`Pending 0/${CONFIRMATIONS} confirmations`).waitFor();

      // Once the API is back, the page reads LiveCatchUp twice: its probe (answered at once), then the
      // catch-up (held). Reads while the API is away fail as they would.
      let answered = 0;
      await page.route(isQuery('LiveCatchUp'), async (route: Route) => {
        const response = await route.fetch().catch(() => null);
        if (!response) return route.abort('connectionrefused');
        answered += 1;
        if (answered > 1) {
          read();
          await released;
        }
        await route.fulfill({ response });
      });
      await ownApi.close();
      await page.getByTestId('reconnecting').waitFor();
      ownApi = await startApiOn(ownPort, own, { METRICS_CACHE_MS: '0' });
      await within(catchUpRead, 20_000, 'the catch-up read');
      // Its answer is read: 2,000 credits, the deposit pending. The new streams listen on the API before the
      // deposit's confirmations come.
      await streamsListening(ownApi.url, ['balanceUpdated', 'depositUpdated']);
      const liveRefetch = page.waitForResponse((response) => isQuery('Dashboard')(new URL(response.url())));
      block += BigInt(CONFIRMATIONS);
      own.indexer.setHead(block);
      // Live: 2,000 + 3,000 credits, the deposit credited.
      await page
        .getByTestId('balance')
        .filter({ hasText: balanceText('5000') })
        .waitFor();
      await tracked.getByText(/^Credited/).waitFor();
      await liveRefetch;

      // The catch-up's older answer lands: the page takes it (its version moves, the dashboard refetches)
      // and keeps the newer live figures.
      const catchUpRefetch = page.waitForRequest((request) => isQuery('Dashboard')(new URL(request.url())));
      release();
      await catchUpRefetch;
      expect(await page.getByTestId('balance').textContent()).toMatch(balanceText('5000'));
      expect(await page.getByTestId('nav-balance').textContent()).toBe('5,000 credits');
      expect(await tracked.getAttribute('data-status')).toBe('CREDITED');
      expect(answered).toBe(2);
      await page.screenshot({ path: screenshotPath('live-08-catch-up-older-than-live') });
    } finally {
      release();
      await ownApi.close().catch(() => {});
      await own.indexer.close();
      await own.database.drop();
    }
    expect(pageErrors).toEqual([]);
  });

  it('keeps a live balance newer than what the playground read after a completion', async () => {
    const payer = devAccounts.payers[7];
    if (!payer) throw new Error('no dev payer');
    const own = await ownPlatform('cm_web_live_playground', await findFreePort(), { METRICS_CACHE_MS: '0' });
    // The balance read after the completion, answered for real and held in the browser until let through.
    let heldAnswer: unknown = null;
    let read: () => void = () => {};
    const balanceRead = new Promise<void>((resolve) => {
      read = resolve;
    });
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      page = await signedInPage(8, own.api.url);
      pay(payer.address, 2_000_000n, own.indexer);
      await page
        .getByTestId('balance')
        .filter({ hasText: balanceText('2000') })
        .waitFor();
      await streamsListening(own.api.url, ['balanceUpdated']);

      let answered = 0;
      await page.route(isQuery('PlaygroundBalance'), async (route: Route) => {
        const response = await route.fetch();
        answered += 1;
        heldAnswer = await response.json();
        read();
        await released;
        await route.fulfill({ response });
      });
      await page
        .getByRole('navigation', { name: 'Main' })
        .getByRole('link', { name: 'Playground', exact: true })
        .click();
      await page.getByLabel('Max tokens').fill('1');
      await page.getByLabel('Message').fill('Hi');
      await page.getByRole('button', { name: 'Send' }).click();
      // Prompt: 3 + (4 + 1 token, "Hi") = 8 tokens, reply: 1 token ("Echo"). At $0.15 and $0.60 per million:
      // $0.0000018, 2 micro-USD rounded up, 4 with the markup of 2: 0.004 credits.
      await page
        .getByTestId('completion-meta')
        .filter({ hasText: '8 in + 1 out tokens · 0.004 credits' })
        .waitFor();
      await within(balanceRead, 20_000, 'the balance read after the completion');
      // Read once the charge was durable: 2,000 - 0.004 credits. Live, the USAGE entry says the same.
      expect(heldAnswer).toMatchObject({ data: { me: { balance: '1999.996' } } });
      const nav = page.getByTestId('nav-balance');
      await nav.filter({ hasText: /^1,999\.996 credits$/ }).waitFor();

      // A deposit credited while the read is held: live, 1,999.996 + 3,000 credits.
      pay(payer.address, 3_000_000n, own.indexer);
      await nav.filter({ hasText: /^4,999\.996 credits$/ }).waitFor();
      const chat = page.locator('.chat');
      expect(await chat.getAttribute('aria-busy')).toBe('true');

      // The read's older answer lands: the chat is no longer busy once the page has handled it, and the
      // newer live figure stays.
      release();
      await page.locator('.chat[aria-busy="false"]').waitFor();
      expect(await nav.textContent()).toBe('4,999.996 credits');
      expect(answered).toBe(1);
      await page.screenshot({ path: screenshotPath('live-09-playground-read-older-than-live') });
    } finally {
      release();
      await own.api.close();
      await own.indexer.close();
      await own.database.drop();
    }
    expect(pageErrors).toEqual([]);
  });

  it('shows a session revoked server-side as signed out, with a clear message', async () => {
    page = await signedInPage(2);
    // The page's own session, signed out by another client (the cookie is httpOnly: only the test reads it).
    const cookie = (await page.context().cookies()).find((c) => c.name === 'cm_session');
    if (!cookie) throw new Error('no session cookie');
    const { signOut } = await gqlData<{ signOut: boolean }>(
      api.url,
      'mutation { signOut }',
      {},
      cookie.value,
    );
    expect(signOut).toBe(true);
    // The next request the page makes finds no session: opening another page makes one (the page may
    // learn it sooner, from its live streams, and then there is no navigation left to click).
    const ended = page.getByTestId('session-ended').filter({ hasText: /session has ended/ });
    await Promise.race([
      ended.waitFor(),
      page
        .getByRole('navigation', { name: 'Main' })
        .getByRole('link', { name: 'Ledger', exact: true })
        .click()
        .then(() => ended.waitFor()),
    ]);
    await page.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    expect(await page.getByTestId('balance').count()).toBe(0);
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    expect(
      await page
        .getByRole('alert')
        .filter({ hasText: /error|unexpected/i })
        .count(),
    ).toBe(0);
    await page.screenshot({ path: screenshotPath('live-02-session-revoked') });
    expect(pageErrors).toEqual([]);
  });

  it('signs out every tab when one signs out', async () => {
    const first = await signedInPage(3);
    const context = first.context();
    const second = await context.newPage();
    second.on('pageerror', (error) => pageErrors.push(String(error)));
    second.setDefaultTimeout(20_000);
    await second.goto(api.url);
    await second.getByTestId('balance').waitFor();
    page = second;

    await first.getByRole('button', { name: 'Sign out' }).click();
    await first.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    // The other tab makes no request in the meantime: the first tells it, and it says so.
    await second
      .getByTestId('session-ended')
      .filter({ hasText: /signed out in another tab/ })
      .waitFor();
    await second.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    expect(await second.getByTestId('balance').count()).toBe(0);
    await second.screenshot({ path: screenshotPath('live-03-other-tab-signed-out') });
    expect(pageErrors).toEqual([]);
  });

  it('a tab whose session another tab replaced with another account says so, and shows none of its data', async () => {
    const [mine, theirs] = [devAccounts.payers[2], devAccounts.payers[1]];
    if (!mine || !theirs) throw new Error('dev payers missing');
    pay(theirs.address, 9_000_000n);
    const first = await signedInPage(3);
    const second = await first.context().newPage();
    second.on('pageerror', (error) => pageErrors.push(String(error)));
    second.setDefaultTimeout(20_000);
    await second.goto(api.url);
    await second.getByTestId('balance').waitFor();
    page = first;

    // The other tab signs out, and its wallet signs in with another account: the browser's one session
    // cookie now holds that account.
    await second.getByRole('button', { name: 'Sign out' }).click();
    await second.getByRole('button', { name: 'Disconnect' }).click();
    await second.getByLabel('Account').selectOption('2');
    await second.getByRole('button', { name: /Use Dev wallet/ }).click();
    await second.getByRole('button', { name: 'Sign in' }).click();
    await second
      .getByTestId('balance')
      .filter({ hasText: balanceText('9000') })
      .waitFor();

    // This tab's wallet still uses its own account: it asks to sign in, says which account the browser is
    // signed in as and what signing in here does, and shows nothing of that account's.
    const short = (address: string) => `${address.slice(0, 6)}…${address.slice(-4)}`;
    await first
      .getByTestId('other-account')
      .filter({
        hasText:
          `This browser is signed in as ${short(theirs.address)}, not as ${short(mine.address)}, the ` +
          `account your wallet uses here. Signing in here ends the session of ${short(theirs.address)} in every tab.`,
      })
      .waitFor();
    expect(await first.getByTestId('balance').count()).toBe(0);
    expect(await first.getByTestId('nav-balance').count()).toBe(0);
    expect(await first.getByText('9,000').count()).toBe(0);
    await first.screenshot({ path: screenshotPath('live-10-other-tab-other-account') });
    expect(pageErrors).toEqual([]);
  });

  it("never shows one wallet account's balance under another: switching asks to sign in, disconnecting signs out", async () => {
    const [first, second] = [devAccounts.payers[5], devAccounts.payers[6]];
    if (!first || !second) throw new Error('dev payers missing');
    pay(first.address, 7_000_000n);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    // A browser wallet speaking EIP-1193 (window.ethereum), signing in Node with the account it holds.
    await context.exposeFunction('__walletSign', async (message: `0x${string}`, address: string) => {
      const signer = [first, second].find((a) => a.address.toLowerCase() === address.toLowerCase());
      if (!signer) throw new Error(`the wallet holds no ${address}`);
      return signer.signMessage({ message: { raw: message } });
    });
    await context.addInitScript((initial: string) => {
      type Listener = (value: unknown) => void;
      const listeners = new Map<string, Set<Listener>>();
      // Like a real wallet: no account is exposed until the page asks for one.
      let accounts: string[] = [];
      const emit = (event: string, value: unknown) => {
        for (const listener of listeners.get(event) ?? []) listener(value);
      };
      const sign = (globalThis as unknown as { __walletSign(m: string, a: string): Promise<string> })
        .__walletSign;
      Object.assign(globalThis, {
        ethereum: {
          async request({ method, params }: { method: string; params?: unknown[] }) {
            switch (method) {
              case 'eth_requestAccounts':
                if (accounts.length === 0) accounts = [initial];
                return accounts;
              case 'eth_accounts':
                return accounts;
              case 'eth_chainId':
                return '0x7a69';
              case 'wallet_requestPermissions':
                return [{ parentCapability: 'eth_accounts' }];
              case 'wallet_revokePermissions':
                return null;
              case 'personal_sign':
                return sign(String(params?.[0]), String(params?.[1]));
              default:
                throw Object.assign(new Error(`${method} is not supported`), { code: 4200 });
            }
          },
          on(event: string, listener: Listener) {
            listeners.set(event, (listeners.get(event) ?? new Set()).add(listener));
          },
          removeListener(event: string, listener: Listener) {
            listeners.get(event)?.delete(listener);
          },
        },
        __walletUse(address: string | null) {
          accounts = address ? [address] : [];
          emit('accountsChanged', accounts);
        },
      });
    }, first.address);
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(20_000);
    await page.goto(api.url);
    await page.getByRole('button', { name: 'Browser wallet' }).click();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByTestId('balance')
      .filter({ hasText: balanceText('7000') })
      .waitFor();

    const use = (address: string | null) =>
      page.evaluate(
        (next) => (globalThis as unknown as { __walletUse(a: string | null): void }).__walletUse(next),
        address,
      );
    await use(second.address);
    await page.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    expect(await page.getByTestId('balance').count()).toBe(0);
    expect(await page.getByTestId('nav-balance').count()).toBe(0);
    expect(await page.getByText('7,000').count()).toBe(0);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByTestId('balance')
      .filter({ hasText: /^0\s*credits$/ })
      .waitFor();
    await page.getByText('Nothing yet: your first deposit will show here.').waitFor();
    await page.screenshot({ path: screenshotPath('live-06-switched-account') });

    // The wallet disconnects: the session ends with it, and connecting the same account again asks for a
    // signature (the wallet reconnects by itself once it exposes an account).
    await use(null);
    await page.getByRole('heading', { name: 'Pay for AI with USDC' }).waitFor();
    expect(await page.getByTestId('balance').count()).toBe(0);
    await use(second.address);
    await page.getByRole('heading', { name: 'Sign in with Ethereum' }).waitFor();
    expect(await page.getByTestId('balance').count()).toBe(0);
    await page
      .getByTestId('session-ended')
      .filter({ hasText: /wallet disconnected/ })
      .waitFor();
    await page.screenshot({ path: screenshotPath('live-07-wallet-reconnected') });
    expect(pageErrors).toEqual([]);
  });

  it('shows one micro-USD, over a million USDC and a debt digit for digit', async () => {
    const small = devAccounts.payers[3];
    const indebted = devAccounts.payers[4];
    if (!small || !indebted) throw new Error('dev payers missing');

    // 0.000001 USDC, then 1,234,567.891010 more: 1,234,567.891011 USDC in all.
    pay(small.address, 1n);
    page = await signedInPage(4);
    await page
      .getByTestId('balance')
      .filter({ hasText: /^0\.001\s*credits$/ })
      .waitFor();
    expect(await page.getByTestId('balance-usd').textContent()).toBe('$0.000001');
    expect(await page.getByTestId('nav-balance').textContent()).toBe('0.001 credits');
    pay(small.address, 1_234_567_891_010n);
    await page
      .getByTestId('balance')
      .filter({ hasText: /^1,234,567,891\.011\s*credits$/ })
      .waitFor();
    expect(await page.getByTestId('balance-usd').textContent()).toBe('$1,234,567.891011');
    expect(await page.getByTestId('nav-balance').textContent()).toBe('1,234,567,891.011 credits');
    await page.screenshot({ path: screenshotPath('live-04-large-balance') });

    // A debt: 1 USDC credited, part of it spent, then the deposit reorged out deeper than CONFIRMATIONS.
    const token = await signIn(api.url, indebted, CHAIN_ID);
    const deposit = pay(indebted.address, 1_000_000n);
    await balanceWhen(api.url, token, (me) => me.balance === '1000');
    await callModel(api.url, token);
    const spent = await balanceWhen(api.url, token, (me) => me.balance !== '1000');
    const owed = 1_000_000n - creditsToMicro(spent.balance);
    indexer.transfers.splice(indexer.transfers.indexOf(deposit), 1);
    block += 1n;
    indexer.setHead(block);
    const afterReorg = await balanceWhen(api.url, token, (me) => me.debt !== '0');
    expect(creditsToMicro(afterReorg.debt)).toBe(owed);
    expect(afterReorg.balance).toBe('0');

    page = await signedInPage(5);
    const owedCredits = microToCredits(owed);
    const owedUsd = `$0.${String(owed).padStart(6, '0').replace(/0+$/, '').padEnd(2, '0')}`;
    const debt = page.getByTestId('debt');
    await debt.waitFor();
    expect(await debt.textContent()).toContain(`You owe ${grouped(owedCredits)} credits (${owedUsd})`);
    expect(await page.getByTestId('balance').textContent()).toMatch(/^0\s*credits$/);
    // The ledger's reversal is the deposit's amount minus what was spent, signed.
    const reversed = 1_000_000n - owed;
    const reversedCredits = microToCredits(-reversed);
    await page
      .getByRole('cell', { name: grouped(reversedCredits), exact: true })
      .first()
      .waitFor();
    await page.screenshot({ path: screenshotPath('live-05-debt') });
    expect(pageErrors).toEqual([]);
  });
});

interface Me {
  balance: string;
  debt: string;
}

/** `promise`, or a failure naming `what` after `timeoutMs`. */
async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
