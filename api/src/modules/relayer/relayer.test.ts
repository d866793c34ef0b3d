import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { pino } from 'pino';
import { createPublicClient, createTestClient, type Hex, http, parseEther } from 'viem';
import { generatePrivateKey, mnemonicToAccount, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample } from '../../../test/support/prometheus.ts';
import { waitFor } from '../../../test/support/wait-for.ts';
import { ConfigError, loadConfig } from '../../env.ts';
import { createAppMetrics } from '../../observability/metrics.ts';
import { RelayRefusedError, relayPayment } from './relay-payment.service.ts';
import { createRelayer, sendWithFreshNonce, startGasBalanceRefresh } from './relayer.ts';

const logger = pino({ level: 'silent' });
const TREASURY = '0x00000000000000000000000000000000000000aa';
const USDC = '0x00000000000000000000000000000000000000bb';

let anvil: Anvil;
let relayerKey: Hex;

beforeAll(async () => {
  anvil = await startAnvil();
  relayerKey = generatePrivateKey();
  await createTestClient({ mode: 'anvil', transport: http(anvil.rpcUrl) }).setBalance({
    address: privateKeyToAccount(relayerKey).address,
    value: parseEther('10'),
  });
}, 30_000);

afterAll(async () => {
  await anvil?.stop();
});

describe('createRelayer', () => {
  it('submits concurrent transactions with consecutive nonces, all mined', async () => {
    const relayer = createRelayer({
      rpcUrl: anvil.rpcUrl,
      privateKey: relayerKey,
      chainId: 31337,
      logger,
      pollingIntervalMs: 50,
    });
    const before = await relayer.client.getTransactionCount({ address: relayer.address });
    const recipients = Array.from({ length: 5 }, () => privateKeyToAccount(generatePrivateKey()).address);
    const hashes = await Promise.all(
      recipients.map((to) => relayer.client.sendTransaction({ to, value: 1_000n })),
    );
    const receipts = await Promise.all(
      hashes.map((hash) => relayer.client.waitForTransactionReceipt({ hash })),
    );
    expect(receipts.map((receipt) => receipt.status)).toEqual(Array(5).fill('success'));
    const nonces = await Promise.all(
      hashes.map(async (hash) => (await relayer.client.getTransaction({ hash })).nonce),
    );
    expect([...nonces].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4].map((i) => before + i));
    const chain = createPublicClient({ transport: http(anvil.rpcUrl) });
    for (const to of recipients) expect(await chain.getBalance({ address: to })).toBe(1_000n);
  });

  it('shares its wallet with another replica: sends at the same moment both get mined, with a fresh nonce', async () => {
    // Two API replicas are two relayers of one wallet, each counting its own nonces. Blocks every second, so
    // the first send is still pending when the second reads the nonce.
    const replica = () =>
      createRelayer({
        rpcUrl: anvil.rpcUrl,
        privateKey: relayerKey,
        chainId: 31337,
        logger,
        pollingIntervalMs: 50,
      });
    const [a, b] = [replica(), replica()];
    const test = createTestClient({ mode: 'anvil', transport: http(anvil.rpcUrl) });
    const before = await a.client.getTransactionCount({ address: a.address });
    const to = privateKeyToAccount(generatePrivateKey()).address;
    await test.setAutomine(false);
    await test.setIntervalMining({ interval: 1 });
    try {
      const hashes = await Promise.all(
        [a, b].flatMap((relayer) =>
          [1n, 2n].map((value) =>
            sendWithFreshNonce(relayer, () =>
              relayer.client.sendTransaction({ to, value: relayer === a ? value : value + 10n }),
            ),
          ),
        ),
      );
      const receipts = await Promise.all(hashes.map((hash) => a.client.waitForTransactionReceipt({ hash })));
      expect(receipts.map((receipt) => receipt.status)).toEqual(Array(4).fill('success'));
      // 1 + 2 + 11 + 12 wei: every send arrived once.
      expect(await a.client.getBalance({ address: to })).toBe(26n);
      expect(await a.client.getTransactionCount({ address: a.address })).toBe(before + 4);
    } finally {
      await test.setIntervalMining({ interval: 0 });
      await test.setAutomine(true);
    }
  });

  it('reads its gas balance from the chain and exports it on /metrics', async () => {
    const relayer = createRelayer({
      rpcUrl: anvil.rpcUrl,
      privateKey: relayerKey,
      chainId: 31337,
      logger,
      pollingIntervalMs: 50,
    });
    const testClient = createTestClient({ mode: 'anvil', transport: http(anvil.rpcUrl) });
    await testClient.setBalance({ address: relayer.address, value: 1_234_567_000_000_000n });
    expect(await relayer.gasBalance()).toBe(1_234_567_000_000_000n);

    const metrics = createAppMetrics();
    const refresh = startGasBalanceRefresh({
      relayer,
      intervalMs: 100,
      logger,
      onBalance: (balance) => {
        if (balance === null) metrics.relayerGasBalance.reset();
        else metrics.relayerGasBalance.set(Number(balance));
      },
    });
    try {
      const gauge = async () => sample((await metrics.render()).body, 'chainmeter_relayer_gas_balance_wei');
      await waitFor('the gauge to show the balance', async () => (await gauge()) === 1.234567e15);
      // A later change is picked up by the next read.
      await testClient.setBalance({ address: relayer.address, value: 2n * 10n ** 18n });
      await waitFor('the gauge to follow the balance', async () => (await gauge()) === 2e18);
    } finally {
      refresh.stop();
      await testClient.setBalance({ address: relayer.address, value: parseEther('10') });
    }
  });

  it('drops the gauge while the chain cannot be read', async () => {
    const relayer = createRelayer({
      rpcUrl: 'http://127.0.0.1:1',
      privateKey: relayerKey,
      chainId: 31337,
      logger,
      pollingIntervalMs: 50,
    });
    const readings: (bigint | null)[] = [];
    const refresh = startGasBalanceRefresh({
      relayer,
      intervalMs: 60_000,
      logger,
      onBalance: (balance) => readings.push(balance),
    });
    try {
      await waitFor('a failed read', () => readings.length > 0);
      expect(readings).toEqual([null]);
    } finally {
      refresh.stop();
    }
  });
});

