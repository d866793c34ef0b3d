/**
 * A hostile payer against pay per request (x402 v2, `exact` and `upto`) and the gasless top-up relayer, on the
 * real platform: anvil, Ponder, PostgreSQL, two API instances sharing one database, and the official x402 client
 * (`@x402/fetch` / `@x402/evm`), or viem signing for what that client refuses to make. Each test is a way to get
 * a call or credits for free, to be charged twice, or to get a 500 for the payer's own mistake; each fails if
 * the platform lets it through.
 */

import { devAccounts } from '@chainmeter/testkit/accounts';
import { mineBlocks, setAutomine } from '@chainmeter/testkit/anvil';
import {
  eip3009Abi,
  signTransferAuthorization,
  submitTransferWithAuthorization,
  type TransferAuthorization,
  transferAuthorization,
} from '@chainmeter/testkit/eip3009';
import { createGaslessPayer, type GaslessPayer, mintUsdc, usdcBalance } from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import { decodePaymentRequiredHeader } from '@x402/core/http';
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { wrapFetchWithPayment } from '@x402/fetch';
import type pg from 'pg';
import {
  type Address,
  createPublicClient,
  createTestClient,
  encodeFunctionData,
  getAddress,
  type Hash,
  type Hex,
  http,
} from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import { auditOnceSettled } from './support/audit.ts';
import { gql } from './support/graphql.ts';
import { errorCode, relayerNonce, walletLedger } from './support/paid-calls.ts';
import {
  type ApiProcess,
  connectApiDatabase,
  type Platform,
  spawnApiProcess,
  startPlatform,
  UNLIMITED_RATES,
} from './support/platform.ts';
import { sample, scrape } from './support/prometheus.ts';
import { RELAY_PAYMENT, transferAuthorizationInput } from './support/relay.ts';
import { waitFor } from './support/wait-for.ts';

let platform: Platform;
/** Two API instances on one database: a load balancer may send the same payment to both. */
let apiA: RunningApi;
let apiB: ApiProcess;
let db: pg.Client;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  const env = {
    ...UNLIMITED_RATES,
    RELAY_RATE_LIMIT_IP_PER_HOUR: '1000',
    RELAY_RATE_LIMIT_WALLET_PER_HOUR: '100',
    // An UNPAID call stays so here (what its wallet gets meanwhile); settling it again once the wallet can pay
    // is x402-unpaid-retry.test.ts's.
    X402_UNPAID_RETRY_MS: '3600000',
  };
  apiA = await platform.startApi(env);
  // A second replica as its own process: nothing kept in memory (the relayer's nonces and in-flight set, the
  // facilitator's state) is shared with the first, only the database and the chain.
  apiB = await spawnApiProcess(platform.apiEnv(env));
  db = await connectApiDatabase(platform);
}, 120_000);

afterAll(async () => {
  await apiB?.stop();
  await db?.end();
  await platform?.close();
});

const chain = () => createPublicClient({ transport: http(platform.anvil.rpcUrl), pollingInterval: 50 });
const body = (model = 'chainmeter-dev-large', maxTokens = 64) =>
  JSON.stringify({
    model,
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: 'Say something short.' }],
  });

const chat = (url: string, headers: Record<string, string> = {}, requestBody = body()) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: requestBody,
  });

async function offerFor(requestBody = body()): Promise<PaymentRequired> {
  const response = await chat(apiA.url, {}, requestBody);
  expect(response.status).toBe(402);
  return decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED') as string);
}

function requirementOf(offer: PaymentRequired, scheme: 'exact' | 'upto'): PaymentRequirements {
  const found = offer.accepts.find((requirements) => requirements.scheme === scheme);
  if (!found) throw new Error(`no ${scheme} in the offer`);
  return found;
}

/** A payment signed by the official client for `scheme` of this offer. */
async function signedPayment(
  payer: GaslessPayer,
  offer: PaymentRequired,
  scheme: 'exact' | 'upto',
): Promise<PaymentPayload> {
  const client = devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token], scheme });
  return client.createPaymentPayload({ ...offer, accepts: [requirementOf(offer, scheme)] });
}

