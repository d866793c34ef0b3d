/**
 * TestUSDC's EIP-3009 and EIP-2612 on a real anvil, driven with viem as a relayer would: the payer
 * holds USDC and no ETH and only signs; the relayer submits and pays the gas.
 */
import {
  type Address,
  createPublicClient,
  createWalletClient,
  encodeAbiParameters,
  getAddress,
  type Hex,
  http,
  keccak256,
  parseAbi,
  parseEventLogs,
  toHex,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devAccounts } from './accounts.ts';
import { type Anvil, startAnvil } from './anvil.ts';
import {
  authorizationState,
  eip3009Abi,
  signCancelAuthorization,
  signPermit,
  signReceiveAuthorization,
  signTransferAuthorization,
  splitSignature,
  submitTransferWithAuthorization,
  type TransferAuthorization,
  transferAuthorization,
} from './eip3009.ts';
import { deploySmartWallet } from './smart-wallet.ts';
import { createGaslessPayer, deployTestUsdc, mintUsdc, usdcBalance } from './token.ts';

const CHAIN_ID = 31337;
let anvil: Anvil;
let token: Address;
const treasury = devAccounts.treasury.address;
const relayer = devAccounts.relayer;

const publicClient = () => createPublicClient({ transport: http(anvil.rpcUrl), pollingInterval: 50 });
const relayerWallet = () =>
  createWalletClient({ account: relayer, transport: http(anvil.rpcUrl), pollingInterval: 50 });
const domain = () => ({ token, chainId: CHAIN_ID });

async function chainNow(): Promise<bigint> {
  return (await publicClient().getBlock()).timestamp;
}

beforeAll(async () => {
  anvil = await startAnvil({ chainId: CHAIN_ID });
  token = await deployTestUsdc(anvil.rpcUrl);
});

afterAll(async () => {
  await anvil?.stop();
});

