/**
 * Every start validates its configuration against the chain before serving, and refuses with a list of
 * exactly what is wrong: a real `node api/src/main.ts` against a real anvil node.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { deployTestUsdc } from '@chainmeter/testkit/token';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDevModelServer } from '../src/dev-model/dev-model.server.ts';
import { seedApiDataDir } from './support/pglite-template.ts';

const API_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
let anvil: Anvil;
let token: string;

beforeAll(async () => {
  anvil = await startAnvil();
  token = await deployTestUsdc(anvil.rpcUrl);
});

afterAll(async () => {
  await anvil?.stop();
});

/** A DATA_DIR of its own whose PGlite cluster is past initdb (a check, not initdb, is what is tested). */
async function dataDir(prefix: string): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  await seedApiDataDir(dir);
  return dir;
}

const startEnv = (env: Record<string, string>) => ({
  PATH: process.env.PATH,
  // The suite's compile cache (vitest.config.ts), when there is one: the same code, loaded faster.
  ...(process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {}),
  PORT: '0',
  RPC_URL: anvil.rpcUrl,
  CHAIN_ID: '31337',
  USDC_ADDRESS: token,
  TREASURY_ADDRESS: devAccounts.treasury.address,
  LOG_LEVEL: 'silent',
  ...env,
});

function start(env: Record<string, string>) {
  const result = spawnSync(process.execPath, [API_MAIN], {
    env: startEnv(env),
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

/** As `start`, without blocking this process (a server in it must answer the API while it starts). */
async function startAsync(env: Record<string, string>) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [API_MAIN], {
      env: startEnv(env),
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    return { code: failed.code, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

it('lists every malformed variable at once', () => {
  const { code, output } = start({ USDC_ADDRESS: '0x123', CONFIRMATIONS: '45', PRICE_MARKUP: 'abc' });
  expect(code).toBe(1);
  expect(output).toMatch(/refused to start/);
  expect(output).toMatch(/USDC_ADDRESS: must be an address/);
  expect(output).toMatch(/CONFIRMATIONS: must stay below Ponder's reorg window of 30/);
  expect(output).toMatch(/PRICE_MARKUP/);
  expect(output).not.toMatch(/\n\s+at /); // no stack trace
});

it('refuses the crash-test hook outside NODE_ENV=test', () => {
  for (const nodeEnv of ['production', 'development']) {
    const { code, output } = start({ NODE_ENV: nodeEnv, CHAINMETER_CRASH_AT: 'after-hold' });
    expect(code).toBe(1);
    expect(output).toMatch(
      /CHAINMETER_CRASH_AT: a test hook that kills the process, refused unless NODE_ENV=test/,
    );
  }
  expect(start({ NODE_ENV: 'test', CHAINMETER_CRASH_AT: 'sometimes' }).output).toMatch(/CHAINMETER_CRASH_AT/);
});

it('refuses an RPC that serves another chain', () => {
  const { code, output } = start({ CHAIN_ID: '8453' });
  expect(code).toBe(1);
  expect(output).toMatch(/serves chain 31337, but CHAIN_ID is 8453/);
});

it('refuses a token address with no contract', () => {
  const { code, output } = start({ USDC_ADDRESS: devAccounts.payers[0]?.address ?? '' });
  expect(code).toBe(1);
  expect(output).toMatch(/has no contract on chain 31337/);
});

it('refuses an RPC that does not answer', () => {
  const { code, output } = start({ RPC_URL: 'http://127.0.0.1:9' });
  expect(code).toBe(1);
  expect(output).toMatch(/does not answer/);
});

it('refuses a port that is already taken, saying so', async () => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const { code, output } = start({
      PORT: String(port),
      DATA_DIR: await dataDir('cm-port-'),
    });
    expect(code).toBe(1);
    expect(output).toMatch(new RegExp(`PORT: 127\\.0\\.0\\.1:${port} is already in use`));
    expect(output).not.toMatch(/\n\s+at /);
  } finally {
    blocker.close();
  }
});

it('refuses an LLM upstream that publishes no prices when LLM_PRICES is not set, saying so', async () => {
  // An OpenAI-compatible upstream that is not LiteLLM: no GET /model/info.
  const upstream = await startDevModelServer({ modelInfo: false });
  try {
    const { code, output } = await startAsync({
      LLM_BASE_URL: upstream.baseUrl,
      DATA_DIR: await dataDir('cm-prices-'),
    });
    expect(code).toBe(1);
    expect(output).toMatch(/refused to start/);
    expect(output).toMatch(
      new RegExp(`LLM_PRICES: required, because the upstream ${upstream.baseUrl} publishes no prices`),
    );
    expect(output).not.toMatch(/\n\s+at /); // no stack trace
  } finally {
    await upstream.stop();
  }
  const unreachable = await startAsync({ LLM_BASE_URL: 'http://127.0.0.1:9/v1' });
  expect(unreachable.code).toBe(1);
  expect(unreachable.output).toMatch(
    /LLM_BASE_URL: cannot read the prices of the upstream http:\/\/127\.0\.0\.1:9\/v1/,
  );
  expect(unreachable.output).not.toMatch(/\n\s+at /);
  const badTable = await startAsync({
    LLM_BASE_URL: 'http://127.0.0.1:9/v1',
    LLM_PRICES: '/nonexistent/prices.json',
  });
  expect(badTable.code).toBe(1);
  expect(badTable.output).toMatch(/LLM_PRICES: cannot read LLM_PRICES file \/nonexistent\/prices\.json/);
  expect(badTable.output).not.toMatch(/\n\s+at /);
});
