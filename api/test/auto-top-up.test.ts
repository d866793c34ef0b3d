/**
 * Auto top-up end to end on the real platform: anvil with the EIP-3009 test token, Ponder, PostgreSQL, and two
 * API replicas (each runs crediting and the auto top-up worker) over the built-in dev model. A wallet signs
 * authorizations to the treasury, `setAutoTopUp` stores them; a burst of metered calls spends the account
 * below its threshold; exactly one authorization is submitted by the relayer and credited like any payment,
 * and the books agree with the chain. A payer without the funds gets AUTO_TOP_UP_FAILED and a paused top-up.
 */
import { mineBlocks } from '@chainmeter/testkit/anvil';
import { signTransferAuthorization, transferAuthorization } from '@chainmeter/testkit/eip3009';
import { createGaslessPayer, mintUsdc, usdcBalance } from '@chainmeter/testkit/token';
import OpenAI from 'openai';
import type { LocalAccount } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendLedgerEntry } from '../src/modules/ledger/ledger.service.ts';
import type { RunningApi } from '../src/server.ts';
import { gql, gqlData, signIn } from './support/graphql.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { type Platform, startPlatform, UNLIMITED_RATES } from './support/platform.ts';
import { transferAuthorizationInput } from './support/relay.ts';
import { waitFor } from './support/wait-for.ts';

const SET = `mutation($input: AutoTopUpInput!) { setAutoTopUp(input: $input) { threshold remaining paused pausedReason nonces } }`;
const TOP_UP = 10_000n; // token base units = micro-USD: 10 credits each

let platform: Platform;
let apiA: RunningApi;
let apiB: RunningApi;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  const env = { ...UNLIMITED_RATES, RELAY_MIN_AMOUNT: '1000' };
  apiA = await platform.startApi(env);
  apiB = await platform.startApi(env);
}, 180_000);

afterAll(async () => {
  await platform?.close();
});

const sql = <T>(text: string, params: unknown[] = []) =>
  apiA.services.orm.em.fork().execute<T[]>(text, params);

interface User {
  payer: LocalAccount;
  token: string;
  accountId: string;
}

async function newUser(usdc: bigint, credits: bigint): Promise<User> {
  const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, usdc);
  const token = await signIn(apiA.url, payer, platform.chainId);
  const { me } = await gqlData<{ me: { id: string } }>(apiA.url, '{ me { id } }', {}, token);
  await appendLedgerEntry(apiA.services.orm.em.fork(), {
    accountId: me.id,
    amount: credits,
    reason: 'ADJUSTMENT',
    referenceId: 'test-setup',
  });
  await sql(
    `insert into webhook_endpoints (account_id, url, secret, events)
     values (?, 'https://example.com/hook', 'whsec_test', '{AUTO_TOP_UP_SUBMITTED,AUTO_TOP_UP_FAILED}')`,
    [me.id],
  );
  return { payer, token, accountId: me.id };
}

async function signed(
  user: User,
  fields: { value?: bigint; to?: `0x${string}`; validForSeconds?: number } = {},
) {
  const authorization = transferAuthorization({
    from: user.payer.address,
    to: fields.to ?? platform.treasury,
    value: fields.value ?? TOP_UP,
    validForSeconds: fields.validForSeconds ?? 86_400,
  });
  const signature = await signTransferAuthorization(
    user.payer,
    { token: platform.token, chainId: platform.chainId },
    authorization,
  );
  return transferAuthorizationInput(authorization, signature);
}

async function outbox(user: User, type: string): Promise<Record<string, unknown>[]> {
  const rows = await sql<{ data: unknown }>(
    'select data from webhook_deliveries where account_id = ? and event_type = ? order by created_at',
    [user.accountId, type],
  );
  return rows.map((row) => (typeof row.data === 'string' ? JSON.parse(row.data) : row.data));
}

async function balance(user: User): Promise<bigint> {
  const [row] = await sql<{ balance: string }>('select balance::text as balance from accounts where id = ?', [
    user.accountId,
  ]);
  return BigInt(row?.balance ?? -1);
}

async function authorizationRows(user: User) {
  return sql<{ status: string; tx_hash: string | null; error: string | null }>(
    'select status, tx_hash, error from auto_top_up_authorizations where account_id = ? order by position',
    [user.accountId],
  );
}