const paymentHeader = (payload: unknown) => ({
  'PAYMENT-SIGNATURE': Buffer.from(JSON.stringify(payload)).toString('base64'),
});

interface PaidRow {
  status: string;
  user_price: string;
  payment_tx_hash: string | null;
  payment_scheme: string;
}

async function rowsOf(payer: Address): Promise<PaidRow[]> {
  const { rows } = await db.query(
    `select status, user_price::text as user_price, payment_tx_hash, payment_scheme from usage_records
     where payer_address = $1 order by created_at`,
    [getAddress(payer)],
  );
  return rows as PaidRow[];
}

/** Mines the confirmations, then waits until `wallet` has `deposits` credited and no paid call awaiting. */
async function waitForCredit(wallet: Address, deposits: number) {
  await mineBlocks(platform.anvil.rpcUrl, 3);
  await waitFor(
    `${deposits} credited deposit(s) of ${wallet}`,
    async () => {
      const { rows } = await db.query(
        `select count(*)::int as n from deposits where from_address = $1 and status = 'CREDITED'`,
        [getAddress(wallet)],
      );
      const awaiting = (await rowsOf(wallet)).filter((row) => row.status === 'AWAITING_PAYMENT').length;
      return rows[0].n === deposits && awaiting === 0;
    },
    30_000,
  );
}

/**
 * Runs `work` on a chain that mines a block every second, as a real one does, instead of at each transaction:
 * a settlement broadcast stays pending a while, the window in which a payment can be sent again.
 */
async function withBlockTime<T>(work: () => Promise<T>): Promise<T> {
  const test = createTestClient({ mode: 'anvil', transport: http(platform.anvil.rpcUrl) });
  await test.setAutomine(false);
  await test.setIntervalMining({ interval: 1 });
  try {
    return await work();
  } finally {
    await test.setIntervalMining({ interval: 0 });
    await test.setAutomine(true);
  }
}

describe('the same PAYMENT-SIGNATURE sent several times at once', () => {
  for (const scheme of ['exact', 'upto'] as const) {
    it(`${scheme}: to one instance twice and to a second instance once, exactly one call is served and paid`, async () => {
      const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
      const offer = await offerFor();
      const signedMaximum = BigInt(requirementOf(offer, scheme).amount);
      const header = paymentHeader(await signedPayment(payer, offer, scheme));
      const relayerBefore = await relayerNonce(platform.anvil.rpcUrl);
      const answers = await withBlockTime(() =>
        Promise.all(
          [apiA.url, apiA.url, apiB.url].map(async (url) => {
            const response = await chat(url, header);
            return { status: response.status, text: await response.text() };
          }),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 402, 402]);
      for (const answer of answers.filter((a) => a.status === 402)) {
        expect((JSON.parse(answer.text) as { error: { code: string } }).error.code).toMatch(/^[a-z0-9_]+$/);
      }

      // One call served and charged; the others are refused without being answered.
      const rows = (await waitFor('the served call priced', async () => {
        const all = await rowsOf(payer.address);
        return all.some((row) => row.status === 'HELD') ? undefined : all;
      })) as PaidRow[];
      const served = rows.filter((row) => row.status !== 'RELEASED');
      expect(served).toHaveLength(1);
      // One settlement sent: no gas spent on the copies.
      expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(relayerBefore + 1);
      const price = BigInt(served[0]?.user_price ?? -1);
      expect(price).toBeGreaterThan(0n);
      // exact moves the signed maximum once (the rest stays as credits); upto moves the price once.
      const moved = scheme === 'exact' ? signedMaximum : price;
      expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(
        5_000_000n - moved,
      );
      await waitForCredit(payer.address, 1);
      expect(await walletLedger(db, payer.address)).toEqual([
        { reason: 'DEPOSIT', amount: moved.toString() },
        { reason: 'USAGE', amount: (-price).toString() },
      ]);
      expect((await rowsOf(payer.address)).filter((row) => row.status === 'BILLED')).toHaveLength(1);
    }, 60_000);
  }
});

