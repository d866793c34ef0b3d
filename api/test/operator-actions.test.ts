/**
 * Operators (issue 12) against the real platform: anvil with the test token, the real Ponder indexer, a fresh
 * PostgreSQL database, the API with the built-in dev model. Every figure expected here is worked out by the
 * test itself: from the transfers it made on chain, the prices it knows, the rows the API answered, the
 * treasury's balanceOf it reads, the ledger rows it sums.
 *
 * NEEDS_REVIEW calls come from real calls: `LLM_PRICES` prices `chainmeter-dev-large` far below what the dev
 * model reports as its cost (`x-litellm-response-cost`), so its calls cost more than their hold.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCredits, ledgerEntryHash, type MicroUsd, usdcAbi } from '@chainmeter/schema';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import { mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import { createPublicClient, getAddress, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAuditReport } from '../src/modules/audit/audit.service.ts';
import type { RunningApi } from '../src/server.ts';
import { eventually, gql, gqlData, signIn } from './support/graphql.ts';
import { devPayer, type Platform, startPlatform, UNLIMITED_RATES } from './support/platform.ts';

const operator = devPayer(0);
const alice = devPayer(1);
const bob = devPayer(2);
const carol = devPayer(3);

const DEV = 'chainmeter-dev';
const LARGE = 'chainmeter-dev-large';
/** The dev model's own price of chainmeter-dev, USD per million tokens: 0.15 in, 0.60 out. */
const DEV_PRICE = { inPerMTokCents: 15n, outPerMTokCents: 60n };

let platform: Platform;
let api: RunningApi;
const tokens = new Map<string, string>();
/** Every USDC amount paid to the treasury by this test, in base units (= micro-USD). */
const paid: bigint[] = [];

/** Every call this file made, as the API answered it (and as resolutions changed it): revenue's input. */
interface CallRecord {
  id: string;
  model: string;
  createdAt: Date;
  providerCost: bigint;
  userPrice: bigint;
  needsReview: boolean;
}
const calls: CallRecord[] = [];

const usdc = (whole: number) => BigInt(Math.round(whole * 1_000_000));
const credits = (micro: bigint) => formatCredits(micro as MicroUsd);
/** A Credits string as micro-USD. */
const micro = (text: string) => {
  const [whole = '0', fraction = ''] = text.replace('-', '').split('.');
  const value = BigInt(whole) * 1000n + BigInt(fraction.padEnd(3, '0'));
  return text.startsWith('-') ? -value : value;
};

async function sql<T>(text: string, values: unknown[] = []): Promise<T[]> {
  return api.services.orm.em.fork().execute<T[]>(text, values);
}

async function accountRow(wallet: string) {
  const [row] = await sql<{ id: string; balance: string; held: string }>(
    'select id, balance::text as balance, held::text as held from accounts where wallet_address = ?',
    [getAddress(wallet)],
  );
  if (!row) throw new Error(`no account for ${wallet}`);
  return { id: row.id, balance: BigInt(row.balance), held: BigInt(row.held) };
}

async function pay(payer: typeof alice, whole: number): Promise<void> {
  await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, usdc(whole));
  await transferUsdc(platform.anvil.rpcUrl, platform.token, payer, platform.treasury, usdc(whole));
  paid.push(usdc(whole));
}

const ADJUST = `mutation($input: AdjustBalanceInput!) { adjustBalance(input: $input) {
  id amount balanceAfter reason operator reasonText hash createdAt } }`;
const RESOLVE = `mutation($id: ID!, $input: ResolveUsageInput!) { resolveUsage(id: $id, input: $input) {
  id billingStatus userPrice providerCost resolution resolvedBy resolutionReason resolvedAt chargedBeforeResolution } }`;
const COMPLETE = `mutation($input: CompletionInput!) { createCompletion(input: $input) {
  usage { id model promptTokens completionTokens providerCost userPrice billingStatus createdAt flags } } }`;
const QUEUE = `{ operations { needsReview(first: 50) { edges { node { id model userPrice billingStatus walletAddress } } } } }`;

interface UsageJson {
  id: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  providerCost: string | null;
  userPrice: string;
  billingStatus: string;
  createdAt: string;
  flags: string[];
}

