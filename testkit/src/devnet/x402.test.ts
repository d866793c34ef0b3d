/**
 * The devnet as x402 sees it: `@x402/evm`'s own client schemes sign and its own facilitator schemes
 * verify and settle, unchanged, on a real anvil with the devnet's TestUSDC (`exact`, EIP-3009) and the
 * devnet's Permit2 and x402 upto proxy at their canonical addresses (`upto`). The relayer account is
 * the facilitator.
 */
import { x402Client } from '@x402/core/client';
import { x402Facilitator } from '@x402/core/facilitator';
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { toClientEvmSigner, toFacilitatorEvmSigner, x402UptoPermit2ProxyABI } from '@x402/evm';
import { ExactEvmScheme as ExactClient } from '@x402/evm/exact/client';
import { ExactEvmScheme as ExactFacilitator } from '@x402/evm/exact/facilitator';
import { UptoEvmScheme as UptoClient } from '@x402/evm/upto/client';
import { UptoEvmScheme as UptoFacilitator } from '@x402/evm/upto/facilitator';
import {
  type Account,
  type Address,
  createPublicClient,
  createWalletClient,
  encodeAbiParameters,
  encodeFunctionData,
  erc20Abi,
  getAddress,
  type Hex,
  http,
  keccak256,
  maxUint256,
  publicActions,
  toHex,
} from 'viem';
import { foundry } from 'viem/chains';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devAccounts } from './accounts.ts';
import { type Anvil, startAnvil } from './anvil.ts';
import {
  MULTICALL3_ADDRESS,
  multicall3Abi,
  PERMIT2_ADDRESS,
  permit2Abi,
  permit2NonceUsed,
  X402_UPTO_PERMIT2_PROXY_ADDRESS,
} from './canonical-contracts.ts';
import { authorizationState } from './eip3009.ts';
import { createGaslessPayer, deployTestUsdc, mintUsdc, usdcBalance } from './token.ts';

const NETWORK = 'eip155:31337' as const;
let anvil: Anvil;
let token: Address;
const treasury = devAccounts.treasury.address;
const relayer = devAccounts.relayer;

const publicClient = () =>
  createPublicClient({ chain: foundry, transport: http(anvil.rpcUrl), pollingInterval: 50 });

function walletOf(account: Account) {
  return createWalletClient({
    account,
    chain: foundry,
    transport: http(anvil.rpcUrl),
    pollingInterval: 50,
  }).extend(publicActions);
}

/** The relayer as an x402 facilitator signer (its reads are `eth_call`s from its own address). */
function facilitatorSigner(account: Account & { address: Address } = relayer) {
  const client = walletOf(account);
  return toFacilitatorEvmSigner(
    Object.assign(client, { address: account.address }) as unknown as Parameters<
      typeof toFacilitatorEvmSigner
    >[0],
    { confirmationTimeoutMs: 30_000 },
  );
}

function facilitator() {
  return new x402Facilitator()
    .register(NETWORK, new ExactFacilitator(facilitatorSigner()))
    .register(NETWORK, new UptoFacilitator(facilitatorSigner()));
}

/** An x402 client paying from `account`; the devnet token is not one of x402's known assets. */
function client(account: Account & { address: Address }) {
  const signer = toClientEvmSigner(
    {
      address: account.address,
      signTypedData: (message) => account.signTypedData?.(message as never) as never,
    },
    publicClient(),
  );
  return new x402Client()
    .register(NETWORK, new ExactClient(signer))
    .register(NETWORK, new UptoClient(signer))
    .setSpendControls({ allowedAssets: [{ network: NETWORK, asset: token }] });
}

function paymentRequired(
  accepts: PaymentRequirements[],
  extensions?: Record<string, unknown>,
): PaymentRequired {
  return {
    x402Version: 2,
    resource: {
      url: 'http://127.0.0.1/v1/chat/completions',
      description: 'a chat completion',
      mimeType: 'application/json',
    },
    accepts,
    ...(extensions ? { extensions } : {}),
  };
}

const exactOffer = (amount: bigint, extra: Record<string, unknown> = { name: 'USD Coin', version: '2' }) =>
  ({
    scheme: 'exact',
    network: NETWORK,
    asset: token,
    amount: amount.toString(),
    payTo: treasury,
    maxTimeoutSeconds: 60,
    extra,
  }) satisfies PaymentRequirements;

const uptoOffer = (amount: bigint) =>
  ({
    scheme: 'upto',
    network: NETWORK,
    asset: token,
    amount: amount.toString(),
    payTo: treasury,
    maxTimeoutSeconds: 60,
    extra: { name: 'USD Coin', version: '2', facilitatorAddress: relayer.address },
  }) satisfies PaymentRequirements;

