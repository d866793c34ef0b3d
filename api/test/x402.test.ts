/**
 * Pay per request (x402 v2) end to end with the OFFICIAL client packages unchanged (`@x402/fetch` with
 * `@x402/evm`'s exact client scheme), paying from wallets that hold USDC and no ETH, against the API on
 * PostgreSQL with real anvil, the real Ponder indexer and the relayer of the devnet: the 402 offer, paid
 * calls and streams, every refusal (nothing served, nothing moved), ten payers at once, then the ledger
 * (deposit, usage, leftover credits) exact and its invariants.
 */

import type { MicroUsd } from '@chainmeter/schema';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { mineBlocks, setAutomine } from '@chainmeter/testkit/anvil';
import {
  signTransferAuthorization,
  submitTransferWithAuthorization,
  transferAuthorization,
} from '@chainmeter/testkit/eip3009';
import {
  createGaslessPayer,
  deployTestUsdc,
  type GaslessPayer,
  mintUsdc,
  usdcBalance,
} from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import type { x402Client } from '@x402/core/client';
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from '@x402/core/http';
import type { PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { wrapFetchWithPayment } from '@x402/fetch';
import pg from 'pg';
import { type Address, createPublicClient, getAddress, http } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlFor } from '../src/db/sql.ts';
import { loadConfig } from '../src/env.ts';
import { placePaidCall, recordPayment } from '../src/modules/metering/paid-call.store.ts';
import { type RunningApi, startApi } from '../src/server.ts';
import { auditPlatform } from './support/audit.ts';
import { gqlData, signIn } from './support/graphql.ts';
import { type Platform, startPlatform, UNLIMITED_RATES } from './support/platform.ts';
import { sample, scrape } from './support/prometheus.ts';
import { waitFor } from './support/wait-for.ts';

let platform: Platform;
let api: RunningApi;
let db: pg.Client;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi(UNLIMITED_RATES);
  if (!platform.database) throw new Error('these tests run on PostgreSQL');
  db = new pg.Client({ connectionString: platform.database.url });
  await db.connect();
}, 120_000);

afterAll(async () => {
  await db?.end();
  await platform?.close();
});

const NETWORK = 'eip155:31337';
const body = (maxTokens = 64, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: 'chainmeter-dev-large',
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: 'Say something short.' }],
    ...extra,
  });

/** An official x402 client paying from `payer` with the exact scheme (EIP-3009), allowed `tokens`. */
function payingClient(payer: GaslessPayer, tokens: Address[] = [platform.token]): x402Client {
  return devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: tokens });
}

/** An official x402 client paying from `payer` with the upto scheme (Permit2, approved by EIP-2612 signature). */
function uptoClient(payer: GaslessPayer): x402Client {
  return devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token], scheme: 'upto' });
}

const chat = (init: RequestInit = {}, url = api.url) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.headers ?? {}) },
    body: init.body ?? body(),
  });

async function offerFor(requestBody: string): Promise<PaymentRequired> {
  const response = await chat({ body: requestBody });
  expect(response.status).toBe(402);
  const header = response.headers.get('PAYMENT-REQUIRED');
  expect(header).toBeTruthy();
  return decodePaymentRequiredHeader(header as string);
}