async function complete(wallet: string, model: string, text: string, maxTokens = 64): Promise<UsageJson> {
  const { createCompletion } = await gqlData<{ createCompletion: { usage: UsageJson } }>(
    api.url,
    COMPLETE,
    { input: { model, messages: [{ role: 'user', content: text }], maxTokens } },
    tokens.get(wallet),
  );
  const usage = createCompletion.usage;
  calls.push({
    id: usage.id,
    model: usage.model,
    createdAt: new Date(usage.createdAt),
    providerCost: usage.providerCost === null ? 0n : micro(usage.providerCost),
    userPrice: micro(usage.userPrice),
    needsReview: usage.billingStatus === 'NEEDS_REVIEW',
  });
  return usage;
}

const codeOf = (result: { errors?: { extensions?: { code?: string } }[] }) =>
  result.errors?.[0]?.extensions?.code;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  const dir = await mkdtemp(join(tmpdir(), 'cm-ops-prices-'));
  const prices = join(dir, 'prices.json');
  // chainmeter-dev-large held at a price far below the cost its upstream reports: NEEDS_REVIEW.
  await writeFile(
    prices,
    JSON.stringify({ [LARGE]: { inputPerMTok: '0.000001', outputPerMTok: '0.000001' } }),
  );
  api = await platform.startApi({
    ...UNLIMITED_RATES,
    OPERATOR_ADDRESSES: ` ${operator.address.toLowerCase()} `,
    LLM_PRICES: prices,
    SOLVENCY_SNAPSHOT_MS: '0',
  });
  for (const wallet of [operator, alice, bob, carol]) {
    tokens.set(wallet.address, await signIn(api.url, wallet, platform.chainId));
  }
  await pay(alice, 5);
  await pay(bob, 3);
  await pay(carol, 2);
  await mineBlocks(platform.anvil.rpcUrl, 2);
  await eventually(async () => {
    const rows = await sql<{ n: number }>(
      `select count(*)::int as n from ledger_entries where reason = 'DEPOSIT'`,
    );
    return rows[0]?.n === 3 ? true : undefined;
  });
}, 120_000);

afterAll(async () => {
  await platform?.close();
});

describe('the operator role', () => {
  it('is refused to signed-out callers, to other wallets and to API keys, and nothing is written', async () => {
    const aliceBefore = await accountRow(alice.address);
    const adjust = { input: { wallet: alice.address, amount: '100', reason: 'free money' } };
    const resolve = { id: '00000000-0000-4000-8000-000000000000', input: { action: 'WAIVE', reason: 'x' } };

    // Signed out.
    expect(
      (await gqlData<{ operations: unknown }>(api.url, '{ operations { __typename } }')).operations,
    ).toBeNull();
    expect(codeOf(await gql(api.url, ADJUST, adjust))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(api.url, RESOLVE, resolve))).toBe('UNAUTHENTICATED');

    // A user's session.
    const aliceToken = tokens.get(alice.address);
    expect((await gqlData(api.url, '{ operations { __typename } }', {}, aliceToken)).operations).toBeNull();
    const refused = await gql(api.url, ADJUST, adjust, aliceToken);
    expect(codeOf(refused)).toBe('FORBIDDEN');
    expect(refused.errors?.[0]?.message).toMatch(/operator role/);
    expect(codeOf(await gql(api.url, RESOLVE, resolve, aliceToken))).toBe('FORBIDDEN');

    // An API key of the operator's own wallet.
    const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
      api.url,
      'mutation { createApiKey(input: { name: "ops script" }) { secret } }',
      {},
      tokens.get(operator.address),
    );
    expect(
      (await gqlData(api.url, '{ operations { __typename } }', {}, createApiKey.secret)).operations,
    ).toBeNull();
    const byKey = await gql(api.url, ADJUST, adjust, createApiKey.secret);
    expect(codeOf(byKey)).toBe('FORBIDDEN');
    expect(byKey.errors?.[0]?.message).toMatch(/API keys never carry the operator role/);

    expect(await accountRow(alice.address)).toEqual(aliceBefore);
    expect(await sql('select 1 from ledger_entries where operator is not null')).toEqual([]);

    // The operator's session.
    const ops = await gqlData<{ operations: { __typename: string } | null }>(
      api.url,
      '{ operations { __typename } }',
      {},
      tokens.get(operator.address),
    );
    expect(ops.operations).toEqual({ __typename: 'Operations' });
  });
});

