/**
 * The devnet's smart wallets on a real anvil: the factory's CREATE2 address, EIP-1271 once deployed, and
 * EIP-6492 signatures from a wallet that does not exist yet, checked with viem's verifier.
 */
import { createPublicClient, getAddress, type Hex, http, isErc6492Signature, pad } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from './anvil.ts';
import {
  counterfactualWallet,
  deploySmartWallet,
  deploySmartWalletFactory,
  smartWalletAbi,
  smartWalletFactoryAbi,
} from './smart-wallet.ts';

let anvil: Anvil;
let factory: Hex;
const publicClient = () => createPublicClient({ transport: http(anvil.rpcUrl), pollingInterval: 50 });

beforeAll(async () => {
  anvil = await startAnvil();
  factory = await deploySmartWalletFactory(anvil.rpcUrl);
});

afterAll(async () => {
  await anvil?.stop();
});

describe('SmartWallet', () => {
  it('answers EIP-1271 for its owner only', async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const wallet = await deploySmartWallet(anvil.rpcUrl, owner.address);
    expect(
      await publicClient().readContract({ address: wallet, abi: smartWalletAbi, functionName: 'owner' }),
    ).toBe(owner.address);
    const message = 'hello';
    expect(
      await publicClient().verifyMessage({
        address: wallet,
        message,
        signature: await owner.signMessage({ message }),
      }),
    ).toBe(true);
    const stranger = privateKeyToAccount(generatePrivateKey());
    expect(
      await publicClient().verifyMessage({
        address: wallet,
        message,
        signature: await stranger.signMessage({ message }),
      }),
    ).toBe(false);
  });

  it('signs before it exists (EIP-6492), at the address the factory then deploys it to', async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const wallet = counterfactualWallet(anvil.rpcUrl, { factory, owner });
    expect(
      await publicClient().readContract({
        address: factory,
        abi: smartWalletFactoryAbi,
        functionName: 'walletAddress',
        args: [owner.address, pad('0x00', { size: 32 })],
      }),
    ).toBe(wallet.address);
    expect(await publicClient().getCode({ address: wallet.address })).toBeUndefined();

    const message = 'Sign in to ChainMeter.';
    const signature = await wallet.signMessage({ message });
    expect(isErc6492Signature(signature)).toBe(true);
    expect(await publicClient().verifyMessage({ address: wallet.address, message, signature })).toBe(true);
    // Verifying simulates the deployment; it does not deploy.
    expect(await publicClient().getCode({ address: wallet.address })).toBeUndefined();

    const stranger = privateKeyToAccount(generatePrivateKey());
    const forged = wallet.wrap(await stranger.signMessage({ message }));
    expect(await publicClient().verifyMessage({ address: wallet.address, message, signature: forged })).toBe(
      false,
    );
    // Another owner's wallet is elsewhere: the owner's signature does not speak for it.
    const other = counterfactualWallet(anvil.rpcUrl, { factory, owner: stranger });
    expect(other.address).not.toBe(wallet.address);
    expect(await publicClient().verifyMessage({ address: other.address, message, signature })).toBe(false);

    expect(await wallet.deploy()).toBe(wallet.address);
    expect(await wallet.deploy()).toBe(wallet.address); // a second time is harmless
    expect(await publicClient().getCode({ address: wallet.address })).toMatch(/^0x[0-9a-f]+$/);
    expect(
      await publicClient().readContract({
        address: wallet.address,
        abi: smartWalletAbi,
        functionName: 'owner',
      }),
    ).toBe(getAddress(owner.address));
    // Deployed: the wrapped signature and the plain one both verify.
    expect(await publicClient().verifyMessage({ address: wallet.address, message, signature })).toBe(true);
    expect(
      await publicClient().verifyMessage({
        address: wallet.address,
        message,
        signature: await owner.signMessage({ message }),
      }),
    ).toBe(true);
  });
});