/** Signs a payment for `requirements` (possibly tampered with) and sends it with `requestBody`. */
async function payWith(
  payer: GaslessPayer,
  offer: PaymentRequired,
  requirements: PaymentRequirements,
  requestBody = body(),
) {
  const client = payingClient(payer, [platform.token, requirements.asset as Address]);
  const payload = await client.createPaymentPayload({ ...offer, accepts: [requirements] });
  return chat({ body: requestBody, headers: { 'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload) } });
}

async function usageOfPayer(payer: Address) {
  const { rows } = await db.query(
    `select status, user_price::text as user_price, hold_amount::text as hold_amount, payment_tx_hash,
       payment_scheme from usage_records where payer_address = $1 order by created_at`,
    [getAddress(payer)],
  );
  return rows as {
    status: string;
    user_price: string;
    hold_amount: string;
    payment_tx_hash: string | null;
    payment_scheme: string;
  }[];
}

type UsageRow = Awaited<ReturnType<typeof usageOfPayer>>[number];

/** The payer's first paid call, once `ready` holds for it. */
async function waitForUsage(payer: Address, what: string, ready: (usage: UsageRow) => boolean) {
  const usage = await waitFor(what, async () => {
    const [first] = await usageOfPayer(payer);
    return first && ready(first) ? first : undefined;
  });
  if (!usage) throw new Error(`no paid call of ${payer}`);
  return usage;
}

async function ledgerOf(wallet: Address) {
  const { rows } = await db.query(
    `select l.reason, l.amount::text as amount, l.balance_after::text as balance_after
     from ledger_entries l join accounts a on a.id = l.account_id where a.wallet_address = $1 order by l.seq`,
    [getAddress(wallet)],
  );
  return rows as { reason: string; amount: string; balance_after: string }[];
}

async function balanceOf(wallet: Address): Promise<bigint | null> {
  const { rows } = await db.query('select balance::text as balance from accounts where wallet_address = $1', [
    getAddress(wallet),
  ]);
  return rows[0] ? BigInt(rows[0].balance) : null;
}

/**
 * Confirms the settlements already mined (CONFIRMATIONS more blocks), then waits until `deposits` of `wallet`
 * are credited and its paid calls billed.
 */
async function waitForCredit(wallet: Address, deposits: number) {
  await mineBlocks(platform.anvil.rpcUrl, 3);
  return waitFor(
    `${deposits} credited deposit(s) of ${wallet}`,
    async () => {
      const { rows } = await db.query(
        `select count(*)::int as n from deposits where from_address = $1 and status = 'CREDITED'`,
        [getAddress(wallet)],
      );
      const awaiting = (await usageOfPayer(wallet)).filter((u) => u.status === 'AWAITING_PAYMENT').length;
      return rows[0].n === deposits && awaiting === 0;
    },
    30_000,
  );
}

describe('the 402 offer', () => {
  it('offers exact for the call maximum price, to the treasury, in the token, with its EIP-712 domain', async () => {
    const offer = await offerFor(body(64));
    expect(offer.x402Version).toBe(2);
    const exact = offer.accepts.find((a) => a.scheme === 'exact');
    expect(exact).toMatchObject({
      network: NETWORK,
      asset: getAddress(platform.token),
      payTo: getAddress(platform.treasury),
      extra: { name: 'USD Coin', version: '2' },
    });
    expect(exact?.maxTimeoutSeconds).toBeGreaterThan(6);
    // The maximum grows with max_tokens (the hold's bound), so it is the call's own price, not a flat fee.
    const bigger = (await offerFor(body(640))).accepts.find((a) => a.scheme === 'exact');
    expect(BigInt(exact?.amount ?? 0)).toBeGreaterThan(0n);
    expect(BigInt(bigger?.amount ?? 0)).toBeGreaterThan(BigInt(exact?.amount ?? 0));
  });

  it('lets a browser of an allowed origin send PAYMENT-SIGNATURE and read the x402 headers (CORS)', async () => {
    const origin = 'https://agent.example';
    const browserFacing = await startApi(
      loadConfig(platform.apiEnv({ ...UNLIMITED_RATES, CORS_ORIGINS: origin })),
      {
        crediting: false,
      },
    );
    try {
      const preflight = await fetch(`${browserFacing.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type, payment-signature',
        },
      });
      expect(preflight.status).toBeLessThan(300);
      expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain(
        'payment-signature',
      );
      const offered = await fetch(`${browserFacing.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/json' },
        body: body(),
      });
      expect(offered.status).toBe(402);
      expect(offered.headers.get('access-control-allow-origin')).toBe(origin);
      const exposed = offered.headers.get('access-control-expose-headers')?.toUpperCase() ?? '';
      expect(exposed).toContain('PAYMENT-REQUIRED');
      expect(exposed).toContain('PAYMENT-RESPONSE');
    } finally {
      await browserFacing.close();
    }
  });

  it('keeps answering 401 for a bad key (a credential given is never turned into a payment)', async () => {
    const response = await chat({ headers: { authorization: 'Bearer cm_nope' } });
    expect(response.status).toBe(401);
  });
});

describe('a paid call (exact)', () => {
  it('pays from a wallet with no ETH, settles before serving, and ends as deposit, usage and leftover credits', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const before = await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address);
    const pay = wrapFetchWithPayment(fetch, payingClient(payer));
    const response = await pay(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(),
    });
    expect(response.status).toBe(200);
    const completion = (await response.json()) as { choices: { message: { content: string } }[] };
    expect(completion.choices[0]?.message.content.length).toBeGreaterThan(0);
    const receipt = decodePaymentResponseHeader(response.headers.get('PAYMENT-RESPONSE') as string);
    expect(receipt.success).toBe(true);
    expect(getAddress(receipt.payer as string)).toBe(payer.address);
    const amount = BigInt((await offerFor(body())).accepts[0]?.amount ?? 0);
    // Moved on chain before the answer: exactly the offered amount, from the payer to the treasury.
    expect(before - (await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address))).toBe(amount);

    const [usage] = await usageOfPayer(payer.address);
    expect(usage?.payment_tx_hash).toBe(receipt.transaction.toLowerCase());
    await waitForCredit(payer.address, 1);
    const [billed] = await usageOfPayer(payer.address);
    expect(billed?.status).toBe('BILLED');
    const price = BigInt(billed?.user_price ?? 0);
    expect(price).toBeGreaterThan(0n);
    expect(price).toBeLessThanOrEqual(amount);
    // The ledger: the deposit, then the call, then what it did not use stays as the wallet's credits.
    expect(await ledgerOf(payer.address)).toEqual([
      { reason: 'DEPOSIT', amount: amount.toString(), balance_after: amount.toString() },
      { reason: 'USAGE', amount: (-price).toString(), balance_after: (amount - price).toString() },
    ]);
    expect(await balanceOf(payer.address)).toBe(amount - price);
  }, 60_000);

  it('streams a paid call with PAYMENT-RESPONSE in its headers and bills it from the stream', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const pay = wrapFetchWithPayment(fetch, payingClient(payer));
    const response = await pay(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(64, { stream: true, stream_options: { include_usage: true } }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(decodePaymentResponseHeader(response.headers.get('PAYMENT-RESPONSE') as string).success).toBe(
      true,
    );
    const text = await response.text();
    expect(text).toContain('data: [DONE]');
    await waitForCredit(payer.address, 1);
    const [usage] = await usageOfPayer(payer.address);
    expect(usage?.status).toBe('BILLED');
    const ledger = await ledgerOf(payer.address);
    expect(ledger.map((e) => e.reason)).toEqual(['DEPOSIT', 'USAGE']);
    expect(BigInt(ledger[1]?.balance_after ?? -1)).toBe(
      BigInt(usage?.hold_amount ?? 0) - BigInt(usage?.user_price ?? 0),
    );
  }, 60_000);
});