describe('upto: the payer moves its funds away while its call runs', () => {
  it('is recorded UNPAID and counted, and the wallet gets no second upto call (exact still serves it)', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const slow = body('dev-slow', 64);
    const pay = wrapFetchWithPayment(
      fetch,
      devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token], scheme: 'upto' }),
    );
    const unpaidBefore =
      sample(await scrape(apiA.url), 'chainmeter_unpaid_calls_total', { scheme: 'upto' }) ?? 0;
    const answer = pay(`${apiA.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: slow,
    });
    // Verified and running (dev-slow answers after 5 s): the payer empties its wallet by its own signature.
    await waitFor('the call running', async () => (await rowsOf(payer.address))[0]?.status === 'HELD');
    const elsewhere = transferAuthorization({
      from: payer.address,
      to: devAccounts.deployer.address,
      value: 5_000_000n,
    });
    await submitTransferWithAuthorization(
      platform.anvil.rpcUrl,
      devAccounts.deployer,
      platform.token,
      elsewhere,
      await signTransferAuthorization(payer, { token: platform.token, chainId: platform.chainId }, elsewhere),
    );
    const response = await answer;
    expect(response.status).toBe(200);
    await response.body?.cancel();
    const [unpaid] = (await waitFor('the call ended', async () => {
      const rows = await rowsOf(payer.address);
      return rows[0]?.status !== 'HELD' ? rows : undefined;
    })) as PaidRow[];
    expect(unpaid?.status).toBe('UNPAID');
    expect(unpaid?.payment_tx_hash).toBeNull();
    expect(BigInt(unpaid?.user_price ?? 0)).toBeGreaterThan(0n);
    expect(sample(await scrape(apiA.url), 'chainmeter_unpaid_calls_total', { scheme: 'upto' })).toBe(
      unpaidBefore + 1,
    );
    expect(await walletLedger(db, payer.address)).toEqual([]);

    // Funded again, the same payer asks for another upto call: refused before anything is served or moved,
    // on either instance.
    await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 5_000_000n);
    const refused = () =>
      scrape(apiA.url).then(
        (metrics) =>
          sample(metrics, 'chainmeter_x402_payments_total', { scheme: 'upto', outcome: 'refused' }) ?? 0,
      );
    const refusedBefore = await refused();
    for (const url of [apiA.url, apiB.url]) {
      const again = await pay(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body(),
      });
      expect(again.status).toBe(402);
      expect(await errorCode(again)).toBe('payer_has_unpaid_calls');
      const offer = decodePaymentRequiredHeader(again.headers.get('PAYMENT-REQUIRED') as string);
      expect(offer.error).toBe('payer_has_unpaid_calls');
    }
    expect((await rowsOf(payer.address)).map((row) => row.status)).toEqual(['UNPAID']);
    // Each refusal is counted where it happened: one on this replica.
    expect(await refused()).toBe(refusedBefore + 1);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);

    // exact still serves it: it pays before it is served.
    const exact = wrapFetchWithPayment(
      fetch,
      devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token], scheme: 'exact' }),
    );
    const paid = await exact(`${apiB.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(),
    });
    expect(paid.status).toBe(200);
    await paid.body?.cancel();
  }, 60_000);
});

