/**
 * `npm run bench -- x402` (issue 11, "Tests and figures"): a call paid per request (x402 `exact`, the official
 * `@x402/fetch` client's steps) against a key-authenticated call, side by side, on anvil mining a block every
 * second (as Base does, about), real PostgreSQL, the API in this process with the devnet's relayer.
 *
 * Each paid call is timed in its three client-side steps: the 402 round trip, signing the authorization,
 * and the paid request (verify, settle on chain and wait for the receipt, then the upstream). `exact` settles
 * before serving, so the paid request minus a keyed call is the settlement wait: what `exact` costs. Calls
 * alternate (keyed, paid) so both see the same machine. Not a test: it prints figures.
 */
import { loadConfig } from '@chainmeter/api/env';
import { type RunningApi, startApi } from '@chainmeter/api/server';
import { makeTransfer, startFakeIndexer } from '@chainmeter/api/testing/fake-indexer';
import { gqlData, signIn } from '@chainmeter/api/testing/graphql';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase } from '@chainmeter/testkit/postgres';
import { createGaslessPayer, deployTestUsdc } from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from '@x402/core/http';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { ms, percentile, printTable } from './stats.ts';

const CHAIN_ID = 31337;
const SAMPLES = 20;
const BODY = JSON.stringify({
  model: 'chainmeter-dev',
  max_tokens: 32,
  messages: [{ role: 'user', content: 'Say something short.' }],
});

export async function benchX402(): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const anvil = await startAnvil({ chainId: CHAIN_ID, blockTime: 1 });
    cleanups.push(() => anvil.stop());
    const usdc = await deployTestUsdc(anvil.rpcUrl);
    const database = await createTestDatabase('cm_bench_x402');
    cleanups.push(() => database.drop());
    const indexer = await startFakeIndexer(CHAIN_ID);
    cleanups.push(() => indexer.close());
    const api: RunningApi = await startApi(
      loadConfig({
        NODE_ENV: 'production',
        PORT: '0',
        HOST: '127.0.0.1',
        PUBLIC_ORIGIN: 'http://localhost:4000',
        RPC_URL: anvil.rpcUrl,
        CHAIN_ID: String(CHAIN_ID),
        USDC_ADDRESS: usdc,
        TREASURY_ADDRESS: devAccounts.treasury.address,
        INDEXER_URL: indexer.url,
        CONFIRMATIONS: '2',
        DATABASE_URL: database.url,
        LOG_LEVEL: 'warn',
        RATE_LIMIT_IP_PER_MINUTE: '100000',
        X402: 'on',
      }),
    );
    cleanups.push(() => api.close());
    const url = `${api.url}/v1/chat/completions`;

    // The keyed caller: credits from one (fake-indexed) deposit, and an API key.
    const wallet = privateKeyToAccount(generatePrivateKey());
    const session = await signIn(api.url, wallet, CHAIN_ID);
    indexer.transfers.push(makeTransfer(CHAIN_ID, wallet.address, 100_000_000n, 1n));
    indexer.setHead(10n);
    await waitUntil(async () => {
      const me = await gqlData<{ me: { balance: string } }>(api.url, '{ me { balance } }', {}, session);
      return me.me.balance !== '0';
    });
    const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
      api.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
      { input: { name: 'bench' } },
      session,
    );

    // The paying wallet: USDC, no ETH.
    const payer = await createGaslessPayer(anvil.rpcUrl, usdc, 100_000_000n);
    const client = devnetX402Client(payer, { rpcUrl: anvil.rpcUrl, assets: [usdc], chainId: CHAIN_ID });

    const keyed: number[] = [];
    const offer: number[] = [];
    const signing: number[] = [];
    const paid: number[] = [];
    const total: number[] = [];
    for (let i = 0; i < SAMPLES + 2; i++) {
      let started = performance.now();
      const keyedAnswer = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${createApiKey.secret}` },
        body: BODY,
      });
      await keyedAnswer.text();
      if (keyedAnswer.status !== 200) throw new Error(`keyed call answered ${keyedAnswer.status}`);
      const keyedMs = performance.now() - started;

      started = performance.now();
      const required = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: BODY,
      });
      await required.text();
      const offerMs = performance.now() - started;
      started = performance.now();
      const payload = await client.createPaymentPayload(
        decodePaymentRequiredHeader(required.headers.get('PAYMENT-REQUIRED') as string),
      );
      const signingMs = performance.now() - started;
      started = performance.now();
      const paidAnswer = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload),
        },
        body: BODY,
      });
      await paidAnswer.text();
      if (paidAnswer.status !== 200) throw new Error(`paid call answered ${paidAnswer.status}`);
      const paidMs = performance.now() - started;
      if (i < 2) continue; // warm-up
      keyed.push(keyedMs);
      offer.push(offerMs);
      signing.push(signingMs);
      paid.push(paidMs);
      total.push(offerMs + signingMs + paidMs);
    }
    const row = (what: string, samples: number[]) => ({
      step: what,
      p50: ms(percentile(samples, 50)),
      p90: ms(percentile(samples, 90)),
      max: ms(Math.max(...samples)),
    });
    printTable(`x402 exact vs API key, ${SAMPLES} calls each, anvil at 1 s blocks, relayer polling 250 ms`, [
      row('key-authenticated call', keyed),
      row('paid: 402 round trip', offer),
      row('paid: sign the authorization', signing),
      row('paid: request with PAYMENT-SIGNATURE', paid),
      row('paid: whole call (402 + sign + paid request)', total),
    ]);
    const wait = percentile(paid, 50) - percentile(keyed, 50);
    console.log(
      `\nSettlement wait (paid request - keyed call, p50): ${ms(wait)}: the price of exact, which settles before serving (a block every 1 s: on average half a block plus receipt polling).`,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the keyed account to be credited');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