describe('a refused payment (402 with the reason; nothing served, nothing moved)', () => {
  async function refused(response: Response) {
    expect(response.status).toBe(402);
    const error = ((await response.json()) as { error: { code: string } }).error;
    const offer = decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED') as string);
    expect(offer.error).toBe(error.code);
    return error.code;
  }

  it('refuses a replayed payment', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const offer = await offerFor(body());
    const payload = await payingClient(payer).createPaymentPayload(offer);
    const header = { 'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload) };
    expect((await chat({ headers: header })).status).toBe(200);
    const afterFirst = await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address);
    await refused(await chat({ headers: header }));
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(afterFirst);
    expect((await usageOfPayer(payer.address)).filter((u) => u.payment_tx_hash !== null)).toHaveLength(1);
  }, 60_000);

  it('refuses a payment signed for a cheaper call (underpayment)', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const cheap = await offerFor(body(8));
    const [requirements] = cheap.accepts;
    const code = await refused(await payWith(payer, cheap, requirements as PaymentRequirements, body(512)));
    expect(code).toBe('payment_does_not_match_offer');
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
  }, 30_000);

  it('refuses a payment to another payee, or in another token', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const offer = await offerFor(body());
    const [requirements] = offer.accepts as [PaymentRequirements];
    const otherPayee = { ...requirements, payTo: payer.address };
    expect(await refused(await payWith(payer, offer, otherPayee))).toBe('payment_does_not_match_offer');
    // A real token with the same EIP-712 name and version, the payer holding it: a valid signature, not USDC.
    const other = await deployTestUsdc(platform.anvil.rpcUrl);
    await mintUsdc(platform.anvil.rpcUrl, other, payer.address, 5_000_000n);
    const otherToken = { ...requirements, asset: getAddress(other) };
    expect(await refused(await payWith(payer, offer, otherToken))).toBe('payment_does_not_match_offer');
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
    expect(await usdcBalance(platform.anvil.rpcUrl, other, payer.address)).toBe(5_000_000n);
    expect(await usageOfPayer(payer.address)).toEqual([]);
  }, 30_000);

  it('refuses an authorization whose time window has closed', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const offer = await offerFor(body());
    const payload = await payingClient(payer).createPaymentPayload(offer);
    const authorization = (payload.payload as { authorization: { validBefore: string } }).authorization;
    // Still inside the signed window on the client's clock, but closer than the facilitator accepts (~6 s).
    authorization.validBefore = String(Math.floor(Date.now() / 1000) + 2);
    const response = await chat({ headers: { 'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload) } });
    await refused(response);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
  }, 30_000);

  it('refuses a payer without the funds', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 1n);
    const pay = wrapFetchWithPayment(fetch, payingClient(payer));
    const response = await pay(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(),
    });
    await refused(response);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(1n);
    expect((await usageOfPayer(payer.address)).filter((u) => u.status !== 'RELEASED')).toEqual([]);
  }, 30_000);

  it('gives up on a settlement the chain does not mine within the payment window: released, nothing taken', async () => {
    // A replica whose payments are valid 10 s (the facilitator wants 6 s of validity left at verification); the chain stops mining, so the settlement sits unmined (as a
    // transaction dropped, or removed by a reorg before its receipt was seen, would).
    const quick = await platform.startApi({ ...UNLIMITED_RATES, X402_MAX_TIMEOUT_SECONDS: '10' });
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const offered = await chat({}, quick.url);
    expect(offered.status).toBe(402);
    const offer = decodePaymentRequiredHeader(offered.headers.get('PAYMENT-REQUIRED') as string);
    // exact: the settlement window; upto (settled after serving): the longest call (LLM_TIMEOUT_MS, 60 s by
    // default) + that window = 70 s.
    expect(Object.fromEntries(offer.accepts.map((a) => [a.scheme, a.maxTimeoutSeconds]))).toEqual({
      exact: 10,
      upto: 70,
    });
    const pay = wrapFetchWithPayment(fetch, payingClient(payer));
    await setAutomine(platform.anvil.rpcUrl, false);
    let response: Response;
    try {
      response = await pay(`${quick.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body(),
      });
      // Answered while the chain still mines nothing (the x402 signer's default wait is 180 s), and its
      // process no longer keeps the call alive: released, nothing charged.
      const [released] = await usageOfPayer(payer.address);
      expect(released?.status).toBe('RELEASED');
      expect(released?.user_price).toBe('0');
      expect(released?.payment_tx_hash).toMatch(/^0x[0-9a-f]{64}$/);
    } finally {
      await setAutomine(platform.anvil.rpcUrl, true);
      await quick.close();
    }
    expect(response.status).toBe(402);
    // Mined late, past the authorization's window: it moves nothing, and no deposit is credited.
    await mineBlocks(platform.anvil.rpcUrl, 3);
    const receipt = await createPublicClient({
      transport: http(platform.anvil.rpcUrl),
    }).getTransactionReceipt({
      hash: (await usageOfPayer(payer.address))[0]?.payment_tx_hash as `0x${string}`,
    });
    expect(receipt.status).toBe('reverted');
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
    expect((await usageOfPayer(payer.address)).map((u) => u.status)).toEqual(['RELEASED']);
  }, 60_000);
});

describe('ten payers at once', () => {
  it('each pays once and is billed once; the ledger adds up for every one', async () => {
    const payers: GaslessPayer[] = [];
    // Funded one after another (the deployer's nonces); they pay all at once.
    for (let i = 0; i < 10; i++) {
      payers.push(await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 3_000_000n));
    }
    const responses = await Promise.all(
      payers.map((payer) =>
        wrapFetchWithPayment(fetch, payingClient(payer))(`${api.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: body(),
        }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    await waitForCredit(payers[0]?.address as Address, 1);
    for (const payer of payers) await waitForCredit(payer.address, 1);
    for (const payer of payers) {
      const [usage] = await usageOfPayer(payer.address);
      expect(usage?.status).toBe('BILLED');
      const spent = 3_000_000n - (await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address));
      expect(await balanceOf(payer.address)).toBe(spent - BigInt(usage?.user_price ?? 0));
    }
    // The whole ledger: every balance is the sum of its entries, and none is below zero.
    const { rows } = await db.query(
      `select count(*)::int as bad from accounts a
       where a.balance <> coalesce((select sum(amount) from ledger_entries l where l.account_id = a.id), 0)
          or a.balance < 0 or a.held <> coalesce((select sum(hold_amount) from usage_records u
            where u.account_id = a.id and u.status in ('HELD', 'UNSETTLED') and u.account_held), 0)`,
    );
    expect(rows[0].bad).toBe(0);
  }, 120_000);
});

