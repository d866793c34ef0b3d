/**
 * Pay per request on the `npm start` configuration: the API on embedded PGlite (no DATABASE_URL), Ponder on
 * its own PGlite, anvil with the devnet's token, Permit2 and relayer. The official `@x402/fetch` client pays
 * one `exact` call from a wallet with USDC and no ETH; once the settlement is credited, the payer signs in
 * and finds the deposit, the call and the leftover credits in its own ledger.
 */
import { parseCredits } from '@chainmeter/schema';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import { createGaslessPayer, usdcBalance } from '@chainmeter/testkit/token';
import { devnetX402Client } from '@chainmeter/testkit/x402-client';
import { decodePaymentResponseHeader } from '@x402/core/http';
import { wrapFetchWithPayment } from '@x402/fetch';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import { gqlData, signIn } from './support/graphql.ts';
import { type Platform, startPlatform } from './support/platform.ts';
import { waitFor } from './support/wait-for.ts';

let platform: Platform;
let api: RunningApi;

beforeAll(async () => {
  platform = await startPlatform({ pglite: true, confirmations: 2 });
  api = await platform.startApi();
}, 120_000);

afterAll(async () => {
  await platform?.close();
});

interface Me {
  me: {
    balance: string;
    ledger: { edges: { node: { reason: string; amount: string; balanceAfter: string } }[] };
  };
}

it('pays an exact call on embedded PGlite; the payer finds deposit, usage and leftover credits after sign-in', async () => {
  expect(api.services.config.databaseUrl).toBeUndefined();
  const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 2_000_000n);
  const client = devnetX402Client(payer, { rpcUrl: platform.anvil.rpcUrl, assets: [platform.token] });
  const response = await wrapFetchWithPayment(fetch, client)(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'chainmeter-dev-large',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Hi' }],
    }),
  });
  expect(response.status).toBe(200);
  expect(decodePaymentResponseHeader(response.headers.get('PAYMENT-RESPONSE') as string).success).toBe(true);
  const paid = 2_000_000n - (await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address));
  expect(paid).toBeGreaterThan(0n);

  await mineBlocks(platform.anvil.rpcUrl, 3);
  const token = await signIn(api.url, payer, platform.chainId);
  const me = await waitFor<Me['me'] | undefined>(
    'the settlement credited and the call charged',
    async () => {
      const page = await gqlData<Me>(
        api.url,
        '{ me { balance ledger(first: 10) { edges { node { reason amount balanceAfter } } } } }',
        {},
        token,
      );
      return page.me.ledger.edges.length === 2 ? page.me : undefined;
    },
    60_000,
  );
  // Newest first: the call's USAGE after its DEPOSIT; what the call did not use stays.
  if (!me) throw new Error('waitFor resolved without the ledger');
  const [usage, deposit] = me.ledger.edges.map((edge) => edge.node);
  expect(deposit?.reason).toBe('DEPOSIT');
  expect(usage?.reason).toBe('USAGE');
  expect(parseCredits(deposit?.amount ?? '')).toBe(paid);
  const price = -parseCredits(usage?.amount ?? '');
  expect(price).toBeGreaterThan(0n);
  expect(price).toBeLessThanOrEqual(paid);
  expect(parseCredits(usage?.balanceAfter ?? '')).toBe(paid - price);
  expect(parseCredits(me.balance)).toBe(paid - price);
}, 120_000);
