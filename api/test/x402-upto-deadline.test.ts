/**
 * An `upto` payment is settled after its call is served, before its signed Permit2 `deadline` (the facilitator
 * wants 6 s of it left). The official client signs that deadline as its now + the offer's `maxTimeoutSeconds`,
 * so the upto offer covers the longest call (`LLM_TIMEOUT_MS`) plus the settlement window
 * (`X402_MAX_TIMEOUT_SECONDS`), an upto stream is ended at `LLM_TIMEOUT_MS`, and a deadline shorter than that is
 * refused before anything is served. Before, a call longer than ~4 s here (54 s by default) was served, failed
 * to settle (`permit2_deadline_expired`) and stayed UNPAID for good, and its wallet was refused every later upto
 * payment. On the real platform: anvil, Ponder, PostgreSQL, a scripted loopback upstream and the official x402
 * client.
 */

import { mineBlocks } from '@chainmeter/testkit/anvil';
import { createGaslessPayer, type GaslessPayer, usdcBalance } from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from '@x402/core/http';
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { wrapFetchWithPayment } from '@x402/fetch';
import type pg from 'pg';
import { type Address, getAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import {
  chunk,
  completion,
  HOSTILE_MODEL,
  type HostileUpstream,
  startHostileUpstream,
} from './support/hostile-upstream.ts';
import { errorCode, relayerNonce, walletLedger } from './support/paid-calls.ts';
import { connectApiDatabase, type Platform, startPlatform, UNLIMITED_RATES } from './support/platform.ts';
import { fundedUser } from './support/users.ts';
import { waitFor } from './support/wait-for.ts';

let platform: Platform;
let upstream: HostileUpstream;
let api: RunningApi;
let db: pg.Client;

/** The longest a call may be served (ms), and how long a settlement may take (s). */
const LLM_TIMEOUT_MS = 8_000;
const SETTLEMENT_SECONDS = 10;

beforeAll(async () => {
  upstream = await startHostileUpstream();
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi({
    ...UNLIMITED_RATES,
    LLM_BASE_URL: upstream.baseUrl,
    PRICE_MARKUP: '1.5',
    LLM_TIMEOUT_MS: String(LLM_TIMEOUT_MS),
    X402_MAX_TIMEOUT_SECONDS: String(SETTLEMENT_SECONDS),
  });
  db = await connectApiDatabase(platform);
}, 120_000);

afterAll(async () => {
  await db?.end();
  await platform?.close();
  await upstream?.stop();
});

/**
 * What every call of this file generates: 79 bytes of content, reported as 10 prompt and 40 completion tokens.
 * At the upstream's prices (1 and 2 micro-USD a token) that costs 10 x 1 + 40 x 2 = 90 micro-USD, and with the
 * 1.5 markup the payer pays 90 x 1.5 = 135 micro-USD.
 */
const PRICE = 135n;
const CONTENT = 'metered '.repeat(10).trim();
const USAGE = { prompt_tokens: 10, completion_tokens: 40, total_tokens: 50 };

const request = (marker: string, stream = false) =>
  JSON.stringify({
    model: HOSTILE_MODEL,
    max_tokens: 64,
    stream,
    messages: [{ role: 'user', content: marker }],
  });

const post = (pay: typeof fetch, body: string) =>
  pay(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });

/**
 * A stream's events: the content and its usage at once, then an empty chunk (nothing generated) every 500 ms
 * for `ms` from now, never silent long enough for the idle timeout.
 */
function longStream(ms: number): unknown[] {
  const scripted = Date.now();
  const ticks = Array.from(
    { length: ms / 500 },
    (_, i) =>
      new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, scripted + (i + 1) * 500 - Date.now()))),
  );
  return [
    chunk({ role: 'assistant', content: '' }),
    chunk({ content: CONTENT }),
    chunk(null, { extra: { choices: [], usage: USAGE } }),
    ...ticks.flatMap((tick) => [tick, chunk({})]),
  ];
}

/** Sends `body` with a payment signed by hand. */
const paid = (payload: PaymentPayload, body: string) =>
  fetch(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload),
    },
    body,
  });

const balance = (owner: Address) => usdcBalance(platform.anvil.rpcUrl, platform.token, owner);

const uptoClient = (payer: GaslessPayer) =>
  devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token], scheme: 'upto' });