describe('upto: a burst of payments from a wallet that holds one call', () => {
  it('serves no more calls at once than the wallet can pay for', async () => {
    // dev-reasoning generates exactly max_tokens, so each call costs nearly its maximum: the wallet, holding
    // one maximum, can pay one of them.
    const reasoning = body('dev-reasoning', 64);
    const offer = await offerFor(reasoning);
    const maximum = BigInt(requirementOf(offer, 'upto').amount);
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, maximum);
    // Three payments, each valid alone (its own Permit2 nonce, the wallet holds its amount).
    const headers: Record<string, string>[] = [];
    for (let i = 0; i < 3; i++) headers.push(paymentHeader(await signedPayment(payer, offer, 'upto')));
    const statuses = await withBlockTime(() =>
      Promise.all(
        headers.map(async (header, i) => {
          const response = await chat(i === 2 ? apiB.url : apiA.url, header, reasoning);
          await response.text();
          return response.status;
        }),
      ),
    );
    const rows = (await waitFor('every call ended', async () => {
      const all = await rowsOf(payer.address);
      return all.some((row) => row.status === 'HELD') ? undefined : all;
    })) as PaidRow[];
    const served = rows.filter((row) => row.status !== 'RELEASED');
    // Every call served was paid: none UNPAID, and what left the wallet is what the served calls cost.
    expect(served.map((row) => row.status)).not.toContain('UNPAID');
    // The wallet holds one maximum: one call at a time fits, the two others are refused before being served.
    expect([...statuses].sort()).toEqual([200, 402, 402]);
    expect(served).toHaveLength(1);
    const cost = served.reduce((sum, row) => sum + BigInt(row.user_price), 0n);
    expect(cost).toBeGreaterThan(0n);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(maximum - cost);
  }, 60_000);
});

describe('two replicas sharing one relayer wallet', () => {
  it('settle payments at the same moment without colliding on the relayer nonce: all served and paid', async () => {
    // Not an attack: what a hostile payer's UNPAID record must never be confused with. Four payers, two calls
    // per replica, settled at once by the same relayer account from two processes.
    const offer = await offerFor();
    const payers = [];
    for (let i = 0; i < 4; i++)
      payers.push(await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n));
    const headers = await Promise.all(
      payers.map(async (payer) => paymentHeader(await signedPayment(payer, offer, 'upto'))),
    );
    const statuses = await withBlockTime(() =>
      Promise.all(
        headers.map(async (header, i) => {
          const response = await chat(i % 2 === 0 ? apiA.url : apiB.url, header);
          await response.text();
          return response.status;
        }),
      ),
    );
    expect(statuses).toEqual([200, 200, 200, 200]);
    for (const payer of payers) {
      const [row] = (await waitFor('the call ended', async () => {
        const rows = await rowsOf(payer.address);
        return rows[0]?.status !== 'HELD' ? rows : undefined;
      })) as PaidRow[];
      expect(row?.status).toBe('AWAITING_PAYMENT');
      expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(
        5_000_000n - BigInt(row?.user_price ?? 0),
      );
    }
  }, 60_000);
});