describe('adjustBalance', () => {
  it('writes an ADJUSTMENT carrying the operator and the reason, covered by its hash', async () => {
    const before = await accountRow(alice.address);
    const reason = 'Goodwill: the outage of 2026-12-01';
    const { adjustBalance } = await gqlData<{ adjustBalance: Record<string, string> }>(
      api.url,
      ADJUST,
      { input: { wallet: alice.address.toLowerCase(), amount: '1.5', reason: `  ${reason} ` } },
      tokens.get(operator.address),
    );
    expect(adjustBalance).toMatchObject({
      amount: '1.5',
      balanceAfter: credits(before.balance + 1_500n),
      reason: 'ADJUSTMENT',
      operator: operator.address,
      reasonText: reason,
    });
    expect((await accountRow(alice.address)).balance).toBe(before.balance + 1_500n);

    // Alice sees who and why in her own ledger.
    const me = await gqlData<{ me: { ledger: { edges: { node: Record<string, unknown> }[] } } }>(
      api.url,
      '{ me { ledger(first: 1) { edges { node { amount reason operator reasonText } } } } }',
      {},
      tokens.get(alice.address),
    );
    expect(me.me.ledger.edges[0]?.node).toEqual({
      amount: '1.5',
      reason: 'ADJUSTMENT',
      operator: operator.address,
      reasonText: reason,
    });

    // The stored row: its hash recomputes with the operator and the reason, and not without them.
    const [row] = await sql<{
      account_id: string;
      seq: number;
      amount: string;
      balance_after: string;
      reference_id: string;
      created_at: Date;
      prev_hash: string;
      hash: string;
      operator: string;
      reason_text: string;
    }>(
      `select account_id, seq, amount::text as amount, balance_after::text as balance_after, reference_id, created_at,
         prev_hash, hash, operator, reason_text from ledger_entries where id = ?`,
      [adjustBalance.id],
    );
    if (!row) throw new Error('the entry is not stored');
    expect(row).toMatchObject({ operator: operator.address, reason_text: reason });
    expect(row.reference_id).toMatch(/^operator:[0-9a-f-]{36}$/);
    const fields = {
      accountId: row.account_id,
      seq: row.seq,
      amount: BigInt(row.amount),
      balanceAfter: BigInt(row.balance_after),
      reason: 'ADJUSTMENT',
      referenceId: row.reference_id,
      createdAt: new Date(row.created_at),
    };
    expect(
      ledgerEntryHash(row.prev_hash, { ...fields, operator: row.operator, reasonText: row.reason_text }),
    ).toBe(row.hash);
    expect(ledgerEntryHash(row.prev_hash, fields)).not.toBe(row.hash);
    expect(
      ledgerEntryHash(row.prev_hash, { ...fields, operator: row.operator, reasonText: 'other' }),
    ).not.toBe(row.hash);
  });

  it('refuses a zero amount, a missing or overlong reason and an unknown wallet, writing nothing', async () => {
    const token = tokens.get(operator.address);
    const count = async () => (await sql('select 1 from ledger_entries where operator is not null')).length;
    const before = await count();
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ wallet: alice.address, amount: '0', reason: 'nothing' }, 'BAD_USER_INPUT', /must not be 0/],
      [{ wallet: alice.address, amount: '1', reason: '   ' }, 'BAD_USER_INPUT', /reason is required/],
      [{ wallet: alice.address, amount: '1', reason: 'x'.repeat(501) }, 'BAD_USER_INPUT', /500 characters/],
      [{ wallet: alice.address, amount: '1', reason: 'two\nlines' }, 'BAD_USER_INPUT', /one line/],
      [{ wallet: alice.address, amount: '1000000001', reason: 'typo' }, 'BAD_USER_INPUT', /at most/],
      [{ wallet: devPayer(7).address, amount: '1', reason: 'who?' }, 'NOT_FOUND', /No account/],
    ];
    for (const [input, code, message] of cases) {
      const result = await gql(api.url, ADJUST, { input }, token);
      expect(codeOf(result), JSON.stringify(input)).toBe(code);
      expect(result.errors?.[0]?.message).toMatch(message);
    }
    expect(await count()).toBe(before);
    // Exactly 500 characters is accepted.
    const ok = await gql(
      api.url,
      ADJUST,
      { input: { wallet: bob.address, amount: '0.001', reason: 'y'.repeat(500) } },
      token,
    );
    expect(ok.errors).toBeUndefined();
  });

  it('never takes a balance below zero, nor what a call in flight holds', async () => {
    const token = tokens.get(operator.address);
    // A call that takes 5 s to answer (the dev model's dev-slow) holds part of Bob's balance meanwhile.
    const slow = complete(bob.address, 'dev-slow', 'take your time', 32);
    const during = await eventually(async () => {
      const row = await accountRow(bob.address);
      return row.held > 0n ? row : undefined;
    });
    const spendable = during.balance - during.held;
    const tooMuch = await gql(
      api.url,
      ADJUST,
      { input: { wallet: bob.address, amount: credits(-(spendable + 1n)), reason: 'chargeback' } },
      token,
    );
    expect(codeOf(tooMuch)).toBe('INSUFFICIENT_CREDITS');
    expect(tooMuch.errors?.[0]?.message).toContain(`can spend ${spendable} micro-USD`);
    expect(tooMuch.errors?.[0]?.message).toContain(`held by calls in flight ${during.held}`);
    expect((await accountRow(bob.address)).balance).toBe(during.balance);

    const exact = await gqlData<{ adjustBalance: { balanceAfter: string } }>(
      api.url,
      ADJUST,
      { input: { wallet: bob.address, amount: credits(-spendable), reason: 'chargeback' } },
      token,
    );
    expect(micro(exact.adjustBalance.balanceAfter)).toBe(during.held);

    const usage = await slow;
    expect(usage.billingStatus).toBe('BILLED');
    const after = await accountRow(bob.address);
    expect(after).toMatchObject({ held: 0n, balance: during.held - micro(usage.userPrice) });
    expect(after.balance).toBeGreaterThanOrEqual(0n);

    const belowZero = await gql(
      api.url,
      ADJUST,
      { input: { wallet: bob.address, amount: credits(-(after.balance + 1n)), reason: 'chargeback' } },
      token,
    );
    expect(codeOf(belowZero)).toBe('INSUFFICIENT_CREDITS');
    expect((await accountRow(bob.address)).balance).toBe(after.balance);
  });
});