describe('a paid call (upto)', () => {
  it('is offered, with Permit2 approval by signature for a wallet without ETH', async () => {
    const offer = await offerFor(body());
    const upto = offer.accepts.find((a) => a.scheme === 'upto');
    const exact = offer.accepts.find((a) => a.scheme === 'exact');
    expect(upto).toMatchObject({
      network: NETWORK,
      asset: getAddress(platform.token),
      amount: exact?.amount,
    });
    expect(upto?.payTo).toBe(getAddress(platform.treasury));
    expect(upto?.extra).toMatchObject({ name: 'USD Coin', version: '2', assetTransferMethod: 'permit2' });
    expect(getAddress(upto?.extra.facilitatorAddress as string)).toBe(devAccounts.relayer.address);
    expect(offer.extensions).toHaveProperty('eip2612GasSponsoring');
  });

  it('serves, then settles what the call cost (never more than signed): deposit = usage, nothing left over', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const maximum = BigInt((await offerFor(body())).accepts[0]?.amount ?? 0);
    const response = await wrapFetchWithPayment(fetch, uptoClient(payer))(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(),
    });
    expect(response.status).toBe(200);
    const receipt = decodePaymentResponseHeader(response.headers.get('PAYMENT-RESPONSE') as string);
    expect(receipt.success).toBe(true);
    const [usage] = await usageOfPayer(payer.address);
    const price = BigInt(usage?.user_price ?? 0);
    expect(usage?.payment_scheme).toBe('upto');
    expect(price).toBeGreaterThan(0n);
    expect(price).toBeLessThan(maximum);
    expect(receipt.amount).toBe(price.toString());
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n - price);
    await waitForCredit(payer.address, 1);
    expect(await ledgerOf(payer.address)).toEqual([
      { reason: 'DEPOSIT', amount: price.toString(), balance_after: price.toString() },
      { reason: 'USAGE', amount: (-price).toString(), balance_after: '0' },
    ]);
    expect((await usageOfPayer(payer.address))[0]?.status).toBe('BILLED');
  }, 60_000);

  it('moves nothing for a call that generated nothing (the upstream failed)', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const response = await wrapFetchWithPayment(fetch, uptoClient(payer))(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'dev-error-500',
        max_tokens: 32,
        messages: [{ role: 'user', content: 'x' }],
      }),
    });
    expect(response.status).toBeGreaterThanOrEqual(500);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
    expect((await usageOfPayer(payer.address)).map((u) => [u.status, u.payment_tx_hash])).toEqual([
      ['RELEASED', null],
    ]);
  }, 30_000);

  it('records a settlement that fails after serving as UNPAID: counted in /metrics, never billed', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    // The payer moves all its funds away after the call was verified and served, before it is settled.
    const drain = async () => {
      const authorization = transferAuthorization({
        from: payer.address,
        to: devAccounts.deployer.address,
        value: await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address),
      });
      const signature = await signTransferAuthorization(
        payer,
        { token: platform.token, chainId: platform.chainId },
        authorization,
      );
      await submitTransferWithAuthorization(
        platform.anvil.rpcUrl,
        devAccounts.deployer,
        platform.token,
        authorization,
        signature,
      );
    };
    const draining = await startApi(loadConfig(platform.apiEnv(UNLIMITED_RATES)), {
      crediting: false,
      meteringFaults: { beforePaidSettlement: drain },
    });
    try {
      const response = await wrapFetchWithPayment(fetch, uptoClient(payer))(
        `${draining.url}/v1/chat/completions`,
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: body() },
      );
      // Served: the answer was given before the price, and so the payment, was known.
      expect(response.status).toBe(200);
      expect(response.headers.get('PAYMENT-RESPONSE')).toBeNull();
      const [usage] = await usageOfPayer(payer.address);
      expect(usage?.status).toBe('UNPAID');
      expect(usage?.payment_tx_hash).toBeNull();
      expect(BigInt(usage?.user_price ?? 0)).toBeGreaterThan(0n);
      const metrics = await scrape(draining.url);
      expect(sample(metrics, 'chainmeter_unpaid_calls_total', { scheme: 'upto' })).toBe(1);
      expect(
        sample(metrics, 'chainmeter_x402_payments_total', { scheme: 'upto', outcome: 'settlement_failed' }),
      ).toBe(1);
      // Nothing reached the ledger: no deposit, no usage entry, no account balance.
      expect(await ledgerOf(payer.address)).toEqual([]);
    } finally {
      await draining.close();
    }
  }, 60_000);
});