describe('relayer configuration', () => {
  const base = { USDC_ADDRESS: USDC, TREASURY_ADDRESS: TREASURY };

  it('defaults to the devnet relayer (anvil account 10) on chain 31337, with x402 on', () => {
    const config = loadConfig({ ...base, CHAIN_ID: '31337' });
    const expected = mnemonicToAccount('test test test test test test test test test test test junk', {
      addressIndex: 10,
    });
    expect(config.relayer).not.toBeNull();
    expect(privateKeyToAccount(config.relayer?.privateKey as Hex).address).toBe(expected.address);
    expect(config.relayer?.pollingIntervalMs).toBe(250);
    expect(config.x402).toBe(true);
  });

  it('is off elsewhere unless RELAYER_PRIVATE_KEY is set', () => {
    const off = loadConfig({ ...base, CHAIN_ID: '8453', RPC_URL: 'http://127.0.0.1:9' });
    expect(off.relayer).toBeNull();
    expect(off.x402).toBe(false);
    const on = loadConfig({
      ...base,
      CHAIN_ID: '8453',
      RPC_URL: 'http://127.0.0.1:9',
      RELAYER_PRIVATE_KEY: relayerKey,
    });
    expect(on.relayer?.privateKey).toBe(relayerKey);
    expect(on.relayer?.pollingIntervalMs).toBe(1_000);
    expect(on.x402).toBe(true);
    expect(loadConfig({ ...base, RELAYER_PRIVATE_KEY: relayerKey, X402: 'off' }).x402).toBe(false);
  });

  it('refuses a malformed key, and x402 on without a relayer', () => {
    expect(() => loadConfig({ ...base, RELAYER_PRIVATE_KEY: '0x1234' })).toThrow(ConfigError);
    expect(() =>
      loadConfig({ ...base, CHAIN_ID: '8453', RPC_URL: 'http://127.0.0.1:9', X402: 'on' }),
    ).toThrow(/X402: on needs a relayer/);
    expect(() => loadConfig({ ...base, X402: 'maybe' })).toThrow(/X402: must be on or off/);
  });
});

describe('relayPayment without a relayer', () => {
  it('is refused as FORBIDDEN (RELAY_OFF) before anything is counted or read', async () => {
    const counted: string[] = [];
    const attempt = relayPayment(
      {
        config: { chainId: 8453, usdcAddress: USDC, treasuryAddress: TREASURY, relay: { minAmount: 1n } },
        relayer: null,
        sql: null,
        rateLimits: { consumeRelay: async (by) => void counted.push(by) },
        logger,
      },
      {
        from: TREASURY,
        to: TREASURY,
        value: 1_000_000n,
        validAfter: 0n,
        validBefore: 2n ** 40n,
        nonce: `0x${'11'.repeat(32)}`,
        signature: `0x${'22'.repeat(65)}`,
      },
      '127.0.0.1',
    );
    await expect(attempt).rejects.toBeInstanceOf(RelayRefusedError);
    await expect(attempt).rejects.toMatchObject({ code: 'FORBIDDEN', reason: 'RELAY_OFF' });
    expect(counted).toEqual([]);
  });
});
