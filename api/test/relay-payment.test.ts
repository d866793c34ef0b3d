/**
 * Gasless top-ups end to end, through the public GraphQL API: real anvil with the EIP-3009 test token,
 * real Ponder, real PostgreSQL. A wallet holding USDC and no ETH signs an authorization, `relayPayment`
 * submits it through the relayer, and the usual path credits it once. Every refusal sends nothing.
 */
import { devAccounts } from '@chainmeter/testkit/accounts';
import { mineBlocks } from '@chainmeter/testkit/anvil';
import {
  authorizationState,
  signTransferAuthorization,
  type TransferAuthorization,
  transferAuthorization,
} from '@chainmeter/testkit/eip3009';
import { deploySmartWallet } from '@chainmeter/testkit/smart-wallet';
import { createGaslessPayer, deployTestUsdc, mintUsdc, usdcBalance } from '@chainmeter/testkit/token';
import { type Address, createPublicClient, type Hash, type Hex, http, type LocalAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../src/server.ts';
import { eventually, gql, gqlData, signIn, subscribe } from './support/graphql.ts';
import { type Platform, startPlatform } from './support/platform.ts';
import { RELAY_PAYMENT, transferAuthorizationInput } from './support/relay.ts';

const RELAY = RELAY_PAYMENT;

interface RelayResult {
  relayPayment: { txHash: Hash; amountToken: string };
}

let platform: Platform;
let api: RunningApi;

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi({
    RELAY_RATE_LIMIT_IP_PER_HOUR: '1000',
    RELAY_RATE_LIMIT_WALLET_PER_HOUR: '100',
  });
}, 120_000);

afterAll(async () => {
  await platform?.close();
});

const chain = () => createPublicClient({ transport: http(platform.anvil.rpcUrl), pollingInterval: 50 });
const domain = () => ({ token: platform.token, chainId: platform.chainId });

const input = transferAuthorizationInput;

async function signed(
  payer: LocalAccount,
  fields: Partial<TransferAuthorization> & { value: bigint },
  signDomain = domain(),
) {
  const authorization = transferAuthorization({ from: payer.address, to: platform.treasury, ...fields });
  return { authorization, signature: await signTransferAuthorization(payer, signDomain, authorization) };
}

/** The relayer's transactions so far, mined or pending. */
const relayerNonce = () =>
  chain().getTransactionCount({ address: devAccounts.relayer.address, blockTag: 'pending' });

/** Expects `relayPayment` to be refused with `code` and `reason`, and the relayer to send nothing. */
async function expectRefused(
  variables: ReturnType<typeof input>,
  code: string,
  reason?: string,
  url = api.url,
) {
  const before = await relayerNonce();
  const result = await gql<RelayResult>(url, RELAY, { input: variables });
  expect(result.status).toBe(200);
  expect(result.data).toBeFalsy();
  expect(result.errors?.[0]?.extensions).toMatchObject({ code, ...(reason ? { reason } : {}) });
  expect(await relayerNonce()).toBe(before);
  return result.errors?.[0];
}

