/**
 * Sign-in with Ethereum and sessions, through the public GraphQL API, against a real anvil node and a
 * fresh PostgreSQL database. Every way a sign-in can be wrong is refused with a clear error, and nothing
 * a stranger does can burn someone else's challenge.
 */

import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createSiweMessage, parseSiweMessage } from 'viem/siwe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData, signIn, subscribe } from './support/graphql.ts';

const ORIGIN = 'http://localhost:4000';
const CHAIN_ID = 31337;
const CHALLENGE =
  'mutation($address: Address!, $chainId: Int!) { siweChallenge(address: $address, chainId: $chainId) }';
const SIGN_IN =
  'mutation($message: String!, $signature: String!) { signIn(message: $message, signature: $signature) { token expiresAt account { walletAddress balance } } }';

let anvil: Anvil;
let database: TestDatabase;
let api: RunningApi;

beforeAll(async () => {
  anvil = await startAnvil();
  database = await createTestDatabase('cm_siwe');
  api = await startApi(
    testApiConfig({
      PUBLIC_ORIGIN: ORIGIN,
      RPC_URL: anvil.rpcUrl,
      DATABASE_URL: database.url,
      // This file signs in dozens of times from one address; the per-IP limit has its own tests.
      RATE_LIMIT_IP_PER_MINUTE: '1000',
    }),
    { crediting: false },
  );
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
  await anvil?.stop();
});

const newWallet = () => privateKeyToAccount(generatePrivateKey());

async function challengeFor(address: string, chainId = CHAIN_ID): Promise<string> {
  return (await gqlData<{ siweChallenge: string }>(api.url, CHALLENGE, { address, chainId })).siweChallenge;
}

async function attempt(message: string, signature: string) {
  return gql<{ signIn: { token: string } }>(api.url, SIGN_IN, { message, signature });
}

/** Re-creates a real challenge with some fields changed (as an attacker or a buggy client would). */
function altered(message: string, changes: Partial<Parameters<typeof createSiweMessage>[0]>): string {
  const fields = parseSiweMessage(message);
  return createSiweMessage({
    address: fields.address as `0x${string}`,
    chainId: fields.chainId as number,
    domain: fields.domain as string,
    nonce: fields.nonce as string,
    uri: fields.uri as string,
    version: '1',
    statement: fields.statement,
    issuedAt: fields.issuedAt,
    expirationTime: fields.expirationTime,
    ...changes,
  });
}

function expectRefused(result: Awaited<ReturnType<typeof attempt>>, code: string, message: RegExp) {
  expect(result.status).toBe(200);
  expect(result.data).toBeNull();
  expect(result.errors?.[0]?.extensions?.code).toBe(code);
  expect(result.errors?.[0]?.message).toMatch(message);
}