describe('a settlement credited while its call still runs', () => {
  it('puts the call hold on the account (its money cannot be spent twice), then charges it as usual', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    // dev-slow answers after 5 s: time enough for the settlement to be confirmed and credited meanwhile.
    const answer = wrapFetchWithPayment(fetch, payingClient(payer))(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'dev-slow', max_tokens: 64, messages: [{ role: 'user', content: 'x' }] }),
    });
    const running = await waitForUsage(payer.address, 'the call settled on chain and running', (u) =>
      Boolean(u.payment_tx_hash),
    );
    await mineBlocks(platform.anvil.rpcUrl, 3);
    const held = await waitFor('the deposit credited under the running call', async () => {
      const { rows } = await db.query(
        `select a.balance::text as balance, a.held::text as held, u.status, u.account_held
         from accounts a join usage_records u on u.account_id = a.id where a.wallet_address = $1`,
        [payer.address],
      );
      return rows[0]?.balance !== '0' ? rows[0] : undefined;
    });
    expect(held).toMatchObject({ status: 'HELD', account_held: true, held: running.hold_amount });
    expect(held.balance).toBe(running.hold_amount);
    expect((await answer).status).toBe(200);
    const billed = await waitForUsage(payer.address, 'the call charged', (u) => u.status === 'BILLED');
    const paid = BigInt(running.hold_amount);
    const price = BigInt(billed.user_price);
    expect(price).toBeGreaterThan(0n);
    expect(await ledgerOf(payer.address)).toEqual([
      { reason: 'DEPOSIT', amount: paid.toString(), balance_after: paid.toString() },
      { reason: 'USAGE', amount: (-price).toString(), balance_after: (paid - price).toString() },
    ]);
    const { rows } = await db.query('select held::text as held from accounts where wallet_address = $1', [
      payer.address,
    ]);
    expect(rows[0].held).toBe('0');
  }, 60_000);
});