describe('resolveUsage', () => {
  it('bills at a stated price or waives, on the record; a second resolution is refused, also when concurrent', async () => {
    const ops = tokens.get(operator.address);
    const first = await complete(alice.address, LARGE, 'Summarise the ledger rules please', 40);
    const second = await complete(alice.address, LARGE, 'And the billing rules', 40);
    for (const usage of [first, second]) {
      expect(usage).toMatchObject({ billingStatus: 'NEEDS_REVIEW' });
      expect(usage.flags).toContain('COST_EXCEEDS_HOLD');
    }
    const queue = await gqlData<{
      operations: { needsReview: { edges: { node: Record<string, unknown> }[] } };
    }>(api.url, QUEUE, {}, ops);
    expect(queue.operations.needsReview.edges.map((e) => e.node)).toEqual([
      {
        id: first.id,
        model: LARGE,
        userPrice: first.userPrice,
        billingStatus: 'NEEDS_REVIEW',
        walletAddress: alice.address,
      },
      {
        id: second.id,
        model: LARGE,
        userPrice: second.userPrice,
        billingStatus: 'NEEDS_REVIEW',
        walletAddress: alice.address,
      },
    ]);

    // BILL at a price above the hold it was charged: the difference is a USAGE debit carrying the operator.
    const held = micro(first.userPrice);
    const price = micro(first.providerCost as string); // the provider's cost, which the hold did not cover
    expect(price).toBeGreaterThan(held);
    const before = await accountRow(alice.address);
    const billed = await gqlData<{ resolveUsage: Record<string, unknown> }>(
      api.url,
      RESOLVE,
      {
        id: first.id,
        input: { action: 'BILL', price: credits(price), reason: 'Priced from the provider invoice' },
      },
      ops,
    );
    expect(billed.resolveUsage).toMatchObject({
      id: first.id,
      billingStatus: 'BILLED',
      userPrice: credits(price),
      resolution: 'BILL',
      resolvedBy: operator.address,
      resolutionReason: 'Priced from the provider invoice',
      chargedBeforeResolution: credits(held),
    });
    const record = calls.find((c) => c.id === first.id);
    if (record) Object.assign(record, { userPrice: price, needsReview: false });
    expect((await accountRow(alice.address)).balance).toBe(before.balance - (price - held));
    const entries = await sql<{ amount: string; reason: string; operator: string; reason_text: string }>(
      `select amount::text as amount, reason, operator, reason_text from ledger_entries where reference_id = ? order by seq`,
      [first.id],
    );
    expect(entries).toEqual([
      { amount: String(-held), reason: 'USAGE', operator: null, reason_text: null },
      {
        amount: String(held - price),
        reason: 'USAGE',
        operator: operator.address,
        reason_text: 'Priced from the provider invoice',
      },
    ]);

    // Again: refused with CONFLICT naming who resolved it; nothing more written.
    const again = await gql(
      api.url,
      RESOLVE,
      { id: first.id, input: { action: 'WAIVE', reason: 'retry' } },
      ops,
    );
    expect(codeOf(again)).toBe('CONFLICT');
    expect(again.errors?.[0]?.message).toContain(operator.address);

    // A price above what Alice can spend: refused, saying how much she can spend; still in the queue.
    const spendable = (await accountRow(alice.address)).balance;
    const tooDear = await gql(
      api.url,
      RESOLVE,
      {
        id: second.id,
        input: { action: 'BILL', price: credits(micro(second.userPrice) + spendable + 1n), reason: 'x' },
      },
      ops,
    );
    expect(codeOf(tooDear)).toBe('INSUFFICIENT_CREDITS');
    expect(tooDear.errors?.[0]?.message).toContain(`can spend ${spendable} micro-USD`);

    // Two operators' tabs at once: exactly one resolution stands.
    const racing = await Promise.all([
      gql(api.url, RESOLVE, { id: second.id, input: { action: 'WAIVE', reason: 'Goodwill' } }, ops),
      gql(api.url, RESOLVE, { id: second.id, input: { action: 'WAIVE', reason: 'Goodwill' } }, ops),
      gql(
        api.url,
        RESOLVE,
        { id: second.id, input: { action: 'BILL', price: '0.001', reason: 'Bill it' } },
        ops,
      ),
    ]);
    expect(racing.filter((r) => r.errors === undefined)).toHaveLength(1);
    expect(racing.map(codeOf).filter((code) => code === 'CONFLICT')).toHaveLength(2);
    const winner = racing.find((r) => r.errors === undefined)?.data as {
      resolveUsage: { userPrice: string };
    };
    const resolvedPrice = micro(winner.resolveUsage.userPrice);
    const secondRecord = calls.find((c) => c.id === second.id);
    if (secondRecord) Object.assign(secondRecord, { userPrice: resolvedPrice, needsReview: false });
    const secondEntries = await sql<{ amount: string }>(
      `select amount::text as amount from ledger_entries where reference_id = ? and operator is not null`,
      [second.id],
    );
    expect(secondEntries).toEqual([{ amount: String(micro(second.userPrice) - resolvedPrice) }]);

    const empty = await gqlData<{ operations: { needsReview: { edges: unknown[] } } }>(
      api.url,
      QUEUE,
      {},
      ops,
    );
    expect(empty.operations.needsReview.edges).toEqual([]);
  });

  it('refuses what cannot be resolved', async () => {
    const ops = tokens.get(operator.address);
    const billed = await complete(carol.address, DEV, 'hello there');
    expect(billed.billingStatus).toBe('BILLED');
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ id: billed.id, input: { action: 'WAIVE', reason: 'no' } }, 'BAD_USER_INPUT', /is BILLED/],
      [
        { id: '6b3f5b8e-0c1d-4f8a-9a57-5f3b2f0e9d11', input: { action: 'WAIVE', reason: 'no' } },
        'NOT_FOUND',
        /No call/,
      ],
      [{ id: 'not-an-id', input: { action: 'WAIVE', reason: 'no' } }, 'NOT_FOUND', /No call/],
      [{ id: billed.id, input: { action: 'BILL', reason: 'no price' } }, 'BAD_USER_INPUT', /needs the price/],
      [
        { id: billed.id, input: { action: 'BILL', price: '-1', reason: 'negative' } },
        'BAD_USER_INPUT',
        /negative/,
      ],
      [
        { id: billed.id, input: { action: 'WAIVE', price: '2', reason: 'priced waive' } },
        'BAD_USER_INPUT',
        /leave the price out/,
      ],
      [{ id: billed.id, input: { action: 'WAIVE', reason: '' } }, 'BAD_USER_INPUT', /reason is required/],
    ];
    for (const [variables, code, message] of cases) {
      const result = await gql(api.url, RESOLVE, variables, ops);
      expect(codeOf(result), JSON.stringify(variables)).toBe(code);
      expect(result.errors?.[0]?.message).toMatch(message);
    }
  });
});