type Permit2Authorization = {
  from: Address;
  permitted: { token: Address; amount: string };
  nonce: string;
  deadline: string;
  witness: { to: Address; facilitator: Address; validAfter: string };
};
const permit2AuthorizationOf = (payload: PaymentPayload) =>
  (payload.payload as { permit2Authorization: Permit2Authorization; signature: Hex }).permit2Authorization;

beforeAll(async () => {
  anvil = await startAnvil({ chainId: foundry.id });
  token = await deployTestUsdc(anvil.rpcUrl);
});

afterAll(async () => {
  await anvil?.stop();
});

describe('the canonical contracts on the devnet', () => {
  it('Permit2 answers with its EIP-712 domain (name "Permit2", no version) for this chain and address', async () => {
    const separator = await publicClient().readContract({
      address: PERMIT2_ADDRESS,
      abi: permit2Abi,
      functionName: 'DOMAIN_SEPARATOR',
    });
    const expected = keccak256(
      encodeAbiParameters(
        [{ type: 'bytes32' }, { type: 'bytes32' }, { type: 'uint256' }, { type: 'address' }],
        [
          keccak256(toHex('EIP712Domain(string name,uint256 chainId,address verifyingContract)')),
          keccak256(toHex('Permit2')),
          31337n,
          PERMIT2_ADDRESS,
        ],
      ),
    );
    expect(separator).toBe(expected);
    const proxyPermit2 = await publicClient().readContract({
      address: X402_UPTO_PERMIT2_PROXY_ADDRESS,
      abi: x402UptoPermit2ProxyABI,
      functionName: 'PERMIT2',
    });
    expect(proxyPermit2).toBe(PERMIT2_ADDRESS);
    expect(
      await publicClient().readContract({
        address: X402_UPTO_PERMIT2_PROXY_ADDRESS,
        abi: x402UptoPermit2ProxyABI,
        functionName: 'WITNESS_TYPEHASH',
      }),
    ).toBe(keccak256(toHex('Witness(address to,address facilitator,uint256 validAfter)')));
  });

  it('Multicall3 aggregates for viem (aggregate3 with a failure allowed) and reads ETH balances', async () => {
    const client = publicClient();
    const [balance, failed, ethBalance] = await client.multicall({
      multicallAddress: MULTICALL3_ADDRESS,
      allowFailure: true,
      contracts: [
        { address: token, abi: erc20Abi, functionName: 'balanceOf', args: [treasury] },
        // No contract there: this call fails on its own without failing the others.
        {
          address: getAddress('0x000000000000000000000000000000000000dEaD'),
          abi: erc20Abi,
          functionName: 'decimals',
        },
        {
          address: MULTICALL3_ADDRESS,
          abi: multicall3Abi,
          functionName: 'getEthBalance',
          args: [relayer.address],
        },
      ],
    });
    expect(balance).toEqual({ status: 'success', result: await usdcBalance(anvil.rpcUrl, token, treasury) });
    expect(failed?.status).toBe('failure');
    expect(ethBalance).toEqual({
      status: 'success',
      result: await client.getBalance({ address: relayer.address }),
    });
    // x402's own diagnostics use tryAggregate (payable, so simulated rather than read).
    const { result: tried } = await client.simulateContract({
      address: MULTICALL3_ADDRESS,
      abi: multicall3Abi,
      functionName: 'tryAggregate',
      args: [
        false,
        [
          { target: MULTICALL3_ADDRESS, callData: '0xdeadbeef' },
          {
            target: MULTICALL3_ADDRESS,
            callData: encodeFunctionData({ abi: multicall3Abi, functionName: 'getChainId' }),
          },
        ],
      ],
    });
    expect(tried).toEqual([
      { success: false, returnData: '0x' },
      { success: true, returnData: toHex(31337n, { size: 32 }) },
    ]);
    await expect(
      client.simulateContract({
        address: MULTICALL3_ADDRESS,
        abi: multicall3Abi,
        functionName: 'aggregate',
        args: [[{ target: MULTICALL3_ADDRESS, callData: '0xdeadbeef' }]],
      }),
    ).rejects.toThrow(/Multicall3: call failed/);
  });
});

