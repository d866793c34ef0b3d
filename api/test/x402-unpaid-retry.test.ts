/**
 * An `upto` call is served before it is settled: a payer whose wallet is empty at that moment leaves it UNPAID.
 * Its signed Permit2 authorization stays valid until its `deadline`, so the platform settles it again, for the
 * call's price, once the wallet can pay; after the deadline it stays UNPAID and nothing is submitted. On the
 * real platform: anvil, Ponder, PostgreSQL, two API replicas sharing one database (both retrying), a scripted
 * upstream that holds the call while the payer empties its wallet, and the official x402 client.
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import {
  signTransferAuthorization,
  submitTransferWithAuthorization,
  transferAuthorization,
} from '@chainmeter/testkit/eip3009';
import { createGaslessPayer, type GaslessPayer, mintUsdc, usdcBalance } from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import { decodePaymentRequiredHeader } from '@x402/core/http';
import { wrapFetchWithPayment } from '@x402/fetch';
import type pg from 'pg';
import { type Address, createTestClient, getAddress, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import { auditOnceSettled } from './support/audit.ts';
import {
  completion,
  HOSTILE_MODEL,
  type HostileUpstream,
  startHostileUpstream,
} from './support/hostile-upstream.ts';
import { errorCode, relayerNonce, walletLedger } from './support/paid-calls.ts';
import { connectApiDatabase, type Platform, startPlatform, UNLIMITED_RATES } from './support/platform.ts';
import { waitFor } from './support/wait-for.ts';

let platform: Platform;
let upstream: HostileUpstream;
/** Two replicas on one database: both look for UNPAID calls to settle again. */
let apiA: RunningApi;
let apiB: RunningApi;
let db: pg.Client;

/** How long a signed payment is valid for its settlement (X402_MAX_TIMEOUT_SECONDS). */
const VALID_SECONDS = 60;
/**
 * The upto offer's maxTimeoutSeconds, which the official client signs as Permit2 `deadline` = now + this: the
 * longest call (LLM_TIMEOUT_MS, 60 s by default) + VALID_SECONDS.
 */
const UPTO_DEADLINE_SECONDS = 60 + VALID_SECONDS;

beforeAll(async () => {
  upstream = await startHostileUpstream();
  platform = await startPlatform({ confirmations: 2 });
  const env = {
    ...UNLIMITED_RATES,
    LLM_BASE_URL: upstream.baseUrl,
    PRICE_MARKUP: '1.5',
    X402_MAX_TIMEOUT_SECONDS: String(VALID_SECONDS),
    X402_RESUBMIT_MS: '100',
    X402_UNPAID_RETRY_MS: '200',
  };
  apiA = await platform.startApi(env);
  apiB = await platform.startApi(env);
  db = await connectApiDatabase(platform);
}, 120_000);

afterAll(async () => {
  await db?.end();
  await platform?.close();
  await upstream?.stop();
});

/**
 * The upstream's answer to every call of this file: 10 prompt tokens, 40 completion tokens (80 bytes of
 * content), no cost header. At the upstream's prices (1 and 2 micro-USD a token) that costs
 * 10 x 1 + 40 x 2 = 90 micro-USD, and with the 1.5 markup the user pays 90 x 1.5 = 135 micro-USD.
 */
const PRICE = 135n;
const answer = completion([{ content: 'metered '.repeat(10).trim() }], {
  usage: { prompt_tokens: 10, completion_tokens: 40, total_tokens: 50 },
});

const request = (marker: string, maxTokens: number) =>
  JSON.stringify({
    model: HOSTILE_MODEL,
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: marker }],
  });

const balance = (owner: Address) => usdcBalance(platform.anvil.rpcUrl, platform.token, owner);

function uptoFetch(payer: GaslessPayer) {
  return wrapFetchWithPayment(
    fetch,
    devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token], scheme: 'upto' }),
  );
}

const post = (pay: typeof fetch, url: string, body: string) =>
  pay(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });

/** The maximum price `body` is offered for (what an upto payment for it signs). */
async function offeredMaximum(body: string): Promise<bigint> {
  const response = await post(fetch, apiA.url, body);
  expect(response.status).toBe(402);
  const offer = decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED') as string);
  return BigInt(offer.accepts.find((requirements) => requirements.scheme === 'upto')?.amount ?? 0);
}

interface PaidRow {
  status: string;
  user_price: string;
  payment_amount: string | null;
  payment_tx_hash: string | null;
  payment_retried_at: Date | null;
  error: string | null;
}

async function rowsOf(payer: Address): Promise<PaidRow[]> {
  const { rows } = await db.query(
    `select status, user_price::text as user_price, payment_amount::text as payment_amount, payment_tx_hash,
       payment_retried_at, error from usage_records where payer_address = $1 order by created_at`,
    [getAddress(payer)],
  );
  return rows as PaidRow[];
}

/**
 * A payer of `funds` pays an upto call held at the upstream, empties its wallet (its own EIP-3009 transfer)
 * while the call runs, and lets it be answered: served, its settlement fails, UNPAID with its price kept.
 */
async function unpaidCall(marker: string, funds: bigint): Promise<GaslessPayer> {
  const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, funds);
  let release = () => {};
  upstream.script(marker, { body: answer, gate: new Promise<void>((resolve) => (release = resolve)) });
  const served = post(uptoFetch(payer), apiA.url, request(marker, 400));
  await waitFor('the call held at the upstream', () => upstream.received(marker).length === 1);
  const away = transferAuthorization({ from: payer.address, to: devAccounts.deployer.address, value: funds });
  await submitTransferWithAuthorization(
    platform.anvil.rpcUrl,
    devAccounts.deployer,
    platform.token,
    away,
    await signTransferAuthorization(payer, { token: platform.token, chainId: platform.chainId }, away),
  );
  release();
  const response = await served;
  expect(response.status).toBe(200);
  await response.body?.cancel();
  const [row] = (await waitFor('the call ended', async () => {
    const rows = await rowsOf(payer.address);
    return rows[0]?.status !== 'HELD' ? rows : undefined;
  })) as PaidRow[];
  expect(row).toMatchObject({ status: 'UNPAID', user_price: PRICE.toString(), payment_tx_hash: null });
  expect(row?.error).toMatch(/^payment failed after serving/);
  expect(await balance(payer.address)).toBe(0n);
  return payer;
}

