/**
 * Pay per request (x402) at the edges a payer's own client decides, against the API on PostgreSQL with real
 * anvil, Ponder and the official `@x402/fetch` / `@x402/evm` client: an `exact` authorization signed to stay
 * valid far longer than the offer asks, an `exact` call whose upstream fails after its payment was settled, and
 * an `upto` settlement mined after the platform gave up waiting for it. Each fails if the payer is told one
 * thing, or the books say one thing, while its money does another.
 */

import { mineBlocks, setAutomine } from '@chainmeter/testkit/anvil';
import { createGaslessPayer, type GaslessPayer, usdcBalance } from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from '@x402/core/http';
import type { PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { wrapFetchWithPayment } from '@x402/fetch';
import type pg from 'pg';
import { type Address, getAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import { errorCode, relayerNonce, walletLedger } from './support/paid-calls.ts';
import { connectApiDatabase, type Platform, startPlatform, UNLIMITED_RATES } from './support/platform.ts';
import { waitFor } from './support/wait-for.ts';

let platform: Platform;
let api: RunningApi;
let db: pg.Client;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  // Payments are valid 60 s (the offer's maxTimeoutSeconds, X402_MAX_TIMEOUT_SECONDS's default).
  api = await platform.startApi(UNLIMITED_RATES);
  db = await connectApiDatabase(platform);
}, 120_000);

afterAll(async () => {
  await db?.end();
  await platform?.close();
});

const body = (model = 'chainmeter-dev-large') =>
  JSON.stringify({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Say something short.' }] });

const chat = (headers: Record<string, string> = {}, requestBody = body()) =>
  fetch(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: requestBody,
  });

async function exactOffer(
  requestBody = body(),
): Promise<{ offer: PaymentRequired; exact: PaymentRequirements }> {
  const response = await chat({}, requestBody);
  expect(response.status).toBe(402);
  const offer = decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED') as string);
  const exact = offer.accepts.find((requirements) => requirements.scheme === 'exact');
  if (!exact) throw new Error('no exact in the offer');
  return { offer, exact };
}

async function rowsOf(payer: Address) {
  const { rows } = await db.query(
    `select status, user_price::text as user_price, payment_tx_hash from usage_records
     where payer_address = $1 order by created_at`,
    [getAddress(payer)],
  );
  return rows as { status: string; user_price: string; payment_tx_hash: string | null }[];
}

/**
 * Pays the offer for `body()` with an exact authorization the official client signs as valid `seconds(offered)`
 * from now (its validBefore = now + maxTimeoutSeconds), sent for the offer as it was made: the signature covers
 * the authorization, not `accepted`.
 */
async function payValidFor(payer: GaslessPayer, seconds: (offered: number) => number): Promise<Response> {
  const { offer, exact } = await exactOffer();
  const client = devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token] });
  const payload = await client.createPaymentPayload({
    ...offer,
    accepts: [{ ...exact, maxTimeoutSeconds: seconds(exact.maxTimeoutSeconds) }],
  });
  payload.accepted = exact;
  return chat({ 'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload) });
}

describe('an exact authorization valid longer than the offer', () => {
  it('is refused before anything is sent: a settlement given up on must not be able to move money later', async () => {
    // The platform waits for an exact settlement a bounded time, then answers 402 (settlement_pending) and
    // serves nothing. An authorization valid for a day stays valid past that answer: its transaction, still in
    // the node's pool, could be mined later and take the payer's money for a call it was told was not served
    // (seen here: 402 settlement_pending on a stalled chain, then 2160 taken when the chain mined again).
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const relayerBefore = await relayerNonce(platform.anvil.rpcUrl);
    const response = await payValidFor(payer, () => 86_400);
    expect(response.status).toBe(402);
    expect(decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED') as string).error).toBe(
      'payment_valid_too_long',
    );
    expect(await errorCode(response)).toBe('payment_valid_too_long');
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(relayerBefore);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
    expect(await rowsOf(payer.address)).toEqual([]);
  }, 30_000);

  it('still pays a client whose clock runs a few seconds ahead', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    // validBefore = now + 60 + 3: what the official client signs on a clock 3 s ahead of the server's.
    const response = await payValidFor(payer, (offered) => offered + 3);
    expect(response.status).toBe(200);
    expect(decodePaymentResponseHeader(response.headers.get('PAYMENT-RESPONSE') as string).success).toBe(
      true,
    );
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(
      5_000_000n - BigInt((await exactOffer()).exact.amount),
    );
  }, 30_000);
});