async function offerFor(body: string): Promise<{ offer: PaymentRequired; upto: PaymentRequirements }> {
  const response = await post(fetch, body);
  expect(response.status).toBe(402);
  const offer = decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED') as string);
  const upto = offer.accepts.find((requirements) => requirements.scheme === 'upto');
  if (!upto) throw new Error('no upto in the offer');
  return { offer, upto };
}

/**
 * An upto payment for `body`'s offer whose Permit2 deadline the official client signs as now + `seconds(offered)`,
 * sent for the offer as it was made: the signature covers the authorization, not `accepted`.
 */
async function signedFor(
  payer: GaslessPayer,
  body: string,
  seconds: (offered: number) => number,
): Promise<PaymentPayload> {
  const { offer, upto } = await offerFor(body);
  const payload = await uptoClient(payer).createPaymentPayload({
    ...offer,
    accepts: [{ ...upto, maxTimeoutSeconds: seconds(upto.maxTimeoutSeconds) }],
  });
  payload.accepted = upto;
  return payload;
}

async function rowsOf(payer: Address) {
  const { rows } = await db.query(
    `select status, user_price::text as user_price from usage_records where payer_address = $1
     order by created_at`,
    [getAddress(payer)],
  );
  return rows as { status: string; user_price: string }[];
}

/** The call is charged its price from the payer's own transfer: deposit = usage, the tokens gone from its wallet. */
async function expectBilled(payer: Address, funded: bigint) {
  await mineBlocks(platform.anvil.rpcUrl, 3);
  await waitFor('the call charged', async () => (await rowsOf(payer))[0]?.status === 'BILLED', 30_000);
  expect(await rowsOf(payer)).toEqual([{ status: 'BILLED', user_price: PRICE.toString() }]);
  expect(await walletLedger(db, payer)).toEqual([
    { reason: 'DEPOSIT', amount: PRICE.toString() },
    { reason: 'USAGE', amount: (-PRICE).toString() },
  ]);
  expect(await balance(payer)).toBe(funded - PRICE);
}

/** The wallet may pay by upto again (a wallet with an UNPAID call is refused: payer_has_unpaid_calls). */
async function expectPaysAgain(payer: GaslessPayer, marker: string) {
  upstream.script(marker, { body: completion([{ content: CONTENT }], { usage: USAGE }) });
  const again = await post(wrapFetchWithPayment(fetch, uptoClient(payer)), request(marker));
  expect(again.status).toBe(200);
  await again.text();
}

describe('the upto offer', () => {
  it('asks for a deadline covering the longest call plus the settlement; exact for the settlement only', async () => {
    const { offer } = await offerFor(request('offer'));
    // upto: 8_000 ms = 8 s of call + 10 s of settlement = 18 s; exact settles before serving: 10 s.
    expect(Object.fromEntries(offer.accepts.map((a) => [a.scheme, a.maxTimeoutSeconds]))).toEqual({
      exact: 10,
      upto: 18,
    });
  });
});

describe('an upto call that runs almost to LLM_TIMEOUT_MS', () => {
  it('is settled in time and billed its price, and the wallet pays by upto again', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const marker = 'a slow answer';
    let release = () => {};
    upstream.script(marker, {
      body: completion([{ content: CONTENT }], { usage: USAGE }),
      gate: new Promise<void>((resolve) => {
        release = resolve;
      }),
    });
    const answered = post(wrapFetchWithPayment(fetch, uptoClient(payer)), request(marker));
    // The upstream holds its answer 6 s (within the 8 s LLM_TIMEOUT_MS): settled 6 s after the payment was
    // signed, when a deadline of the settlement window alone (10 s) has less than the 6 s the facilitator wants.
    await waitFor('the call upstream', () => upstream.received(marker).length > 0);
    const held = setTimeout(() => release(), 6_000);
    const response = await answered.finally(() => clearTimeout(held));
    expect(response.status).toBe(200);
    const receipt = response.headers.get('PAYMENT-RESPONSE');
    expect(receipt).toBeTruthy();
    expect(decodePaymentResponseHeader(receipt as string).success).toBe(true);
    await response.json();
    await expectBilled(payer.address, 5_000_000n);
    await expectPaysAgain(payer, 'after the slow answer');
  }, 90_000);
});