describe('x402 exact (EIP-3009) with @x402/evm', () => {
  it('a payer without ETH pays; the facilitator verifies and settles the exact amount, once', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 3_000_000n);
    const treasuryBefore = await usdcBalance(anvil.rpcUrl, token, treasury);
    const offer = exactOffer(1_250_000n);
    const payload = await client(payer).createPaymentPayload(paymentRequired([offer]));
    expect(payload.accepted.scheme).toBe('exact');

    const verified = await facilitator().verify(payload, offer);
    expect(verified).toMatchObject({ isValid: true, payer: payer.address });
    const settled = await facilitator().settle(payload, offer);
    expect(settled).toMatchObject({ success: true, payer: payer.address, network: NETWORK });
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(1_750_000n);
    expect(await usdcBalance(anvil.rpcUrl, token, treasury)).toBe(treasuryBefore + 1_250_000n);
    const { nonce } = (payload.payload as { authorization: { nonce: Hex } }).authorization;
    expect(await authorizationState(anvil.rpcUrl, token, payer.address, nonce)).toBe(true);
    const receipt = await publicClient().getTransactionReceipt({ hash: settled.transaction as Hex });
    expect(receipt.from.toLowerCase()).toBe(relayer.address.toLowerCase());

    // Replayed: refused before anything is sent, and nothing moves.
    const again = await facilitator().verify(payload, offer);
    expect(again.isValid).toBe(false);
    const replay = await facilitator().settle(payload, offer);
    expect(replay.success).toBe(false);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(1_750_000n);
  });

  it('signed for another token name (the old "USD Coin (devnet)") is refused', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 1_000_000n);
    const offer = exactOffer(500_000n, { name: 'USD Coin (devnet)', version: '2' });
    const payload = await client(payer).createPaymentPayload(paymentRequired([offer]));
    const verified = await facilitator().verify(payload, offer);
    expect(verified.isValid).toBe(false);
    expect((await facilitator().settle(payload, offer)).success).toBe(false);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(1_000_000n);
  });

  it('refuses a payment the payer cannot cover', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 999_999n);
    const offer = exactOffer(1_000_000n);
    const payload = await client(payer).createPaymentPayload(paymentRequired([offer]));
    const verified = await facilitator().verify(payload, offer);
    expect(verified).toMatchObject({ isValid: false });
    expect(verified.invalidReason).toMatch(/balance/);
  });
});

describe('x402 exact through Permit2 (the exact proxy) with @x402/evm', () => {
  it('settles the whole permitted amount, once', async () => {
    const payer = devAccounts.payers[3];
    if (!payer) throw new Error('no payer');
    await mintUsdc(anvil.rpcUrl, token, payer.address, 1_000_000n);
    const approval = await walletOf(payer).writeContract({
      address: token,
      abi: erc20Abi,
      functionName: 'approve',
      args: [PERMIT2_ADDRESS, maxUint256],
    });
    await publicClient().waitForTransactionReceipt({ hash: approval });
    const before = await usdcBalance(anvil.rpcUrl, token, payer.address);
    const offer = exactOffer(600_000n, { name: 'USD Coin', version: '2', assetTransferMethod: 'permit2' });
    const payload = await client(payer).createPaymentPayload(paymentRequired([offer]));
    expect(payload.payload).toHaveProperty('permit2Authorization');
    expect(await facilitator().verify(payload, offer)).toMatchObject({ isValid: true });
    expect(await facilitator().settle(payload, offer)).toMatchObject({ success: true });
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(before - 600_000n);
    expect((await facilitator().settle(payload, offer)).success).toBe(false);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(before - 600_000n);
  });
});