describe('a paid stream (upto)', () => {
  it('streams, then settles the stream price after it ended', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const response = await wrapFetchWithPayment(fetch, uptoClient(payer))(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(64, { stream: true, stream_options: { include_usage: true } }),
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('data: [DONE]');
    const usage = await waitForUsage(payer.address, 'the stream settled on chain', (u) =>
      Boolean(u.payment_tx_hash),
    );
    const price = BigInt(usage?.user_price ?? 0);
    expect(price).toBeGreaterThan(0n);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n - price);
    await waitForCredit(payer.address, 1);
    expect(await ledgerOf(payer.address)).toEqual([
      { reason: 'DEPOSIT', amount: price.toString(), balance_after: price.toString() },
      { reason: 'USAGE', amount: (-price).toString(), balance_after: '0' },
    ]);
  }, 60_000);
});

describe('a cut stream (exact)', () => {
  it('settles what it produced: billed for the output generated, the rest stays as credits', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const cut = JSON.stringify({
      model: 'dev-cut',
      max_tokens: 256,
      stream: true,
      messages: [{ role: 'user', content: 'Tell me a long story.' }],
    });
    const response = await wrapFetchWithPayment(fetch, payingClient(payer))(
      `${api.url}/v1/chat/completions`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: cut,
      },
    );
    expect(response.status).toBe(200);
    await response.text().catch(() => '');
    await waitForCredit(payer.address, 1);
    const [usage] = await usageOfPayer(payer.address);
    expect(usage?.status).toBe('BILLED');
    const price = BigInt(usage?.user_price ?? 0);
    const paid = BigInt(usage?.hold_amount ?? 0);
    expect(price).toBeGreaterThan(0n);
    expect(price).toBeLessThan(paid);
    expect(await balanceOf(payer.address)).toBe(paid - price);
  }, 60_000);
});