describe('revenue', () => {
  it('sums every call exactly, by day and by model, as the test sums the calls it made', async () => {
    const started = new Date(Date.now() - 60_000);
    for (const text of ['one', 'two words here', 'a somewhat longer prompt with more tokens in it']) {
      const usage = await complete(carol.address, DEV, text, 48);
      // Its cost, from the dev model's published price and the tokens it reported, rounded up to the micro-USD.
      const hundredths =
        BigInt(usage.promptTokens) * DEV_PRICE.inPerMTokCents +
        BigInt(usage.completionTokens) * DEV_PRICE.outPerMTokCents;
      const cost = (hundredths + 99n) / 100n;
      expect(micro(usage.providerCost as string)).toBe(cost);
      expect(micro(usage.userPrice)).toBe(cost * 2n); // PRICE_MARKUP 2.0
    }
    const range = { from: started.toISOString(), to: new Date(Date.now() + 60_000).toISOString() };
    const read = async (groupBy: 'DAY' | 'MODEL') =>
      (
        await gqlData<{ operations: { revenue: Record<string, unknown>[] } }>(
          api.url,
          `query($from: DateTime!, $to: DateTime!, $groupBy: RevenueGroupBy!) { operations {
            revenue(from: $from, to: $to, groupBy: $groupBy) { key userPrice providerCost margin calls needsReview } } }`,
          { ...range, groupBy },
          tokens.get(operator.address),
        )
      ).operations.revenue;
    const expected = (keyOf: (call: CallRecord) => string) => {
      const buckets = new Map<
        string,
        { userPrice: bigint; providerCost: bigint; calls: number; needsReview: number }
      >();
      for (const call of calls) {
        const bucket = buckets.get(keyOf(call)) ?? {
          userPrice: 0n,
          providerCost: 0n,
          calls: 0,
          needsReview: 0,
        };
        bucket.userPrice += call.userPrice;
        bucket.providerCost += call.providerCost;
        bucket.calls += 1;
        bucket.needsReview += call.needsReview ? 1 : 0;
        buckets.set(keyOf(call), bucket);
      }
      return [...buckets.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([key, b]) => ({
          key,
          userPrice: credits(b.userPrice),
          providerCost: credits(b.providerCost),
          margin: credits(b.userPrice - b.providerCost),
          calls: b.calls,
          needsReview: b.needsReview,
        }));
    };
    expect(calls.length).toBeGreaterThanOrEqual(7);
    expect(await read('MODEL')).toEqual(expected((call) => call.model));
    expect(await read('DAY')).toEqual(expected((call) => call.createdAt.toISOString().slice(0, 10)));

    // A range without calls; a range that is not one.
    const later = new Date(Date.now() + 3_600_000);
    const none = await gqlData<{ operations: { revenue: unknown[] } }>(
      api.url,
      `{ operations { revenue(from: "${later.toISOString()}", to: "${new Date(later.getTime() + 1000).toISOString()}", groupBy: DAY) { key } } }`,
      {},
      tokens.get(operator.address),
    );
    expect(none.operations.revenue).toEqual([]);
    const backwards = await gql(
      api.url,
      `{ operations { revenue(from: "${range.to}", to: "${range.from}", groupBy: DAY) { key } } }`,
      {},
      tokens.get(operator.address),
    );
    expect(codeOf(backwards)).toBe('BAD_USER_INPUT');
  });
});