describe('relayPayment', () => {
  it('uses the devnet relayer by default', () => {
    expect(api.services.relayer?.address).toBe(devAccounts.relayer.address);
  });

  it('tops up a wallet that holds USDC and no ETH: PENDING, then CREDITED exactly once', async () => {
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 10_000_000n);
    expect(await chain().getBalance({ address: payer.address })).toBe(0n);
    const token = await signIn(api.url, payer, platform.chainId);
    const deposits = await subscribe<{ depositUpdated: { txHash: string; status: string; credits: string } }>(
      api.url,
      'subscription { depositUpdated { txHash status credits } }',
      token,
    );
    const treasuryBefore = await usdcBalance(platform.anvil.rpcUrl, platform.token, platform.treasury);

    const { authorization, signature } = await signed(payer, { value: 2_500_000n });
    const { relayPayment } = await gqlData<RelayResult>(api.url, RELAY, {
      input: input(authorization, signature),
    });
    expect(relayPayment.amountToken).toBe('2500000');
    const receipt = await chain().waitForTransactionReceipt({ hash: relayPayment.txHash });
    expect(receipt.status).toBe('success');
    expect(receipt.from).toBe(devAccounts.relayer.address.toLowerCase());

    const pending = await deposits.waitFor((e) => e.depositUpdated.txHash === relayPayment.txHash);
    expect(pending.depositUpdated).toMatchObject({ status: 'PENDING', credits: '2500' });
    await mineBlocks(platform.anvil.rpcUrl, 2);
    await deposits.waitFor((e) => e.depositUpdated.status === 'CREDITED');

    const me = `{ me { balance deposits(first: 10) { edges { node { txHash from status amountToken } } } } }`;
    type Me = { me: { balance: string; deposits: { edges: { node: Record<string, string> }[] } } };
    const after = await gqlData<Me>(api.url, me, {}, token);
    expect(after.me.balance).toBe('2500');
    expect(after.me.deposits.edges.map((edge) => edge.node)).toEqual([
      { txHash: relayPayment.txHash, from: payer.address, status: 'CREDITED', amountToken: '2500000' },
    ]);
    // The payer paid no gas and still has none; the treasury got exactly the amount.
    expect(await chain().getBalance({ address: payer.address })).toBe(0n);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(7_500_000n);
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, platform.treasury)).toBe(
      treasuryBefore + 2_500_000n,
    );

    // Replaying the same authorization is refused before anything is sent; the balance stays.
    await expectRefused(input(authorization, signature), 'BAD_USER_INPUT', 'AUTHORIZATION_USED');
    await mineBlocks(platform.anvil.rpcUrl, 3);
    await eventually(async () =>
      (api.services.indexedHead() ?? 0n) >= receipt.blockNumber + 5n ? true : undefined,
    );
    expect((await gqlData<Me>(api.url, me, {}, token)).me.balance).toBe('2500');
    expect(deposits.events.filter((e) => e.depositUpdated.status === 'CREDITED')).toHaveLength(1);
    await deposits.close();
  });

  describe('refuses, sending nothing', () => {
    let payer: Awaited<ReturnType<typeof createGaslessPayer>>;
    beforeAll(async () => {
      payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    });

    it('an authorization to another address than the treasury', async () => {
      const { authorization, signature } = await signed(payer, {
        value: 1_000_000n,
        to: devAccounts.payers[0]?.address as Address,
      });
      await expectRefused(input(authorization, signature), 'BAD_USER_INPUT', 'WRONG_RECIPIENT');
    });

    it('an authorization signed for another token', async () => {
      const other = await deployTestUsdc(platform.anvil.rpcUrl);
      await mintUsdc(platform.anvil.rpcUrl, other, payer.address, 5_000_000n);
      const { authorization, signature } = await signed(
        payer,
        { value: 1_000_000n },
        { token: other, chainId: 31337 },
      );
      await expectRefused(input(authorization, signature), 'BAD_USER_INPUT', 'INVALID_SIGNATURE');
      expect(await authorizationState(platform.anvil.rpcUrl, other, payer.address, authorization.nonce)).toBe(
        false,
      );
    });

    it('less than the minimum (1 USDC by default)', async () => {
      const { authorization, signature } = await signed(payer, { value: 999_999n });
      await expectRefused(input(authorization, signature), 'BAD_USER_INPUT', 'BELOW_MINIMUM');
    });

    it('an expired authorization, and one about to expire', async () => {
      const now = BigInt(Math.floor(Date.now() / 1000));
      const expired = await signed(payer, { value: 1_000_000n, validBefore: now - 1n });
      await expectRefused(input(expired.authorization, expired.signature), 'BAD_USER_INPUT', 'EXPIRED');
      const closing = await signed(payer, { value: 1_000_000n, validBefore: now + 5n });
      await expectRefused(input(closing.authorization, closing.signature), 'BAD_USER_INPUT', 'EXPIRED');
    });

    it('an authorization not valid yet', async () => {
      const now = BigInt(Math.floor(Date.now() / 1000));
      const { authorization, signature } = await signed(payer, {
        value: 1_000_000n,
        validAfter: now + 3_600n,
      });
      await expectRefused(input(authorization, signature), 'BAD_USER_INPUT', 'NOT_YET_VALID');
    });

    it('a signature by someone else, a tampered field, and garbage', async () => {
      const stranger = privateKeyToAccount(generatePrivateKey());
      const authorization = transferAuthorization({
        from: payer.address,
        to: platform.treasury,
        value: 1_000_000n,
      });
      const bySomeoneElse = await signTransferAuthorization(stranger, domain(), authorization);
      await expectRefused(input(authorization, bySomeoneElse), 'BAD_USER_INPUT', 'INVALID_SIGNATURE');
      const own = await signTransferAuthorization(payer, domain(), authorization);
      await expectRefused(
        { ...input(authorization, own), value: '2000000' },
        'BAD_USER_INPUT',
        'INVALID_SIGNATURE',
      );
      await expectRefused(
        { ...input(authorization, own), signature: 'not hex' as Hex },
        'BAD_USER_INPUT',
        'INVALID_SIGNATURE',
      );
      await expectRefused(
        { ...input(authorization, own), signature: `0x${'00'.repeat(65)}` },
        'BAD_USER_INPUT',
        'INVALID_SIGNATURE',
      );
      expect(
        await authorizationState(platform.anvil.rpcUrl, platform.token, payer.address, authorization.nonce),
      ).toBe(false);
    });

    it('more than the payer holds', async () => {
      const { authorization, signature } = await signed(payer, { value: 5_000_001n });
      await expectRefused(input(authorization, signature), 'BAD_USER_INPUT', 'INSUFFICIENT_FUNDS');
    });

    it('malformed scalars at the schema level, never a 500', async () => {
      const { authorization, signature } = await signed(payer, { value: 1_000_000n });
      for (const bad of [
        { ...input(authorization, signature), nonce: '0x1234' },
        { ...input(authorization, signature), value: '-1' },
        { ...input(authorization, signature), from: 'nobody' },
      ]) {
        const before = await relayerNonce();
        const result = await gql(api.url, RELAY, { input: bad });
        expect(result.status).toBeLessThan(500);
        expect(result.data).toBeFalsy();
        expect(result.errors?.[0]?.message).not.toMatch(/Unexpected error/);
        expect(await relayerNonce()).toBe(before);
      }
    });

    it('nothing moved for any of them', async () => {
      expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(5_000_000n);
    });
  });

  it('relays five authorizations at once, all mined (the relayer manages its nonces)', async () => {
    // Funded one after another: the deployer's mints are the test's, not the relayer's, and share no nonce manager.
    const payers = [];
    for (let i = 0; i < 5; i++)
      payers.push(await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 3_000_000n));
    const requests = await Promise.all(
      payers.map((payer, i) => signed(payer, { value: 1_000_000n + BigInt(i) })),
    );
    const results = await Promise.all(
      requests.map(({ authorization, signature }) =>
        gqlData<RelayResult>(api.url, RELAY, { input: input(authorization, signature) }),
      ),
    );
    const receipts = await Promise.all(
      results.map((result) => chain().waitForTransactionReceipt({ hash: result.relayPayment.txHash })),
    );
    expect(receipts.map((receipt) => receipt.status)).toEqual(Array(5).fill('success'));
    for (const [i, payer] of payers.entries()) {
      expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, payer.address)).toBe(
        2_000_000n - BigInt(i),
      );
    }
  });

  it("relays a contract wallet's authorization (EIP-1271, checked by the token) and refuses a wrong owner", async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const wallet = await deploySmartWallet(platform.anvil.rpcUrl, owner.address);
    await mintUsdc(platform.anvil.rpcUrl, platform.token, wallet, 2_000_000n);
    const authorization = transferAuthorization({ from: wallet, to: platform.treasury, value: 1_000_000n });
    const stranger = privateKeyToAccount(generatePrivateKey());
    await expectRefused(
      input(authorization, await signTransferAuthorization(stranger, domain(), authorization)),
      'BAD_USER_INPUT',
      'SIMULATION_FAILED',
    );
    const { relayPayment } = await gqlData<RelayResult>(api.url, RELAY, {
      input: input(authorization, await signTransferAuthorization(owner, domain(), authorization)),
    });
    expect((await chain().waitForTransactionReceipt({ hash: relayPayment.txHash })).status).toBe('success');
    expect(await usdcBalance(platform.anvil.rpcUrl, platform.token, wallet)).toBe(1_000_000n);
  });

  it('limits attempts per client IP and per paying wallet, the wallet only for its own signatures', async () => {
    const limited = await platform.startApi({
      RELAY_RATE_LIMIT_WALLET_PER_HOUR: '1',
      RELAY_RATE_LIMIT_IP_PER_HOUR: '4',
    });
    const payer = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    // A stranger's forged attempts for the payer count against the IP, not the payer's budget.
    const forged = transferAuthorization({ from: payer.address, to: platform.treasury, value: 1_000_000n });
    const stranger = privateKeyToAccount(generatePrivateKey());
    const forgedSignature = await signTransferAuthorization(stranger, domain(), forged);
    await expectRefused(input(forged, forgedSignature), 'BAD_USER_INPUT', 'INVALID_SIGNATURE', limited.url);
    // The payer's own first top-up passes; a second within the hour is refused.
    const first = await signed(payer, { value: 1_000_000n });
    const { relayPayment } = await gqlData<RelayResult>(limited.url, RELAY, {
      input: input(first.authorization, first.signature),
    });
    await chain().waitForTransactionReceipt({ hash: relayPayment.txHash });
    const second = await signed(payer, { value: 1_000_000n });
    const refused = await expectRefused(
      input(second.authorization, second.signature),
      'RATE_LIMITED',
      undefined,
      limited.url,
    );
    expect(refused?.message).toMatch(/wallet\.relayPayment/);
    // The fourth attempt from this IP passes (another wallet); the fifth is refused whoever it is for.
    const other = await createGaslessPayer(platform.anvil.rpcUrl, platform.token, 5_000_000n);
    const third = await signed(other, { value: 1_000_000n });
    const passed = await gqlData<RelayResult>(limited.url, RELAY, {
      input: input(third.authorization, third.signature),
    });
    await chain().waitForTransactionReceipt({ hash: passed.relayPayment.txHash });
    const fourth = await signed(other, { value: 1_000_000n });
    const blocked = await expectRefused(
      input(fourth.authorization, fourth.signature),
      'RATE_LIMITED',
      undefined,
      limited.url,
    );
    expect(blocked?.message).toMatch(/ip\.relayPayment/);
  });

  it('says in paymentConfig what the smallest gasless top-up is', async () => {
    const { paymentConfig } = await gqlData<{ paymentConfig: { gaslessMinAmount: string | null } }>(
      api.url,
      '{ paymentConfig { gaslessMinAmount } }',
    );
    expect(paymentConfig.gaslessMinAmount).toBe('1000000');
  });
});