describe('an exact call whose upstream fails after its payment was settled', () => {
  it('answers the error with PAYMENT-RESPONSE and says the payment stays as the wallet credits, which it does', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const failing = body('dev-error-500');
    const { exact } = await exactOffer(failing);
    const amount = BigInt(exact.amount);
    const pay = wrapFetchWithPayment(
      fetch,
      devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token] }),
    );
    const response = await pay(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: failing,
    });
    expect(response.status).toBe(502);
    // exact settles before the upstream is called: the money moved, and the payer is told where it went.
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n - amount);
    const header = response.headers.get('PAYMENT-RESPONSE');
    expect(header).toBeTruthy();
    const receipt = decodePaymentResponseHeader(header as string);
    expect(receipt.success).toBe(true);
    expect(getAddress(receipt.payer as string)).toBe(payer.address);
    const error = ((await response.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('upstream_unavailable');
    expect(error.message).toContain("stays as this wallet's credits");
    const [row] = await rowsOf(payer.address);
    expect(row).toEqual({
      status: 'RELEASED',
      user_price: '0',
      payment_tx_hash: receipt.transaction.toLowerCase(),
    });
    // And it does: the transfer is credited as the wallet's deposit, nothing charged against it.
    await mineBlocks(platform.anvil.rpcUrl, 3);
    await waitFor('the payment credited', async () => (await walletLedger(db, payer.address)).length > 0);
    expect(await walletLedger(db, payer.address)).toEqual([{ reason: 'DEPOSIT', amount: amount.toString() }]);
  }, 60_000);
});

describe('an upto settlement mined after the platform gave up waiting for it', () => {
  it('charges the call when its transfer is credited: not left UNPAID with the payer money as loose credits', async () => {
    // Settlements are awaited 10 s (twice) here. The payer signed its Permit2 deadline for a day (hand-made;
    // the official client signs now + maxTimeoutSeconds), so its settlement can be mined after the platform
    // gave up on it, as one whose receipt polling failed (a flaky RPC) can with any deadline.
    const quick = await platform.startApi({ ...UNLIMITED_RATES, X402_MAX_TIMEOUT_SECONDS: '10' });
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const offered = await fetch(`${quick.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(),
    });
    const offer = decodePaymentRequiredHeader(offered.headers.get('PAYMENT-REQUIRED') as string);
    const upto = offer.accepts.find((requirements) => requirements.scheme === 'upto');
    if (!upto) throw new Error('no upto in the offer');
    const client = devnetX402Client(payer, {
      rpcUrl: platform.anvil.rpcUrl,
      assets: [platform.token],
      scheme: 'upto',
    });
    const payload = await client.createPaymentPayload({
      ...offer,
      accepts: [{ ...upto, maxTimeoutSeconds: 86_400 }],
    });
    payload.accepted = upto;
    await setAutomine(platform.anvil.rpcUrl, false);
    let price: bigint;
    try {
      const response = await fetch(`${quick.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload),
        },
        body: body(),
      });
      // Served first (upto), then settled: the settlement is broadcast, never mined while the chain stalls.
      expect(response.status).toBe(200);
      await response.text();
      const [unpaid] = (await waitFor(
        'the settlement given up on',
        async () => {
          const rows = await rowsOf(payer.address);
          return rows[0]?.status === 'UNPAID' ? rows : undefined;
        },
        45_000,
      )) as Awaited<ReturnType<typeof rowsOf>>;
      expect(unpaid?.payment_tx_hash).toMatch(/^0x[0-9a-f]{64}$/);
      price = BigInt(unpaid?.user_price ?? 0);
      expect(price).toBeGreaterThan(0n);
    } finally {
      await setAutomine(platform.anvil.rpcUrl, true);
      await quick.close();
    }
    // The chain mines again: the pending settlement moves the call's price, once.
    await mineBlocks(platform.anvil.rpcUrl, 3);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n - price);
    // Credited, it pays for its call: deposit = usage, nothing left over, the call charged and no longer UNPAID.
    await waitFor('the settlement credited', async () => (await walletLedger(db, payer.address)).length > 0);
    await waitFor('the call charged', async () => (await rowsOf(payer.address))[0]?.status === 'BILLED');
    expect(await walletLedger(db, payer.address)).toEqual([
      { reason: 'DEPOSIT', amount: price.toString() },
      { reason: 'USAGE', amount: (-price).toString() },
    ]);
    // And the wallet, having paid, may pay by upto again.
    const again = await wrapFetchWithPayment(fetch, client)(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(),
    });
    expect(again.status).toBe(200);
    await again.text();
  }, 120_000);
});