describe('an upto stream that would run past LLM_TIMEOUT_MS', () => {
  it('is ended by the platform at LLM_TIMEOUT_MS, billed for what it generated, settled in time', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const marker = 'a long stream';
    // The content and its usage at once, then an empty chunk every 500 ms for 30 s: never silent long enough
    // for the idle timeout, it would run 30 s (past the 10 s a settlement-only deadline gives).
    upstream.script(marker, { events: longStream(30_000) });
    const started = Date.now();
    const response = await post(wrapFetchWithPayment(fetch, uptoClient(payer)), request(marker, true));
    expect(response.status).toBe(200);
    const text = await response.text();
    // Ended by the platform (no [DONE]), as a stream the upstream cut, and well before the upstream's 30 s.
    expect(text).toContain(CONTENT);
    expect(text).toContain(`the stream reached its time limit of ${LLM_TIMEOUT_MS} ms`);
    expect(text).not.toContain('[DONE]');
    expect(Date.now() - started).toBeLessThan(20_000);
    await waitFor('the upstream request aborted', () => upstream.received(marker)[0]?.closedEarly);
    await expectBilled(payer.address, 5_000_000n);
    await expectPaysAgain(payer, 'after the long stream');
  }, 90_000);
});

describe('an upto stream whose client stops reading', () => {
  it('is settled at LLM_TIMEOUT_MS all the same: a stalled reader cannot hold its payment back', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const marker = 'a stalled reader';
    // 16 MB of content at once (more than the loopback socket buffers hold), reported as 40 completion tokens;
    // then the stream stays open.
    const piece = 'x'.repeat(65_536);
    upstream.script(marker, {
      events: [
        chunk({ role: 'assistant', content: '' }),
        chunk(null, { extra: { choices: [], usage: USAGE } }),
        ...Array.from({ length: 256 }, () => chunk({ content: piece })),
      ],
      done: false,
      keepOpen: true,
    });
    const response = await post(wrapFetchWithPayment(fetch, uptoClient(payer)), request(marker, true));
    expect(response.status).toBe(200);
    // The body is never read: the API's pull of the upstream stalls behind the full socket. The call is
    // settled (priced 135 from its reported usage, as above) while the client still holds the stream.
    await waitFor(
      'the call settled',
      async () => (await rowsOf(payer.address))[0]?.status === 'AWAITING_PAYMENT',
      30_000,
    );
    await response.body?.cancel();
    await expectBilled(payer.address, 5_000_000n);
    await expectPaysAgain(payer, 'after the stalled reader');
  }, 90_000);
});

describe('a stream paid by API key', () => {
  it('is not limited to LLM_TIMEOUT_MS: it runs to its end', async () => {
    const user = await fundedUser(api, 1_000_000n);
    const marker = 'a long keyed stream';
    upstream.script(marker, { events: longStream(10_000) });
    const started = Date.now();
    const response = await fetch(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
      body: request(marker, true),
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain(CONTENT);
    expect(text).toContain('[DONE]');
    expect(text).not.toContain('time limit');
    expect(Date.now() - started).toBeGreaterThan(LLM_TIMEOUT_MS);
  }, 60_000);
});

describe('an upto payment whose deadline is shorter than the offer', () => {
  it('is refused before anything is served or broadcast (payment_deadline_too_short)', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const body = request('a short deadline');
    // Signed as the official client signs for a 10 s offer (the settlement window alone): deadline = now + 10,
    // 8 s short of what the longest call and its settlement need (18 s; 2 s of clock skew allowed).
    const payload = await signedFor(payer, body, () => SETTLEMENT_SECONDS);
    const relayerBefore = await relayerNonce(platform.anvil.rpcUrl);
    const response = await paid(payload, body);
    expect(response.status).toBe(402);
    expect(decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED') as string).error).toBe(
      'payment_deadline_too_short',
    );
    expect(await errorCode(response)).toBe('payment_deadline_too_short');
    expect(upstream.received('a short deadline')).toEqual([]);
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(relayerBefore);
    expect(await balance(payer.address)).toBe(5_000_000n);
    expect(await rowsOf(payer.address)).toEqual([]);
  }, 30_000);

  it('still pays a client whose clock runs a second behind', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const marker = 'a clock behind';
    upstream.script(marker, { body: completion([{ content: CONTENT }], { usage: USAGE }) });
    // deadline = now - 1 + 18: what the official client signs on a clock 1 s behind the server's.
    const payload = await signedFor(payer, request(marker), (offered) => offered - 1);
    const response = await paid(payload, request(marker));
    expect(response.status).toBe(200);
    await response.json();
    await expectBilled(payer.address, 5_000_000n);
  }, 60_000);
});