describe('exact: the payer front-runs the settlement with its own transferWithAuthorization', () => {
  it('serves nothing, and the transfer the payer made is credited to it once, as a deposit', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const offer = await offerFor();
    const amount = BigInt(requirementOf(offer, 'exact').amount);
    const payment = await signedPayment(payer, offer, 'exact');
    const signed = payment.payload as { authorization: Record<string, string>; signature: Hex };
    await setAutomine(platform.anvil.rpcUrl, false);
    let response: Response;
    try {
      const answer = chat(apiA.url, paymentHeader(payment));
      // The relayer broadcast its settlement; before a block is mined the payer sends the same authorization
      // itself, paying more for gas, so it is mined first.
      await waitFor(
        'the settlement broadcast',
        async () => (await rowsOf(payer.address))[0]?.payment_tx_hash,
      );
      // Signed by hand and sent raw: the node would refuse to estimate a call its pending block makes revert.
      const a = signed.authorization;
      const data = encodeFunctionData({
        abi: eip3009Abi,
        functionName: 'transferWithAuthorization',
        args: [
          getAddress(a.from as string),
          getAddress(a.to as string),
          BigInt(a.value as string),
          BigInt(a.validAfter as string),
          BigInt(a.validBefore as string),
          a.nonce as Hex,
          signed.signature,
        ],
      });
      const raw = await devAccounts.deployer.signTransaction({
        type: 'eip1559',
        chainId: platform.chainId,
        to: platform.token,
        data,
        gas: 200_000n,
        nonce: await chain().getTransactionCount({
          address: devAccounts.deployer.address,
          blockTag: 'pending',
        }),
        maxPriorityFeePerGas: 50_000_000_000n,
        maxFeePerGas: 100_000_000_000n,
      });
      const frontRun = await chain().sendRawTransaction({ serializedTransaction: raw });
      await mineBlocks(platform.anvil.rpcUrl, 1);
      expect((await chain().getTransactionReceipt({ hash: frontRun })).status).toBe('success');
      response = await answer;
    } finally {
      await setAutomine(platform.anvil.rpcUrl, true);
    }
    expect(response.status).toBe(402);
    expect(await errorCode(response)).toMatch(/^[a-z0-9_]+$/);
    const [row] = await rowsOf(payer.address);
    expect(row?.status).toBe('RELEASED');
    expect((await chain().getTransactionReceipt({ hash: row?.payment_tx_hash as Hash })).status).toBe(
      'reverted',
    );
    // The payer's own transfer moved the amount once; it is the payer's deposit, nothing charged against it.
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n - amount);
    await waitForCredit(payer.address, 1);
    expect(await walletLedger(db, payer.address)).toEqual([{ reason: 'DEPOSIT', amount: amount.toString() }]);
  }, 60_000);
});

