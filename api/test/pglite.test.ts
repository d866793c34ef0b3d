/**
 * The embedded default: the API on PGlite (no DATABASE_URL) and Ponder on its own PGlite, running the same
 * payment flow as PostgreSQL does, through GraphQL and a subscription.
 */
import { type MicroUsd, parseCredits } from '@chainmeter/schema';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import { mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sqlFor } from '../src/db/sql.ts';
import { getAccountByWallet } from '../src/modules/accounts/accounts.service.ts';
import { settlementOfExpiredHold } from '../src/modules/metering/billing.ts';
import {
  type ExpiredHold,
  extendHolds,
  findExpiredHolds,
  placeHold,
} from '../src/modules/metering/hold.store.ts';
import { applySettlement } from '../src/modules/metering/settlement.store.ts';
import type { RunningApi } from '../src/server.ts';
import { gqlData, signIn, subscribe } from './support/graphql.ts';
import { checkLedgerInvariants } from './support/ledger-invariants.ts';
import { devPayer, type Platform, startPlatform } from './support/platform.ts';

let platform: Platform;
let api: RunningApi;

beforeAll(async () => {
  platform = await startPlatform({ pglite: true, confirmations: 2 });
  api = await platform.startApi();
});

afterAll(async () => {
  await platform?.close();
});

it('credits a confirmed payment exactly once on embedded PGlite', async () => {
  expect(platform.database).toBeUndefined();
  expect(api.services.config.databaseUrl).toBeUndefined();
  const payer = devPayer(0);
  const token = await signIn(api.url, payer, platform.chainId);
  const balances = await subscribe<{ balanceUpdated: { balance: string } }>(
    api.url,
    'subscription { balanceUpdated { balance } }',
    token,
  );
  await mintUsdc(platform.anvil.rpcUrl, platform.token, payer.address, 5_000_000n);
  const paid = await transferUsdc(
    platform.anvil.rpcUrl,
    platform.token,
    payer,
    platform.treasury,
    3_000_000n,
  );
  await mineBlocks(platform.anvil.rpcUrl, 2);
  expect((await balances.waitFor(() => true)).balanceUpdated.balance).toBe('3000');
  await mineBlocks(platform.anvil.rpcUrl, 2);
  const me = await gqlData<{
    me: { balance: string; deposits: { edges: { node: { txHash: string; status: string } }[] } };
  }>(api.url, '{ me { balance deposits { edges { node { txHash status } } } } }', {}, token);
  expect(me.me.balance).toBe('3000');
  expect(me.me.deposits.edges.map((edge) => edge.node)).toEqual([
    { txHash: paid.txHash, status: 'CREDITED' },
  ]);
  expect(balances.events).toHaveLength(1);
  await balances.close();
});

it('meters completions on embedded PGlite: holds, key checks and settlements keep the books exact', async () => {
  const payer = devPayer(0); // credited 3,000 by the test above
  const token = await signIn(api.url, payer, platform.chainId);
  const { createApiKey } = await gqlData<{ createApiKey: { secret: string } }>(
    api.url,
    'mutation { createApiKey(input: { name: "pglite" }) { secret } }',
    {},
    token,
  );
  // The built-in dev model is the upstream (no LLM_BASE_URL). The second and third calls take the key
  // from the replica's memory and check it in the hold; the settlements chain from the holds' heads.
  const client = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: createApiKey.secret, maxRetries: 0 });
  for (const text of ['one', 'two', 'three']) {
    const completion = await client.chat.completions.create({
      model: 'chainmeter-dev',
      messages: [{ role: 'user', content: text }],
    });
    expect(completion.choices[0]?.message.content).toBeTruthy();
  }
  await api.services.metering.whenIdle();
  const { me } = await gqlData<{
    me: { balance: string; usage: { edges: { node: { userPrice: string; billingStatus: string } }[] } };
  }>(api.url, '{ me { balance usage { edges { node { userPrice billingStatus } } } } }', {}, token);
  const rows = me.usage.edges.map((edge) => edge.node);
  expect(rows.map((row) => row.billingStatus)).toEqual(['BILLED', 'BILLED', 'BILLED']);
  const spent = rows.reduce((sum, row) => sum + parseCredits(row.userPrice), 0n);
  expect(spent).toBeGreaterThan(0n);
  expect(parseCredits(me.balance)).toBe(3_000_000n - spent);
  expect((await checkLedgerInvariants(api.services.orm.em.fork())).problems).toEqual([]);
  expect(api.services.metering.settlementBatches()).toEqual({ guarded: 3, stale: 0 });
});

it("records a stream's progress on embedded PGlite, and bills it once its process is gone", async () => {
  const sql = sqlFor(api.services.orm);
  const account = await getAccountByWallet(api.services.orm.em.fork(), devPayer(0).address);
  if (!account) throw new Error('the account of the tests above');
  const started = new Date();
  const { usageId } = await placeHold(sql, {
    accountId: account.id,
    apiKeyId: null,
    requestId: `req_pglite_${started.getTime()}`,
    model: 'chainmeter-dev',
    hold: 50_000n as MicroUsd,
    streamed: true,
    now: started,
    holdExpiresAt: new Date(started.getTime() + 60_000),
  });
  // Far enough ahead that the API's own settlement loop leaves it to this test.
  const until = new Date(started.getTime() + 120_000);
  await extendHolds(sql, [usageId], until, [{ usageId, generatedBytes: 120, promptTokensBound: 30 }]);
  const [expired] = (await findExpiredHolds(sql, new Date(until.getTime() + 1), 100)).filter(
    (record) => record.id === usageId,
  );
  expect(expired).toMatchObject({ streamed: true, generatedBytes: 120, promptTokensBound: 30 });
  // The dev model publishes $0.15 and $0.60 per million tokens (x 10^12 here), as this API reads them.
  const devPrice = {
    model: 'chainmeter-dev',
    inputPerMTok: 150_000_000_000n,
    outputPerMTok: 600_000_000_000n,
  };
  const settlement = settlementOfExpiredHold(
    expired as ExpiredHold,
    devPrice,
    api.services.config.priceMarkup,
  );
  // 30 x 0.15 + 120 x 0.60 = 76.5, rounded up: 77 micro-USD; x 2.0 (the default markup) = 154.
  expect(settlement).toMatchObject({
    status: 'BILLED',
    completionTokens: 120,
    promptTokens: 30,
    providerCost: 77n,
    userPrice: 154n,
  });
  const balanceBefore = account.balance;
  // Settled as the expiry sweep does, re-checking the expiry in the statement (PGlite runs it too).
  expect((await applySettlement(sql, usageId, settlement, { expiredAt: new Date() })).settled).toBe(false);
  const sweptAt = new Date(until.getTime() + 1);
  expect((await applySettlement(sql, usageId, settlement, { expiredAt: sweptAt })).settled).toBe(true);
  const after = await getAccountByWallet(api.services.orm.em.fork(), devPayer(0).address);
  expect(after?.balance).toBe(balanceBefore - settlement.userPrice);
  expect((await checkLedgerInvariants(api.services.orm.em.fork())).problems).toEqual([]);
});