describe('TestUSDC as USDC v2.2', () => {
  it('has USDC’s EIP-712 domain, computed for the chain and address it runs at', async () => {
    const client = publicClient();
    expect(await client.readContract({ address: token, abi: eip3009Abi, functionName: 'name' })).toBe(
      'USD Coin',
    );
    expect(await client.readContract({ address: token, abi: eip3009Abi, functionName: 'version' })).toBe('2');
    // Worked out by hand from EIP-712, not through viem's domain helpers.
    const expected = (at: Address) =>
      keccak256(
        encodeAbiParameters(
          [
            { type: 'bytes32' },
            { type: 'bytes32' },
            { type: 'bytes32' },
            { type: 'uint256' },
            { type: 'address' },
          ],
          [
            keccak256(
              toHex('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'),
            ),
            keccak256(toHex('USD Coin')),
            keccak256(toHex('2')),
            BigInt(CHAIN_ID),
            at,
          ],
        ),
      );
    expect(
      await client.readContract({ address: token, abi: eip3009Abi, functionName: 'DOMAIN_SEPARATOR' }),
    ).toBe(expected(token));
    // The same runtime code placed elsewhere (no constructor runs) answers for its new address.
    const elsewhere = getAddress('0x00000000000000000000000000000000c0ffee00');
    const code = await client.getCode({ address: token });
    await client.request({ method: 'anvil_setCode' as never, params: [elsewhere, code] as never });
    expect(
      await client.readContract({ address: elsewhere, abi: eip3009Abi, functionName: 'DOMAIN_SEPARATOR' }),
    ).toBe(expected(elsewhere));
  });

  it('a relayer submits a gasless payer’s authorization; it is used once', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 5_000_000n);
    expect(await publicClient().getBalance({ address: payer.address })).toBe(0n);
    const treasuryBefore = await usdcBalance(anvil.rpcUrl, token, treasury);
    const relayerEthBefore = await publicClient().getBalance({ address: relayer.address });

    const authorization = transferAuthorization({ from: payer.address, to: treasury, value: 1_250_000n });
    const signature = await signTransferAuthorization(payer, domain(), authorization);
    expect(await authorizationState(anvil.rpcUrl, token, payer.address, authorization.nonce)).toBe(false);
    const hash = await submitTransferWithAuthorization(
      anvil.rpcUrl,
      relayer,
      token,
      authorization,
      signature,
    );

    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(3_750_000n);
    expect(await usdcBalance(anvil.rpcUrl, token, treasury)).toBe(treasuryBefore + 1_250_000n);
    expect(await authorizationState(anvil.rpcUrl, token, payer.address, authorization.nonce)).toBe(true);
    // The relayer paid the gas; the payer still has no ETH.
    expect(await publicClient().getBalance({ address: relayer.address })).toBeLessThan(relayerEthBefore);
    expect(await publicClient().getBalance({ address: payer.address })).toBe(0n);
    const receipt = await publicClient().getTransactionReceipt({ hash });
    const used = parseEventLogs({ abi: eip3009Abi, logs: receipt.logs, eventName: 'AuthorizationUsed' });
    expect(used.map((e) => e.args)).toEqual([{ authorizer: payer.address, nonce: authorization.nonce }]);

    // Replayed through either overload: refused, nothing moves.
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature),
    ).rejects.toThrow(/authorization is used or canceled/);
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature, {
        overload: 'vrs',
      }),
    ).rejects.toThrow(/authorization is used or canceled/);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(3_750_000n);
  });

  it('the v, r, s overload takes the same signature', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 2_000_000n);
    const authorization = transferAuthorization({ from: payer.address, to: treasury, value: 2_000_000n });
    const signature = await signTransferAuthorization(payer, domain(), authorization);
    await submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature, {
      overload: 'vrs',
    });
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(0n);
  });

  it('refuses an authorization outside its time window, at the strict bounds too', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 1_000_000n);
    const now = await chainNow();
    const submit = async (window: Pick<TransferAuthorization, 'validAfter' | 'validBefore'>) => {
      const authorization = transferAuthorization({
        from: payer.address,
        to: treasury,
        value: 100n,
        ...window,
      });
      const signature = await signTransferAuthorization(payer, domain(), authorization);
      return submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature);
    };
    await expect(submit({ validAfter: now + 3_600n, validBefore: now + 7_200n })).rejects.toThrow(
      /authorization is not yet valid/,
    );
    await expect(submit({ validAfter: 0n, validBefore: now - 1n })).rejects.toThrow(
      /authorization is expired/,
    );

    // The bounds are strict: valid only when validAfter < block.timestamp < validBefore.
    const client = publicClient();
    const at = now + 1_000n;
    const mineAt = async (window: Pick<TransferAuthorization, 'validAfter' | 'validBefore'>) => {
      const authorization = transferAuthorization({
        from: payer.address,
        to: treasury,
        value: 100n,
        ...window,
      });
      const signature = await signTransferAuthorization(payer, domain(), authorization);
      const { from, to, value, validAfter, validBefore, nonce } = authorization;
      const snapshotId = await client.request({ method: 'evm_snapshot' as never });
      await client.request({ method: 'evm_setNextBlockTimestamp' as never, params: [Number(at)] as never });
      // A fixed gas limit: no estimate (which would run at another timestamp) decides for us.
      const hash = await relayerWallet().writeContract({
        address: token,
        abi: eip3009Abi,
        functionName: 'transferWithAuthorization',
        args: [from, to, value, validAfter, validBefore, nonce, signature],
        gas: 200_000n,
        chain: null,
      });
      const receipt = await client.waitForTransactionReceipt({ hash });
      expect((await client.getBlock({ blockNumber: receipt.blockNumber })).timestamp).toBe(at);
      await client.request({ method: 'evm_revert' as never, params: [snapshotId] as never });
      return receipt.status;
    };
    expect(await mineAt({ validAfter: at, validBefore: at + 10n })).toBe('reverted');
    expect(await mineAt({ validAfter: 0n, validBefore: at })).toBe('reverted');
    expect(await mineAt({ validAfter: at - 1n, validBefore: at + 1n })).toBe('success');
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(1_000_000n);
  });

  it('refuses a stranger’s signature, a changed amount or recipient, and another chain’s domain', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 1_000_000n);
    const stranger = privateKeyToAccount(generatePrivateKey());
    const authorization = transferAuthorization({ from: payer.address, to: treasury, value: 500_000n });

    const byStranger = await signTransferAuthorization(stranger, domain(), authorization);
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, byStranger),
    ).rejects.toThrow(/invalid signature/);

    const signature = await signTransferAuthorization(payer, domain(), authorization);
    await expect(
      submitTransferWithAuthorization(
        anvil.rpcUrl,
        relayer,
        token,
        { ...authorization, value: 1_000_000n },
        signature,
      ),
    ).rejects.toThrow(/invalid signature/);
    await expect(
      submitTransferWithAuthorization(
        anvil.rpcUrl,
        relayer,
        token,
        { ...authorization, to: relayer.address },
        signature,
      ),
    ).rejects.toThrow(/invalid signature/);
    const otherChain = await signTransferAuthorization(payer, { token, chainId: 8453 }, authorization);
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, otherChain),
    ).rejects.toThrow(/invalid signature/);
    // A high-s twin of the valid signature (EIP-2 malleability) is refused too.
    const { r, s, v } = splitSignature(signature);
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const twin =
      `${r}${toHex(n - BigInt(s), { size: 32 }).slice(2)}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, twin),
    ).rejects.toThrow(/invalid signature/);

    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(1_000_000n);
    await submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(500_000n);
  });

  it('refuses an authorization for more than the balance', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 1_000n);
    const authorization = transferAuthorization({ from: payer.address, to: treasury, value: 1_001n });
    const signature = await signTransferAuthorization(payer, domain(), authorization);
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature),
    ).rejects.toThrow(/exceeds balance/);
    expect(await authorizationState(anvil.rpcUrl, token, payer.address, authorization.nonce)).toBe(false);
  });

  it('a canceled authorization can no longer be used, and a used one cannot be canceled', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 1_000_000n);
    const authorization = transferAuthorization({ from: payer.address, to: treasury, value: 400_000n });
    const signature = await signTransferAuthorization(payer, domain(), authorization);
    const cancel = async (nonce: Hex, signer = payer) => {
      const cancellation = await signCancelAuthorization(signer, domain(), {
        authorizer: payer.address,
        nonce,
      });
      const hash = await relayerWallet().writeContract({
        address: token,
        abi: eip3009Abi,
        functionName: 'cancelAuthorization',
        args: [payer.address, nonce, cancellation],
        chain: null,
      });
      return publicClient().waitForTransactionReceipt({ hash });
    };

    await expect(
      cancel(authorization.nonce, await createGaslessPayer(anvil.rpcUrl, token, 0n)),
    ).rejects.toThrow(/invalid signature/);
    const receipt = await cancel(authorization.nonce);
    const canceled = parseEventLogs({
      abi: eip3009Abi,
      logs: receipt.logs,
      eventName: 'AuthorizationCanceled',
    });
    expect(canceled.map((e) => e.args)).toEqual([{ authorizer: payer.address, nonce: authorization.nonce }]);
    expect(await authorizationState(anvil.rpcUrl, token, payer.address, authorization.nonce)).toBe(true);
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature),
    ).rejects.toThrow(/authorization is used or canceled/);

    const used = transferAuthorization({ from: payer.address, to: treasury, value: 100_000n });
    await submitTransferWithAuthorization(
      anvil.rpcUrl,
      relayer,
      token,
      used,
      await signTransferAuthorization(payer, domain(), used),
    );
    await expect(cancel(used.nonce)).rejects.toThrow(/authorization is used or canceled/);
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(900_000n);
  });

  it('receiveWithAuthorization: only the payee may submit it', async () => {
    const payer = await createGaslessPayer(anvil.rpcUrl, token, 1_000_000n);
    const authorization = transferAuthorization({ from: payer.address, to: treasury, value: 300_000n });
    const signature = await signReceiveAuthorization(payer, domain(), authorization);
    const { from, to, value, validAfter, validBefore, nonce } = authorization;
    const asRelayer = relayerWallet().writeContract({
      address: token,
      abi: eip3009Abi,
      functionName: 'receiveWithAuthorization',
      args: [from, to, value, validAfter, validBefore, nonce, signature],
      chain: null,
    });
    await expect(asRelayer).rejects.toThrow(/caller must be the payee/);
    // A receive authorization is not a transfer authorization (another type hash).
    await expect(
      submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature),
    ).rejects.toThrow(/invalid signature/);

    const { v, r, s } = splitSignature(signature);
    const hash = await createWalletClient({
      account: devAccounts.treasury,
      transport: http(anvil.rpcUrl),
    }).writeContract({
      address: token,
      abi: eip3009Abi,
      functionName: 'receiveWithAuthorization',
      args: [from, to, value, validAfter, validBefore, nonce, v, r, s],
      chain: null,
    });
    expect((await publicClient().waitForTransactionReceipt({ hash })).status).toBe('success');
    expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(700_000n);
  });

  it('a contract wallet (EIP-1271) pays through the bytes overload; its owner signs', async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const wallet = await deploySmartWallet(anvil.rpcUrl, owner.address);
    await mintUsdc(anvil.rpcUrl, token, wallet, 2_000_000n);
    const authorization = transferAuthorization({ from: wallet, to: treasury, value: 1_500_000n });

    const stranger = privateKeyToAccount(generatePrivateKey());
    await expect(
      submitTransferWithAuthorization(
        anvil.rpcUrl,
        relayer,
        token,
        authorization,
        await signTransferAuthorization(stranger, domain(), authorization),
      ),
    ).rejects.toThrow(/invalid signature/);

    const signature = await signTransferAuthorization(owner, domain(), authorization);
    await submitTransferWithAuthorization(anvil.rpcUrl, relayer, token, authorization, signature);
    expect(await usdcBalance(anvil.rpcUrl, token, wallet)).toBe(500_000n);
    expect(await authorizationState(anvil.rpcUrl, token, wallet, authorization.nonce)).toBe(true);
  });

  it('permit (EIP-2612): a gasless owner approves by signature, once per nonce', async () => {
    const owner = await createGaslessPayer(anvil.rpcUrl, token, 1_000_000n);
    const spender = devAccounts.payers[0]?.address as Address;
    const deadline = (await chainNow()) + 600n;
    const nonce = await publicClient().readContract({
      address: token,
      abi: eip3009Abi,
      functionName: 'nonces',
      args: [owner.address],
    });
    expect(nonce).toBe(0n);
    const signature = await signPermit(owner, domain(), {
      owner: owner.address,
      spender,
      value: 700_000n,
      nonce,
      deadline,
    });
    const { v, r, s } = splitSignature(signature);
    const submit = async () => {
      const hash = await relayerWallet().writeContract({
        address: token,
        abi: eip3009Abi,
        functionName: 'permit',
        args: [owner.address, spender, 700_000n, deadline, v, r, s],
        chain: null,
      });
      return publicClient().waitForTransactionReceipt({ hash });
    };
    expect((await submit()).status).toBe('success');
    const allowance = await publicClient().readContract({
      address: token,
      abi: parseAbi(['function allowance(address owner, address spender) view returns (uint256)']),
      functionName: 'allowance',
      args: [owner.address, spender],
    });
    expect(allowance).toBe(700_000n);
    // The nonce moved on: the same permit is now signed over a stale nonce.
    await expect(submit()).rejects.toThrow(/invalid signature/);
  });
});