describe('auto top-up', () => {
  it('refuses authorizations it could not use: another signer, another recipient, too short, duplicates', async () => {
    const user = await newUser(0n, 0n);
    const other = await newUser(0n, 0n);
    const good = await signed(user);
    const refusals = {
      'signed by another wallet': [await signed(other)],
      'to another address': [await signed(user, { to: other.payer.address })],
      'valid for less than an hour': [await signed(user, { validForSeconds: 600 })],
      'the same nonce twice': [good, good],
      'a forged signature': [{ ...good, value: (TOP_UP * 2n).toString() }],
    };
    for (const [what, authorizations] of Object.entries(refusals)) {
      const result = await gql(apiA.url, SET, { input: { threshold: '5', authorizations } }, user.token);
      expect([what, result.errors?.[0]?.extensions?.code]).toEqual([what, 'BAD_USER_INPUT']);
    }
    const { me } = await gqlData<{ me: { autoTopUp: unknown } }>(
      apiA.url,
      '{ me { autoTopUp { remaining } } }',
      {},
      user.token,
    );
    expect(me.autoTopUp).toBeNull();
  });

  it('refills an account spent down by a burst of calls on two replicas, once, and the books stay exact', async () => {
    const user = await newUser(1_000_000n, 2_000n);
    const authorizations = [await signed(user), await signed(user), await signed(user)];
    const { setAutoTopUp } = await gqlData<{ setAutoTopUp: Record<string, unknown> }>(
      apiA.url,
      SET,
      { input: { threshold: '1.5', authorizations } },
      user.token,
    );
    expect(setAutoTopUp).toEqual({
      threshold: '1.5',
      remaining: 3,
      paused: false,
      pausedReason: null,
      nonces: authorizations.map((a) => a.nonce),
    });
    const treasuryBefore = await usdcBalance(platform.anvil.rpcUrl, platform.token, platform.treasury);

    // A burst that spends more than 500 micro-USD: the balance crosses 1,500 while calls still race.
    const calls = await Promise.all(
      Array.from({ length: 80 }, (_, i) =>
        new OpenAI({
          baseURL: `${(i % 2 ? apiA : apiB).url}/v1`,
          apiKey: user.token,
          maxRetries: 0,
        }).chat.completions
          .create({ model: 'chainmeter-dev', messages: [{ role: 'user', content: 'burst' }], max_tokens: 16 })
          .then(
            () => 200,
            (error: unknown) => (error instanceof OpenAI.APIError ? (error.status ?? 0) : 0),
          ),
      ),
    );
    // Refused ones (402: the holds of the calls in flight did not fit) charge nothing.
    expect(calls.filter((status) => status !== 200 && status !== 402)).toEqual([]);
    expect(calls.filter((status) => status === 200).length).toBeGreaterThanOrEqual(30);
    await apiA.services.metering.whenIdle();
    await apiB.services.metering.whenIdle();
    const [spentRow] = await sql<{ spent: string }>(
      `select coalesce(sum(user_price), 0)::text as spent from usage_records where account_id = ?`,
      [user.accountId],
    );
    const spent = BigInt(spentRow?.spent ?? 0);
    expect(spent).toBeGreaterThan(500n);

    const submitted = (await waitFor(
      'the submitted authorization',
      async () => (await authorizationRows(user)).find((row) => row.tx_hash !== null),
      30_000,
    )) as { tx_hash: string };
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await waitFor(
      'the top-up credited',
      async () => (await balance(user)) === 2_000n - spent + TOP_UP,
      30_000,
    );
    // The credit frees the account; the balance is above the threshold: nothing else is submitted.
    await waitFor('the in-flight top-up to be freed', async () => {
      const [row] = await sql<{ in_flight_id: string | null }>(
        'select in_flight_id from auto_top_ups where account_id = ?',
        [user.accountId],
      );
      return row?.in_flight_id === null;
    });
    expect((await authorizationRows(user)).map((row) => row.status)).toEqual([
      'SUBMITTED',
      'STORED',
      'STORED',
    ]);
    expect(await outbox(user, 'AUTO_TOP_UP_SUBMITTED')).toEqual([
      { txHash: submitted.tx_hash, amount: '10', remaining: 2 },
    ]);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, user.payer.address)).toBe(
      1_000_000n - TOP_UP,
    );
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, platform.treasury)).toBe(
      treasuryBefore + TOP_UP,
    );
    const [deposit] = await sql<{ status: string; amount: string }>(
      'select status, amount::text as amount from deposits where lower(tx_hash) = lower(?)',
      [submitted.tx_hash],
    );
    expect(deposit).toEqual({ status: 'CREDITED', amount: String(TOP_UP) });
    expect((await checkLedgerInvariants(apiA.services.orm.em.fork())).problems).toEqual([]);

    // Cancel: the stored ones are gone (the wallet may also cancel them on chain).
    expect(
      (await gqlData<{ cancelAutoTopUp: boolean }>(apiB.url, 'mutation { cancelAutoTopUp }', {}, user.token))
        .cancelAutoTopUp,
    ).toBe(true);
    expect((await authorizationRows(user)).map((row) => row.status)).toEqual(['SUBMITTED']);
  });

  it('a payer without the funds: AUTO_TOP_UP_FAILED, and paused until the user sets it again', async () => {
    const user = await newUser(TOP_UP / 2n, 1_000n);
    // The balance (1,000) is already below 2 credits: the next round claims the first authorization.
    await gqlData(
      apiA.url,
      SET,
      { input: { threshold: '2', authorizations: [await signed(user), await signed(user)] } },
      user.token,
    );
    await waitFor(
      'the failed submission',
      async () => (await outbox(user, 'AUTO_TOP_UP_FAILED')).length > 0,
      30_000,
    );
    const { me } = await gqlData<{ me: { autoTopUp: Record<string, unknown> } }>(
      apiA.url,
      '{ me { autoTopUp { remaining paused pausedReason } } }',
      {},
      user.token,
    );
    expect(me.autoTopUp).toEqual({ remaining: 1, paused: true, pausedReason: 'INSUFFICIENT_FUNDS' });
    expect(await outbox(user, 'AUTO_TOP_UP_FAILED')).toEqual([
      expect.objectContaining({ reason: 'INSUFFICIENT_FUNDS', amount: '10' }),
    ]);
    expect((await authorizationRows(user)).map((row) => row.status)).toEqual(['FAILED', 'STORED']);
    expect(await balance(user)).toBe(1_000n);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, user.payer.address)).toBe(TOP_UP / 2n);
    // Still paused: nothing more is submitted. The user funds the wallet and sets it again: it resumes.
    expect(await outbox(user, 'AUTO_TOP_UP_SUBMITTED')).toEqual([]);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, user.payer.address, TOP_UP);
    await gqlData(
      apiB.url,
      SET,
      { input: { threshold: '2', authorizations: [await signed(user)] } },
      user.token,
    );
    await waitFor(
      'the resumed submission',
      async () => (await outbox(user, 'AUTO_TOP_UP_SUBMITTED')).length === 1,
      30_000,
    );
    expect((await authorizationRows(user)).map((row) => row.status)).toEqual(['FAILED', 'SUBMITTED']);
  });
});