describe('x402 upto (Permit2 through the x402 upto proxy) with @x402/evm', () => {
  it('a payer who approved Permit2 signs a maximum; the facilitator settles less, once', async () => {
    const payer = devAccounts.payers[0];
    if (!payer) throw new Error('no payer');
    await mintUsdc(anvil.rpcUrl, token, payer.address, 5_000_000n);
    const payerBefore = await usdcBalance(anvil.rpcUrl, token, payer.address);
    const treasuryBefore = await usdcBalance(anvil.rpcUrl, token, treasury);
    const approval = await walletOf(payer).writeContract({
      address: token,
      abi: erc20Abi,
      functionName: 'approve',
      args: [PERMIT2_ADDRESS, maxUint256],
    });
    await publicClient().waitForTransactionReceipt({ hash: approval });

    const offer = uptoOffer(2_000_000n);
    const payload = await client(payer).createPaymentPayload(paymentRequired([offer]));
    expect(payload.accepted.scheme).toBe('upto');
    const authorization = permit2AuthorizationOf(payload);
    expect(getAddress(authorization.witness.facilitator)).toBe(relayer.address);
    expect(await facilitator().verify(payload, offer)).toMatchObject({ isValid: true, payer: payer.address });

    // The call cost less than the maximum: settle what it cost.
    const settled = await facilitator().settle(payload, { ...offer, amount: '734567' });
    expect(settled).toMatchObject({ success: true, payer: payer.address, amount: '734567' });
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(payerBefore - 734_567n);
    expect(await usdcBalance(anvil.rpcUrl, token, treasury)).toBe(treasuryBefore + 734_567n);
    expect(await permit2NonceUsed(anvil.rpcUrl, payer.address, BigInt(authorization.nonce))).toBe(true);

    // The same signature again, for the rest of the maximum: refused, nothing moves.
    expect((await facilitator().verify(payload, offer)).isValid).toBe(false);
    const replay = await facilitator().settle(payload, { ...offer, amount: '1000000' });
    expect(replay.success).toBe(false);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(payerBefore - 734_567n);
  });

  it('never settles more than the payer signed for, and only through the named facilitator', async () => {
    const payer = devAccounts.payers[1];
    if (!payer) throw new Error('no payer');
    await mintUsdc(anvil.rpcUrl, token, payer.address, 5_000_000n);
    const approval = await walletOf(payer).writeContract({
      address: token,
      abi: erc20Abi,
      functionName: 'approve',
      args: [PERMIT2_ADDRESS, maxUint256],
    });
    await publicClient().waitForTransactionReceipt({ hash: approval });
    const before = await usdcBalance(anvil.rpcUrl, token, payer.address);

    const offer = uptoOffer(1_000_000n);
    const payload = await client(payer).createPaymentPayload(paymentRequired([offer]));
    // The library refuses to settle more than the maximum ...
    const tooMuch = await facilitator().settle(payload, { ...offer, amount: '1000001' });
    expect(tooMuch.success).toBe(false);

    // ... and so do the contracts, called directly.
    const authorization = permit2AuthorizationOf(payload);
    const { signature } = payload.payload as { signature: Hex };
    const args = (amount: bigint, facilitatorAddress: Address = relayer.address) =>
      [
        {
          permitted: { token: authorization.permitted.token, amount: BigInt(authorization.permitted.amount) },
          nonce: BigInt(authorization.nonce),
          deadline: BigInt(authorization.deadline),
        },
        amount,
        authorization.from,
        {
          to: authorization.witness.to,
          facilitator: facilitatorAddress,
          validAfter: BigInt(authorization.witness.validAfter),
        },
        signature,
      ] as const;
    const settleAs = (account: Account, amount: bigint, facilitatorAddress?: Address) =>
      walletOf(account).simulateContract({
        address: X402_UPTO_PERMIT2_PROXY_ADDRESS,
        abi: x402UptoPermit2ProxyABI,
        functionName: 'settle',
        args: args(amount, facilitatorAddress),
      });
    await expect(settleAs(relayer, 1_000_001n)).rejects.toThrow(/AmountExceedsPermitted/);
    // Someone else than the facilitator the payer named.
    const stranger = devAccounts.payers[2] as Account;
    await expect(settleAs(stranger, 1_000n)).rejects.toThrow(/UnauthorizedFacilitator/);
    // Naming themselves as facilitator breaks the payer's signature (Permit2's InvalidSigner).
    await expect(settleAs(stranger, 1_000n, stranger.address as Address)).rejects.toThrow(/0x815e1d64/);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(before);

    // The payer cancels the unused signature through Permit2's nonce bitmap: it can no longer settle.
    const nonce = BigInt(authorization.nonce);
    const cancel = await walletOf(payer).writeContract({
      address: PERMIT2_ADDRESS,
      abi: permit2Abi,
      functionName: 'invalidateUnorderedNonces',
      args: [nonce >> 8n, 1n << (nonce & 255n)],
    });
    await publicClient().waitForTransactionReceipt({ hash: cancel });
    expect(await permit2NonceUsed(anvil.rpcUrl, payer.address, nonce)).toBe(true);
    expect((await facilitator().settle(payload, { ...offer, amount: '1000' })).success).toBe(false);
    // Permit2's InvalidNonce.
    await expect(settleAs(relayer, 1_000n)).rejects.toThrow(/0x756688fe/);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(before);
  });

  it('a payer without ETH approves Permit2 by EIP-2612 signature (eip2612GasSponsoring) and pays', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 2_000_000n);
    const treasuryBefore = await usdcBalance(anvil.rpcUrl, token, treasury);
    const offer = uptoOffer(1_500_000n);
    const payload = await client(payer).createPaymentPayload(
      paymentRequired([offer], { eip2612GasSponsoring: { info: {}, schema: {} } }),
    );
    expect(payload.extensions?.eip2612GasSponsoring).toBeDefined();
    expect(await facilitator().verify(payload, offer)).toMatchObject({ isValid: true });
    const settled = await facilitator().settle(payload, { ...offer, amount: '1500000' });
    expect(settled).toMatchObject({ success: true, amount: '1500000' });
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(500_000n);
    expect(await usdcBalance(anvil.rpcUrl, token, treasury)).toBe(treasuryBefore + 1_500_000n);
    expect(await publicClient().getBalance({ address: payer.address })).toBe(0n);
  });
});