describe('a paid call its process left unfinished', () => {
  it('is closed by the settlement loop: exact released (its payment stays as credits), upto unpaid', async () => {
    const sql = sqlFor(api.services.orm);
    const past = new Date(Date.now() - 60_000);
    const place = (scheme: 'exact' | 'upto', payer: Address) =>
      placePaidCall(sql, {
        payer,
        scheme,
        requestId: `req_abandoned_${scheme}_${Date.now()}`,
        model: 'chainmeter-dev',
        maxPrice: 1_000n as MicroUsd,
        streamed: false,
        now: past,
        holdExpiresAt: new Date(past.getTime() + 1_000),
      }).then((placed) => {
        if ('refused' in placed) throw new Error(`not placed: ${placed.refused}`);
        return placed;
      });
    const exactPayer = privateKeyToAccount(generatePrivateKey()).address;
    const uptoPayer = privateKeyToAccount(generatePrivateKey()).address;
    const exact = await place('exact', exactPayer);
    await recordPayment(sql, exact.usageId, `0x${'ee'.repeat(32)}`, 1_000n);
    const upto = await place('upto', uptoPayer);
    // The API's own loop (METERING_RETRY_MS, 1 s) closes them; nothing here calls it. It once did not: only
    // a direct call of the service's settleOutstanding closed abandoned paid calls, and a replica killed
    // mid-call left its paid call HELD for good (the soak's "nothing held" check failed on one).
    await waitFor(
      'the settlement loop to close both calls',
      async () => {
        const statuses = [...(await usageOfPayer(exactPayer)), ...(await usageOfPayer(uptoPayer))];
        return statuses.every((u) => u.status !== 'HELD');
      },
      30_000,
    );
    expect((await usageOfPayer(exactPayer)).map((u) => u.status)).toEqual(['RELEASED']);
    expect((await usageOfPayer(uptoPayer)).map((u) => u.status)).toEqual(['UNPAID']);
    expect(upto.accountId).not.toBe(exact.accountId);
    // Nothing was held on the accounts, so nothing is released from them.
    const { rows } = await db.query('select held::text as held from accounts where id = any($1::uuid[])', [
      [exact.accountId, upto.accountId],
    ]);
    expect(rows.map((r) => r.held)).toEqual(['0', '0']);
    // Not real calls: out of the audit's way.
    await db.query('delete from usage_records where id = any($1::uuid[])', [[exact.usageId, upto.usageId]]);
  });
});