describe('sign-in with Ethereum', () => {
  it('issues an EIP-4361 message for this origin and chain, and signs in with it', async () => {
    const wallet = newWallet();
    const message = await challengeFor(wallet.address.toLowerCase());
    const fields = parseSiweMessage(message);
    expect(fields).toMatchObject({
      domain: 'localhost:4000',
      uri: ORIGIN,
      chainId: CHAIN_ID,
      address: wallet.address,
    });
    expect(fields.expirationTime).toBeInstanceOf(Date);
    const result = await attempt(message, await wallet.signMessage({ message }));
    expect(result.errors).toBeUndefined();
    const me = await gqlData<{ me: { walletAddress: string; balance: string } }>(
      api.url,
      '{ me { walletAddress balance } }',
      {},
      result.data?.signIn.token,
    );
    expect(me.me).toEqual({ walletAddress: wallet.address, balance: '0' });
  });

  it('sets an httpOnly session cookie that authenticates the web client', async () => {
    const wallet = newWallet();
    const message = await challengeFor(wallet.address);
    const response = await fetch(`${api.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: SIGN_IN,
        variables: { message, signature: await wallet.signMessage({ message }) },
      }),
    });
    const cookie = response.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/cm_session=cms_/);
    expect(cookie.toLowerCase()).toContain('httponly');
    const me = await fetch(`${api.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: cookie.split(';')[0] as string },
      body: JSON.stringify({ query: '{ me { walletAddress } }' }),
    });
    expect(await me.json()).toEqual({ data: { me: { walletAddress: wallet.address } } });
  });

  it('refuses a replayed message', async () => {
    const wallet = newWallet();
    const message = await challengeFor(wallet.address);
    const signature = await wallet.signMessage({ message });
    expect((await attempt(message, signature)).errors).toBeUndefined();
    expectRefused(await attempt(message, signature), 'UNAUTHENTICATED', /already used/);
  });

  it("does not let a stranger burn someone's challenge", async () => {
    const owner = newWallet();
    const stranger = newWallet();
    const message = await challengeFor(owner.address);
    expectRefused(
      await attempt(message, await stranger.signMessage({ message })),
      'UNAUTHENTICATED',
      /signature does not match/,
    );
    expect((await attempt(message, await owner.signMessage({ message }))).errors).toBeUndefined();
  });

  it('refuses a wrong domain, URI or chain', async () => {
    const wallet = newWallet();
    for (const [changes, reason] of [
      [{ domain: 'evil.example' }, /is for evil\.example/],
      [{ uri: 'https://evil.example' }, /URI/],
      [{ chainId: 1 }, /wrong chain/],
    ] as const) {
      const message = altered(await challengeFor(wallet.address), changes);
      expectRefused(await attempt(message, await wallet.signMessage({ message })), 'UNAUTHENTICATED', reason);
    }
    const wrongChain = await gql(api.url, CHALLENGE, { address: wallet.address, chainId: 8453 });
    expect(wrongChain.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(wrongChain.errors?.[0]?.message).toMatch(/runs on chain 31337/);
  });

  it('refuses expired, too old, future and not-yet-valid messages, and one without expiration', async () => {
    const wallet = newWallet();
    const now = Date.now();
    for (const [changes, reason] of [
      [{ expirationTime: new Date(now - 1_000) }, /expired/],
      [{ issuedAt: new Date(now - 60 * 60_000) }, /too old/],
      [{ issuedAt: new Date(now + 10 * 60_000) }, /future/],
      [{ notBefore: new Date(now + 10 * 60_000) }, /not valid yet/],
      [{ expirationTime: undefined }, /no expiration/],
    ] as const) {
      const message = altered(await challengeFor(wallet.address), changes);
      expectRefused(await attempt(message, await wallet.signMessage({ message })), 'UNAUTHENTICATED', reason);
    }
  });

  it('refuses an unknown nonce', async () => {
    const wallet = newWallet();
    const message = altered(await challengeFor(wallet.address), { nonce: 'abcdefgh12345678' });
    expectRefused(
      await attempt(message, await wallet.signMessage({ message })),
      'UNAUTHENTICATED',
      /unknown nonce/,
    );
  });

  it('answers malformed input with BAD_USER_INPUT, never a 500', async () => {
    const wallet = newWallet();
    const message = await challengeFor(wallet.address);
    expectRefused(
      await attempt('hello', await wallet.signMessage({ message: 'hello' })),
      'BAD_USER_INPUT',
      /sign-in message/,
    );
    expectRefused(await attempt(message, 'not a signature'), 'BAD_USER_INPUT', /hex/);
    const signature = await wallet.signMessage({ message });
    expectRefused(
      await attempt(message, signature.slice(0, 40)),
      'UNAUTHENTICATED',
      /signature does not match/,
    );
    // A variable that does not coerce is a request error: 400 under the GraphQL-over-HTTP spec.
    const badAddress = await gql(api.url, CHALLENGE, { address: '0x1234', chainId: CHAIN_ID });
    expect(badAddress.status).toBe(400);
    expect(badAddress.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(badAddress.errors?.[0]?.message).toMatch(/not an address/);
    // The challenge is still good after all of that.
    expect((await attempt(message, signature)).errors).toBeUndefined();
  });
});

describe('sessions', () => {
  it('signOut revokes the token server-side', async () => {
    const wallet = newWallet();
    const token = await signIn(api.url, wallet, CHAIN_ID);
    expect((await gqlData<{ signOut: boolean }>(api.url, 'mutation { signOut }', {}, token)).signOut).toBe(
      true,
    );
    expect((await gqlData<{ me: unknown }>(api.url, '{ me { id } }', {}, token)).me).toBeNull();
    const again = await gql(api.url, 'mutation { signOut }', {}, token);
    expect(again.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('refuses subscriptions without a valid session at subscribe time', async () => {
    const anonymous = await subscribe(api.url, 'subscription { balanceUpdated { balance } }');
    await expect(anonymous.waitFor(() => true, 10_000)).rejects.toThrow(/UNAUTHENTICATED|Sign in first/);
    await anonymous.close();
    const forged = await subscribe(api.url, 'subscription { depositUpdated { id } }', 'cms_forged');
    await expect(forged.waitFor(() => true, 10_000)).rejects.toThrow(/UNAUTHENTICATED|Sign in first/);
    await forged.close();
  });

  it('validates pagination arguments', async () => {
    const token = await signIn(api.url, newWallet(), CHAIN_ID);
    for (const query of [
      '{ me { ledger(first: 1000) { edges { cursor } } } }',
      '{ me { deposits(first: -1) { edges { cursor } } } }',
      '{ me { ledger(after: "garbage") { edges { cursor } } } }',
      // Well-formed cursors of the right kind whose positions are not numbers.
      `{ me { ledger(after: "${Buffer.from('ledger:abc').toString('base64url')}") { edges { cursor } } } }`,
      `{ me { deposits(after: "${Buffer.from('deposit:abc:0:x').toString('base64url')}") { edges { cursor } } } }`,
    ]) {
      const result = await gql(api.url, query, {}, token);
      expect(result.status, query).toBe(200);
      expect(result.errors?.[0]?.extensions?.code, `${query}: ${JSON.stringify(result)}`).toBe(
        'BAD_USER_INPUT',
      );
    }
  });
});
