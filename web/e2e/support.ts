/**
 * Support for the browser tests: headless Debian Chromium through playwright-core (no browser download).
 * The web build they load comes from `@chainmeter/testkit/web-build`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';

const WEB = fileURLToPath(new URL('..', import.meta.url));
const ROOT = path.resolve(WEB, '..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'web');

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export function screenshotPath(name: string): string {
  return path.join(ARTIFACTS, `${name}.png`);
}

/** Opens `url` in `page`, connects the dev wallet with anvil payer `index` (1-8) and signs in: the dashboard. */
export async function signInWithDevWallet(page: Page, url: string, index: number): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Account').selectOption(String(index));
  await page.getByRole('button', { name: /Use Dev wallet/ }).click();
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('balance').waitFor();
}

/** For `afterEach`: a screenshot of `page` named after the test, when the test failed. */
export async function screenshotIfFailed(
  context: { task: { name: string; result?: { state?: string } } },
  prefix: string,
  page: Page | undefined,
): Promise<void> {
  if (context.task.result?.state !== 'fail' || !page) return;
  await page.screenshot({
    path: screenshotPath(`${prefix}-FAILED-${context.task.name.replace(/\W+/g, '-')}`),
  });
}

/**
 * For `page.route` and response or request waits: the URL of the GraphQL query named `operation` as the
 * page sends it, a GET on /graphql (urql sends queries as GETs).
 */
export function isQuery(operation: string): (url: URL) => boolean {
  return (url) =>
    url.pathname === '/graphql' && (url.searchParams.get('query') ?? '').includes(`query ${operation} `);
}