describe('the audit', () => {
  const audit = (query: (text: string, values: readonly unknown[]) => Promise<unknown[]>) =>
    auditPlatform(platform, query, 2);

  it('re-derives every x402 payment like any deposit, checks each paid call against its settlement: clean', async () => {
    await mineBlocks(platform.anvil.rpcUrl, 3);
    await waitFor('every settlement credited, no paid call awaiting', async () => {
      const { rows } = await db.query(
        `select (select count(*) from deposits where status <> 'CREDITED')::int
           + (select count(*) from usage_records where status = 'AWAITING_PAYMENT')::int as open`,
      );
      return rows[0].open === 0;
    });
    const report = await audit(async (text, values) => (await db.query(text, [...values])).rows);
    expect(report.discrepancies).toEqual([]);
    expect(report.consistent).toBe(true);
    // Every paid call of this file that was charged: 2 exact, 1 replay, 10 payers, 2 upto, 1 credited while
    // running, 1 cut stream.
    const { rows } = await db.query(
      `select count(*)::int as n from usage_records where payment_scheme is not null and status = 'BILLED'`,
    );
    expect(report.summary.paidCallsChecked).toBe(rows[0].n);
    expect(rows[0].n).toBe(17);
    // The upto call whose settlement failed after serving is listed, not hidden.
    expect(report.unpaidCalls).toHaveLength(1);
    expect(report.unpaidCalls[0]?.scheme).toBe('upto');
  }, 60_000);

  it('serves auditors every paid call, paged, and the server-side auditReport is clean too', async () => {
    const auditor = privateKeyToAccount(generatePrivateKey());
    const auditing = await startApi(
      loadConfig(platform.apiEnv({ ...UNLIMITED_RATES, AUDITOR_ADDRESSES: auditor.address })),
      { crediting: false },
    );
    try {
      const token = await signIn(auditing.url, auditor, platform.chainId);
      const served: { usageId: string; status: string; txHash: string | null; userPriceMicroUsd: string }[] =
        [];
      let after: string | null = null;
      for (let page = 0; page < 20; page++) {
        const data: {
          audit: {
            paidCalls: {
              pageInfo: { hasNextPage: boolean; endCursor: string | null };
              edges: { node: (typeof served)[number] }[];
            };
          };
        } = await gqlData(
          auditing.url,
          `query($after: String) { audit { paidCalls(first: 4, after: $after) { pageInfo { hasNextPage endCursor }
            edges { node { usageId status txHash userPriceMicroUsd } } } } }`,
          { after },
          token,
        );
        served.push(...data.audit.paidCalls.edges.map((edge) => edge.node));
        if (!data.audit.paidCalls.pageInfo.hasNextPage) break;
        after = data.audit.paidCalls.pageInfo.endCursor;
      }
      const { rows } = await db.query(
        `select id, status, payment_tx_hash, user_price::text as user_price from usage_records
         where payment_scheme is not null order by id`,
      );
      expect(served).toEqual(
        rows.map((r) => ({
          usageId: r.id,
          status: r.status,
          txHash: r.payment_tx_hash,
          userPriceMicroUsd: r.user_price,
        })),
      );
      const { auditReport } = await gqlData<{
        auditReport: { consistent: boolean; discrepancies: unknown[] };
      }>(auditing.url, '{ auditReport { consistent discrepancies { kind message } } }', {}, token);
      expect(auditReport).toEqual({ consistent: true, discrepancies: [] });
    } finally {
      await auditing.close();
    }
  }, 60_000);

  it('finds a paid call whose charge does not match its settlement', async () => {
    await db.query('begin');
    try {
      await db.query(
        `update usage_records set user_price = user_price + 1
         where id = (select id from usage_records where payment_scheme = 'upto' and status = 'BILLED' limit 1)`,
      );
      const report = await audit(async (text, values) => (await db.query(text, [...values])).rows);
      expect(report.counts.PAID_CALL_MISMATCH).toBeGreaterThanOrEqual(1);
      expect(report.discrepancies.every((d) => d.kind === 'PAID_CALL_MISMATCH')).toBe(true);
    } finally {
      await db.query('rollback');
    }
  });
});