describe('malformed payments: a 4xx with a code, never a 500', () => {
  it('refuses each, serving nothing and moving nothing', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const offer = await offerFor();
    const exact = await signedPayment(payer, offer, 'exact');
    const upto = await signedPayment(payer, offer, 'upto');
    const nowSeconds = Math.floor(Date.now() / 1000);
    const withAuthorization = (fields: Record<string, unknown>) => ({
      ...exact,
      payload: {
        ...(exact.payload as object),
        authorization: { ...(exact.payload as { authorization: object }).authorization, ...fields },
      },
    });
    const withSignature = (signature: unknown) => ({
      ...exact,
      payload: { ...(exact.payload as object), signature },
    });
    const raw = (text: string) => ({ 'PAYMENT-SIGNATURE': text });
    const cases: [string, Record<string, string>][] = [
      ['not base64', raw('%%% not base64 %%%')],
      ['base64 of text', raw(Buffer.from('hello').toString('base64'))],
      ['null', paymentHeader(null)],
      ['an array', paymentHeader([])],
      ['a number', paymentHeader(42)],
      ['an empty object', paymentHeader({})],
      ['x402Version 1', paymentHeader({ ...exact, x402Version: 1 })],
      ['x402Version "2"', paymentHeader({ ...exact, x402Version: '2' })],
      ['no accepted', paymentHeader({ ...exact, accepted: undefined })],
      ['accepted null', paymentHeader({ ...exact, accepted: null })],
      ['accepted a string', paymentHeader({ ...exact, accepted: 'exact' })],
      ['no payload', paymentHeader({ ...exact, payload: undefined })],
      ['payload null', paymentHeader({ ...exact, payload: null })],
      [
        'another network',
        paymentHeader({ ...exact, accepted: { ...exact.accepted, network: 'eip155:8453' } }),
      ],
      [
        'a network that is no CAIP-2',
        paymentHeader({ ...exact, accepted: { ...exact.accepted, network: 'base' } }),
      ],
      ['an upto payload on the exact offer', paymentHeader({ ...upto, accepted: exact.accepted })],
      ['an exact payload on the upto offer', paymentHeader({ ...exact, accepted: upto.accepted })],
      ['value not decimal', paymentHeader(withAuthorization({ value: 'abc' }))],
      ['value hex', paymentHeader(withAuthorization({ value: '0x10' }))],
      ['value negative', paymentHeader(withAuthorization({ value: '-1' }))],
      ['value above 2^256', paymentHeader(withAuthorization({ value: (2n ** 256n).toString() }))],
      ['value a number', paymentHeader(withAuthorization({ value: 1e6 }))],
      ['value null', paymentHeader(withAuthorization({ value: null }))],
      [
        'validAfter in the future',
        paymentHeader(withAuthorization({ validAfter: String(nowSeconds + 3600) })),
      ],
      ['validBefore not decimal', paymentHeader(withAuthorization({ validBefore: 'soon' }))],
      ['validBefore above 2^256', paymentHeader(withAuthorization({ validBefore: (2n ** 300n).toString() }))],
      ['nonce too short', paymentHeader(withAuthorization({ nonce: '0x1234' }))],
      ['nonce not hex', paymentHeader(withAuthorization({ nonce: 'nonce' }))],
      ['from not an address', paymentHeader(withAuthorization({ from: '0x1234' }))],
      ['signature too short', paymentHeader(withSignature('0x1234'))],
      ['signature too long', paymentHeader(withSignature(`0x${'ab'.repeat(66)}`))],
      ['signature not hex', paymentHeader(withSignature('not a signature'))],
      ['signature missing', paymentHeader(withSignature(undefined))],
      [
        'amount tampered in accepted',
        paymentHeader({ ...exact, accepted: { ...exact.accepted, amount: '1' } }),
      ],
      [
        'upto amount not decimal',
        paymentHeader({
          ...upto,
          payload: {
            ...(upto.payload as object),
            permit2Authorization: {
              ...(upto.payload as { permit2Authorization: object }).permit2Authorization,
              nonce: 'x',
              deadline: '-5',
            },
          },
        }),
      ],
      [
        'a large header (12 KB of junk JSON)',
        paymentHeader({ ...exact, accepted: { junk: 'x'.repeat(9_000) } }),
      ],
    ];
    const relayerBefore = await relayerNonce(platform.anvil.rpcUrl);
    const failures: string[] = [];
    for (const [name, header] of cases) {
      const response = await chat(apiA.url, header);
      const code = await errorCode(response);
      if (response.status !== 402 && response.status !== 400)
        failures.push(`${name}: HTTP ${response.status}`);
      else if (!code || !/^[a-z0-9_]+$/.test(code)) failures.push(`${name}: code ${String(code)}`);
    }
    expect(failures).toEqual([]);
    // A request body the payer got wrong: refused before any offer is made or anything is read from the chain.
    const bodies: [string, unknown][] = [
      [
        'max_tokens 1e30',
        { model: 'chainmeter-dev', max_tokens: 1e30, messages: [{ role: 'user', content: 'x' }] },
      ],
      [
        'max_tokens -1',
        { model: 'chainmeter-dev', max_tokens: -1, messages: [{ role: 'user', content: 'x' }] },
      ],
      [
        'max_tokens 1.5',
        { model: 'chainmeter-dev', max_tokens: 1.5, messages: [{ role: 'user', content: 'x' }] },
      ],
      [
        'max_tokens "64"',
        { model: 'chainmeter-dev', max_tokens: '64', messages: [{ role: 'user', content: 'x' }] },
      ],
      ['no model', { max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }],
      ['messages an object', { model: 'chainmeter-dev', messages: { role: 'user' } }],
      ['an unpriced model', { model: 'dev-unpriced', messages: [{ role: 'user', content: 'x' }] }],
      ['a JSON array', []],
    ];
    for (const [name, requestBody] of bodies) {
      const response = await chat(apiA.url, paymentHeader(exact), JSON.stringify(requestBody));
      const code = await errorCode(response);
      if (response.status !== 400 || !code) failures.push(`${name}: HTTP ${response.status} ${String(code)}`);
    }
    expect(failures).toEqual([]);
    // A header larger than the server takes is refused by the HTTP layer (431), never a 500.
    const huge = await chat(apiA.url, raw('A'.repeat(200_000))).catch(() => null);
    if (huge) expect(huge.status).toBeLessThan(500);
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(relayerBefore);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
    expect((await rowsOf(payer.address)).filter((row) => row.status !== 'RELEASED')).toEqual([]);
  }, 60_000);
});