describe('an upto call whose payer could not pay at settlement time', () => {
  it('is settled again for its price once the wallet can pay: charged once, and the wallet may pay by upto again', async () => {
    const big = request('retry-held', 400);
    const small = request('retry-probe', 8);
    const signedMaximum = await offeredMaximum(big);
    const probeMaximum = await offeredMaximum(small);
    // The retry simulates the transfer of what the payer signed: a wallet holding the probe's maximum can pay
    // for the probe (so its refusal is the platform's, not the facilitator's) but not settle the held call.
    expect(probeMaximum).toBeLessThan(signedMaximum);
    const treasuryBefore = await balance(platform.treasury);
    const relayerBefore = await relayerNonce(platform.anvil.rpcUrl);

    const payer = await unpaidCall('retry-held', signedMaximum);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, probeMaximum);
    for (const url of [apiA.url, apiB.url]) {
      const refused = await post(uptoFetch(payer), url, small);
      expect(refused.status).toBe(402);
      expect(await errorCode(refused)).toBe('payer_has_unpaid_calls');
    }
    // Attempts were made meanwhile (each recorded on the call), none of them submitted anything.
    const [first] = await rowsOf(payer.address);
    await waitFor('another attempt recorded', async () => {
      const [row] = await rowsOf(payer.address);
      return (row?.payment_retried_at?.getTime() ?? 0) > (first?.payment_retried_at?.getTime() ?? 0);
    });
    expect((await rowsOf(payer.address)).map((row) => row.status)).toEqual(['UNPAID']);
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(relayerBefore);
    expect(await balance(platform.treasury)).toBe(treasuryBefore);

    // The payer's funds are back (enough for this call and the next): one of the replicas settles the call
    // for its price.
    const funded = probeMaximum + 2n * signedMaximum;
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 2n * signedMaximum);
    const awaiting = (await waitFor(
      'the call settled again',
      async () => (await rowsOf(payer.address)).find((row) => row.status !== 'UNPAID'),
      30_000,
    )) as PaidRow;
    expect(awaiting).toMatchObject({
      status: 'AWAITING_PAYMENT',
      payment_amount: PRICE.toString(),
      payment_retried_at: null,
      error: null,
    });
    expect(awaiting.payment_tx_hash).toMatch(/^0x[0-9a-f]{64}$/);
    await mineBlocks(platform.anvil.rpcUrl, 3);
    await waitFor(
      'the call charged',
      async () => (await rowsOf(payer.address))[0]?.status === 'BILLED',
      30_000,
    );
    expect(await walletLedger(db, payer.address)).toEqual([
      { reason: 'DEPOSIT', amount: PRICE.toString() },
      { reason: 'USAGE', amount: (-PRICE).toString() },
    ]);
    // Exactly the price moved, once, whichever replicas tried.
    expect(await balance(platform.treasury)).toBe(treasuryBefore + PRICE);
    expect(await balance(payer.address)).toBe(funded - PRICE);
    const { rows: deposits } = await db.query(
      `select amount::text as amount, lower(tx_hash) as tx_hash from deposits where from_address = $1`,
      [getAddress(payer.address)],
    );
    expect(deposits).toEqual([{ amount: PRICE.toString(), tx_hash: awaiting.payment_tx_hash }]);

    // No UNPAID call left: the wallet pays by upto again.
    upstream.script('retry-again', { body: answer });
    const again = await post(uptoFetch(payer), apiB.url, request('retry-again', 400));
    expect(again.status === 200 ? 200 : await errorCode(again)).toBe(200);
    await again.body?.cancel();
    expect((await rowsOf(payer.address)).map((row) => row.status)).toEqual(['BILLED', 'AWAITING_PAYMENT']);
    expect(await balance(payer.address)).toBe(funded - 2n * PRICE);
  }, 120_000);

  it('stays UNPAID, with nothing submitted, once its authorization expired before the wallet could pay', async () => {
    const body = request('expire-held', 400);
    const signedMaximum = await offeredMaximum(body);
    const payer = await unpaidCall('expire-held', signedMaximum);
    // The chain's clock goes past the Permit2 deadline (signed with this machine's clock plus
    // UPTO_DEADLINE_SECONDS).
    const test = createTestClient({ mode: 'anvil', transport: http(platform.anvil.rpcUrl) });
    await test.increaseTime({ seconds: 2 * UPTO_DEADLINE_SECONDS });
    await mineBlocks(platform.anvil.rpcUrl, 1);
    const treasuryBefore = await balance(platform.treasury);
    const relayerBefore = await relayerNonce(platform.anvil.rpcUrl);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, signedMaximum);
    await waitFor(
      'the call given up',
      async () => {
        const [row] = await rowsOf(payer.address);
        return row?.status === 'UNPAID' && row.payment_retried_at === null;
      },
      30_000,
    );
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(relayerBefore);
    expect(await balance(platform.treasury)).toBe(treasuryBefore);
    expect(await balance(payer.address)).toBe(signedMaximum);
    expect(await walletLedger(db, payer.address)).toEqual([]);
    expect((await rowsOf(payer.address)).map((row) => [row.status, row.payment_tx_hash])).toEqual([
      ['UNPAID', null],
    ]);
  }, 60_000);
});

describe('the audit after both', () => {
  it('is consistent, and lists only the call whose authorization expired as unpaid', async () => {
    const report = await auditOnceSettled(platform, db, 2);
    expect(report.discrepancies).toEqual([]);
    expect(report.unpaidCalls.map((call) => call.scheme)).toEqual(['upto']);
  }, 60_000);
});