describe('solvency', () => {
  const SOLVENCY = `{ solvency { treasuryBalance outstandingCredits heldCredits creditedDeposits chargedUsage
    operatorAdjustments accountDebt asOfBlock } }`;

  it('is public and equals the chain (balanceOf read here) and sums of the ledger made here', async () => {
    // Another payment after the rest, so the treasury moved since the start.
    await pay(carol, 1.25);
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await eventually(async () => {
      const rows = await sql<{ n: number }>(
        `select count(*)::int as n from ledger_entries where reason = 'DEPOSIT'`,
      );
      return rows[0]?.n === 4 ? true : undefined;
    });
    const { solvency } = await gqlData<{ solvency: Record<string, string> }>(api.url, SOLVENCY);
    const chain = createPublicClient({ transport: http(platform.anvil.rpcUrl) });
    const treasury = await chain.readContract({
      address: platform.token,
      abi: usdcAbi,
      functionName: 'balanceOf',
      args: [platform.treasury],
      blockNumber: BigInt(solvency.asOfBlock as string),
    });
    expect(BigInt(solvency.asOfBlock as string)).toBeGreaterThan(0n);
    expect(micro(solvency.treasuryBalance as string)).toBe(treasury);

    const entries = await sql<{ amount: string; reason: string; operator: string | null }>(
      'select amount::text as amount, reason, operator from ledger_entries',
    );
    const sum = (keep: (e: (typeof entries)[number]) => boolean) =>
      entries.filter(keep).reduce((total, e) => total + BigInt(e.amount), 0n);
    const accounts = await sql<{ balance: string; held: string }>(
      'select balance::text as balance, held::text as held from accounts',
    );
    const totalPaid = paid.reduce((a, b) => a + b, 0n);
    expect(solvency).toMatchObject({
      outstandingCredits: credits(sum(() => true)),
      heldCredits: credits(accounts.reduce((t, a) => t + BigInt(a.held), 0n)),
      // Every payment was credited once, and no deep reorg corrected one.
      creditedDeposits: credits(totalPaid),
      chargedUsage: credits(-sum((e) => e.reason === 'USAGE')),
      operatorAdjustments: credits(sum((e) => e.reason === 'ADJUSTMENT' && e.operator !== null)),
      accountDebt: '0',
    });
    expect(micro(solvency.outstandingCredits as string)).toBe(
      accounts.reduce((t, a) => t + BigInt(a.balance), 0n),
    );
    // The chain received at least what was credited (the devnet treasury starts with nothing else).
    expect(treasury).toBe(totalPaid);
    expect(micro(solvency.chargedUsage as string)).toBe(calls.reduce((t, c) => t + c.userPrice, 0n));
  });

  it('reads the treasury at the chain head of the moment, not at a block the chain client cached', async () => {
    // The API's chain client has just read the head (viem keeps it 4 s), then the treasury receives more.
    const before = await api.services.chain.getBlockNumber();
    const minted = await mintUsdc(platform.anvil.rpcUrl, platform.token, platform.treasury, 7n);
    expect(minted.blockNumber).toBeGreaterThan(before);
    const { solvency } = await gqlData<{ solvency: Record<string, string> }>(api.url, SOLVENCY);
    expect(BigInt(solvency.asOfBlock as string)).toBeGreaterThanOrEqual(minted.blockNumber);
    const chain = createPublicClient({ transport: http(platform.anvil.rpcUrl) });
    const treasury = await chain.readContract({
      address: platform.token,
      abi: usdcAbi,
      functionName: 'balanceOf',
      args: [platform.treasury],
    });
    expect(micro(solvency.treasuryBalance as string)).toBe(treasury);
  });

  it('records one snapshot per period, read back by solvencyHistory', async () => {
    const now = new Date();
    expect(await api.services.solvency.recordSnapshot(now)).toBe(true);
    expect(await api.services.solvency.recordSnapshot(now)).toBe(false);
    const { solvency } = await gqlData<{ solvency: Record<string, string> }>(api.url, SOLVENCY);
    const { solvencyHistory } = await gqlData<{ solvencyHistory: Record<string, string>[] }>(
      api.url,
      `query($from: DateTime!, $to: DateTime!) { solvencyHistory(from: $from, to: $to) {
        treasuryBalance outstandingCredits heldCredits creditedDeposits chargedUsage operatorAdjustments accountDebt asOfBlock } }`,
      {
        from: new Date(now.getTime() - 60_000).toISOString(),
        to: new Date(now.getTime() + 60_000).toISOString(),
      },
    );
    expect(solvencyHistory).toHaveLength(1);
    expect(solvencyHistory[0]).toEqual({ ...solvency, asOfBlock: solvencyHistory[0]?.asOfBlock });
  });
});

describe('the audit', () => {
  it('stays clean after the operators adjusted balances and resolved calls, and counts their adjustments', async () => {
    const report = await runAuditReport(api.services.orm.em.fork(), {
      chain: api.services.chain,
      config: api.services.config,
    });
    expect(report.discrepancies).toEqual([]);
    expect(report.consistent).toBe(true);
    const adjustments = await sql<{ amount: string }>(
      `select amount::text as amount from ledger_entries where reason = 'ADJUSTMENT' and operator is not null`,
    );
    expect(report.summary.operatorAdjustments).toBe(adjustments.length);
    expect(report.summary.totalOperatorAdjusted).toBe(adjustments.reduce((t, a) => t + BigInt(a.amount), 0n));
  });
});