type RelayAnswer = Awaited<ReturnType<typeof gql<{ relayPayment: { txHash: Hash; amountToken: string } }>>>;

describe('the gasless top-up relayer', () => {
  async function signed(payer: GaslessPayer, fields: Partial<TransferAuthorization> & { value: bigint }) {
    const authorization = transferAuthorization({ from: payer.address, to: platform.treasury, ...fields });
    const signature = await signTransferAuthorization(
      payer,
      { token: platform.token, chainId: platform.chainId },
      authorization,
    );
    return transferAuthorizationInput(authorization, signature);
  }

  const relay = (url: string, input: unknown): Promise<RelayAnswer> => gql(url, RELAY_PAYMENT, { input });

  it('relays one authorization sent at once to two instances, three times: one transaction, credited once', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const input = await signed(payer, { value: 2_000_000n });
    const before = await relayerNonce(platform.anvil.rpcUrl);
    const answers = await withBlockTime(async () => {
      const all = await Promise.all([relay(apiA.url, input), relay(apiA.url, input), relay(apiB.url, input)]);
      const sent = all.find((answer) => answer.data?.relayPayment)?.data?.relayPayment.txHash;
      if (sent) await chain().waitForTransactionReceipt({ hash: sent });
      return all;
    });
    const relayed = answers.filter((answer) => answer.data?.relayPayment);
    expect(relayed).toHaveLength(1);
    for (const answer of answers.filter((a) => !a.data?.relayPayment)) {
      expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(['AUTHORIZATION_IN_FLIGHT', 'AUTHORIZATION_USED']).toContain(
        (answer.errors?.[0]?.extensions as { reason?: string } | undefined)?.reason,
      );
    }
    // No gas spent on what could be refused: one transaction.
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(before + 1);
    await chain().waitForTransactionReceipt({ hash: relayed[0]?.data?.relayPayment.txHash as Hash });
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(3_000_000n);
    await waitForCredit(payer.address, 1);
    expect(await walletLedger(db, payer.address)).toEqual([{ reason: 'DEPOSIT', amount: '2000000' }]);

    // Replayed once mined, on either instance: refused, nothing sent.
    for (const url of [apiA.url, apiB.url]) {
      const replay = await relay(url, input);
      expect(replay.errors?.[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        reason: 'AUTHORIZATION_USED',
      });
    }
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(before + 1);
  }, 60_000);

  it('refuses value 0, another payee and another token before sending anything', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const before = await relayerNonce(platform.anvil.rpcUrl);
    const zero = await relay(apiA.url, await signed(payer, { value: 0n }));
    expect(zero.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'BELOW_MINIMUM' });
    const payee = await relay(apiA.url, await signed(payer, { value: 2_000_000n, to: payer.address }));
    expect(payee.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'WRONG_RECIPIENT',
    });
    // Signed for another token: the relayer's domain is the platform's USDC, so the signature does not recover.
    const authorization = transferAuthorization({
      from: payer.address,
      to: platform.treasury,
      value: 2_000_000n,
    });
    const otherToken = await signTransferAuthorization(
      payer,
      { token: devAccounts.deployer.address, chainId: platform.chainId },
      authorization,
    );
    const token = await relay(apiA.url, transferAuthorizationInput(authorization, otherToken));
    expect(token.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_SIGNATURE',
    });
    expect(await relayerNonce(platform.anvil.rpcUrl)).toBe(before);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
  }, 30_000);
});

describe('the audit after all of the above', () => {
  it('is consistent, and lists the one call served and never paid', async () => {
    const report = await auditOnceSettled(platform, db, 2);
    expect(report.discrepancies).toEqual([]);
    // The upto call whose payer emptied its wallet while it ran; the refused copies and bursts left nothing.
    expect(report.unpaidCalls.map((call) => call.scheme)).toEqual(['upto']);
  }, 60_000);
});
