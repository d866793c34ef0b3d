/**
 * The dev wallet: a wagmi connector backed by an anvil account's private key (a viem local account),
 * so that on the local chain (31337) a newcomer, and the end-to-end test, need no browser extension.
 * Messages and transactions are signed in the page and sent raw to the chain's RPC.
 *
 * The keys below are anvil's default accounts, derived from its public test mnemonic
 * ("test test ... junk"): they hold nothing outside a local devnet. This module is loaded only when
 * the API says the chain is 31337, so it stays out of the main bundle.
 */

import {
  type Address,
  type Chain,
  createWalletClient,
  type EIP1193RequestFn,
  getAddress,
  type Hex,
  http,
  numberToHex,
  SwitchChainError,
} from 'viem';
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { createConnector } from 'wagmi';

const DEV_WALLET_CONNECTOR_ID = 'devWallet';

/** anvil accounts 1-8: the devnet's payers (0 deploys the token, 9 is the treasury). */
const ANVIL_PAYER_KEYS: readonly Hex[] = [
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
  '0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a',
  '0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba',
  '0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e',
  '0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356',
  '0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97',
];

export interface DevPayer {
  /** anvil's account index (1-8). */
  index: number;
  address: Address;
}

const payerAccounts: PrivateKeyAccount[] = ANVIL_PAYER_KEYS.map((key) => privateKeyToAccount(key));

export const devPayers: readonly DevPayer[] = payerAccounts.map((account, i) => ({
  index: i + 1,
  address: account.address,
}));

const SELECTED_KEY = 'chainmeter.devWallet.payer';
const CONNECTED_KEY = 'chainmeter.devWallet.connected';

function readSelected(): number {
  const stored = Number(globalThis.localStorage?.getItem(SELECTED_KEY));
  return devPayers.some((payer) => payer.index === stored) ? stored : 1;
}

let selectedIndex = readSelected();
const selectionListeners = new Set<(address: Address) => void>();

function selectedAccount(): PrivateKeyAccount {
  const account = payerAccounts[selectedIndex - 1];
  if (!account) throw new Error(`no dev payer ${selectedIndex}`);
  return account;
}

export function selectedDevPayer(): number {
  return selectedIndex;
}

/** Chooses the anvil payer the dev wallet signs with; a connected dev wallet switches accounts. */
export function selectDevPayer(index: number): void {
  if (!devPayers.some((payer) => payer.index === index)) throw new Error(`no dev payer ${index}`);
  selectedIndex = index;
  globalThis.localStorage?.setItem(SELECTED_KEY, String(index));
  for (const listener of selectionListeners) listener(selectedAccount().address);
}

export interface DevWalletParameters {
  chain: Chain;
  rpcUrl: string;
}

type DevProvider = { request: EIP1193RequestFn };

export function devWallet({ chain, rpcUrl }: DevWalletParameters) {
  const client = () => createWalletClient({ account: selectedAccount(), chain, transport: http(rpcUrl) });
  let onSelection: ((address: Address) => void) | undefined;

  return createConnector<DevProvider>((config) => {
    const provider: DevProvider = {
      // A minimal EIP-1193 face for code that asks for a provider; wagmi's actions use getClient().
      request: (async ({ method, params }: { method: string; params?: unknown }) => {
        const wallet = client();
        switch (method) {
          case 'eth_accounts':
          case 'eth_requestAccounts':
            return [wallet.account.address];
          case 'eth_chainId':
            return numberToHex(chain.id);
          case 'personal_sign': {
            const [message] = params as [Hex];
            return wallet.account.signMessage({ message: { raw: message } });
          }
          default:
            return wallet.request({ method, params } as never);
        }
      }) as EIP1193RequestFn,
    };

    return {
      id: DEV_WALLET_CONNECTOR_ID,
      name: 'Dev wallet (anvil)',
      type: 'devWallet',
      async connect<withCapabilities extends boolean = false>({
        chainId,
        withCapabilities,
      }: {
        chainId?: number;
        isReconnecting?: boolean;
        withCapabilities?: withCapabilities | boolean;
      } = {}) {
        if (chainId !== undefined && chainId !== chain.id)
          throw new SwitchChainError(new Error('devnet only'));
        globalThis.localStorage?.setItem(CONNECTED_KEY, '1');
        if (!onSelection) {
          onSelection = (address) => config.emitter.emit('change', { accounts: [address] });
          selectionListeners.add(onSelection);
        }
        const address = selectedAccount().address;
        return {
          accounts: (withCapabilities ? [{ address, capabilities: {} }] : [address]) as never,
          chainId: chain.id,
        };
      },
      async disconnect() {
        globalThis.localStorage?.removeItem(CONNECTED_KEY);
        if (onSelection) selectionListeners.delete(onSelection);
        onSelection = undefined;
      },
      async getAccounts() {
        return [selectedAccount().address];
      },
      async getChainId() {
        return chain.id;
      },
      async getProvider() {
        return provider;
      },
      async getClient() {
        return client() as never;
      },
      async isAuthorized() {
        return globalThis.localStorage?.getItem(CONNECTED_KEY) === '1';
      },
      async switchChain({ chainId }) {
        if (chainId !== chain.id)
          throw new SwitchChainError(new Error('the dev wallet only knows the devnet'));
        return chain;
      },
      onAccountsChanged(accounts) {
        config.emitter.emit('change', { accounts: accounts.map((account) => getAddress(account)) });
      },
      onChainChanged(chainId) {
        config.emitter.emit('change', { chainId: Number(chainId) });
      },
      onDisconnect() {
        config.emitter.emit('disconnect');
      },
    };
  });
}
