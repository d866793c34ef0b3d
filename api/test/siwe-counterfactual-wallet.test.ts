/**
 * Sign-in for a smart wallet that is not deployed yet (EIP-6492), as Coinbase Smart Wallet users have
 * before their first transaction: the signature carries the factory call that would create the wallet,
 * and the API verifies it on chain (through its RPC) by simulating that deployment. The wallet and its
 * CREATE2 factory are the testkit's (`@chainmeter/testkit/smart-wallet`), on a real anvil node.
 */
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { counterfactualWallet, deploySmartWalletFactory } from '@chainmeter/testkit/smart-wallet';
import { createPublicClient, type Hex, http } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData } from './support/graphql.ts';

let anvil: Anvil;
let database: TestDatabase;
let api: RunningApi;
let factory: Hex;

const challenge = 'mutation($a: Address!) { siweChallenge(address: $a, chainId: 31337) }';
const signIn =
  'mutation($m: String!, $s: String!) { signIn(message: $m, signature: $s) { token account { walletAddress } } }';
const me = '{ me { walletAddress } }';

beforeAll(async () => {
  anvil = await startAnvil();
  factory = await deploySmartWalletFactory(anvil.rpcUrl);
  database = await createTestDatabase('cm_siwe6492');
  api = await startApi(
    testApiConfig({
      RPC_URL: anvil.rpcUrl,
      DATABASE_URL: database.url,
    }),
    { crediting: false },
  );
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
  await anvil?.stop();
});

async function challengeFor(address: Hex): Promise<string> {
  return (await gqlData<{ siweChallenge: string }>(api.url, challenge, { a: address })).siweChallenge;
}

it('signs in a wallet that is not deployed yet, as the wallet, and refuses a wrong owner', async () => {
  const owner = privateKeyToAccount(generatePrivateKey());
  const wallet = counterfactualWallet(anvil.rpcUrl, { factory, owner });
  const chain = createPublicClient({ transport: http(anvil.rpcUrl) });
  expect(await chain.getCode({ address: wallet.address })).toBeUndefined();

  // Someone else's key, wrapped with the very same deployment: refused, and the challenge stays usable.
  const message = await challengeFor(wallet.address);
  const stranger = privateKeyToAccount(generatePrivateKey());
  const forged = wallet.wrap(await stranger.signMessage({ message }));
  const refused = await gql(api.url, signIn, { m: message, s: forged });
  expect(refused.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  expect(refused.errors?.[0]?.message).toMatch(/signature does not match/);
  // The owner's bare signature says nothing about a wallet that has no code to ask.
  const bare = await gql(api.url, signIn, { m: message, s: await owner.signMessage({ message }) });
  expect(bare.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

  const session = await gqlData<{ signIn: { token: string; account: { walletAddress: string } } }>(
    api.url,
    signIn,
    { m: message, s: await wallet.signMessage({ message }) },
  );
  // The account is the wallet's, not its owner's key.
  expect(session.signIn.account.walletAddress).toBe(wallet.address);
  const viewer = await gqlData<{ me: { walletAddress: string } }>(api.url, me, {}, session.signIn.token);
  expect(viewer.me.walletAddress).toBe(wallet.address);
  // Verifying simulated the deployment; nothing was deployed.
  expect(await chain.getCode({ address: wallet.address })).toBeUndefined();

  // The same signed message a second time: refused (the nonce is spent).
  const replay = await gql(api.url, signIn, { m: message, s: await wallet.signMessage({ message }) });
  expect(replay.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

  // Once deployed, the same wallet signs in again with a wrapped or a plain EIP-1271 signature.
  await wallet.deploy();
  for (const sign of [wallet.signMessage, owner.signMessage]) {
    const next = await challengeFor(wallet.address);
    const again = await gqlData<{ signIn: { account: { walletAddress: string } } }>(api.url, signIn, {
      m: next,
      s: await sign({ message: next }),
    });
    expect(again.signIn.account.walletAddress).toBe(wallet.address);
  }
});

it('refuses a wrapped signature whose deployment makes a wallet for another owner', async () => {
  const owner = privateKeyToAccount(generatePrivateKey());
  const wallet = counterfactualWallet(anvil.rpcUrl, { factory, owner });
  const intruder = privateKeyToAccount(generatePrivateKey());
  // The intruder's own counterfactual wallet deploys elsewhere: its deployment proves nothing here.
  const intruderWallet = counterfactualWallet(anvil.rpcUrl, { factory, owner: intruder });
  const message = await challengeFor(wallet.address);
  const refused = await gql(api.url, signIn, {
    m: message,
    s: await intruderWallet.signMessage({ message }),
  });
  expect(refused.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
});
