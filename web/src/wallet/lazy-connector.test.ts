import { foundry } from 'viem/chains';
import { describe, expect, it } from 'vitest';
import { createConfig, http } from 'wagmi';
import { connect, disconnect, reconnect } from 'wagmi/actions';
import { mock } from 'wagmi/connectors';
import { walletConnectors } from './config.ts';
import { lazyConnector } from './lazy-connector.ts';

const ACCOUNT = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';

/** A wagmi config whose only wallet is a lazy stand-in for wagmi's own mock connector; counts the loads. */
function lazyConfig() {
  const loads = { count: 0 };
  const config = createConfig({
    chains: [foundry],
    transports: { [foundry.id]: http('http://127.0.0.1:1') },
    multiInjectedProviderDiscovery: false,
    storage: null,
    connectors: [
      lazyConnector({
        id: 'someWallet',
        name: 'Some Wallet',
        type: 'someWallet',
        load: async () => {
          loads.count++;
          return mock({ accounts: [ACCOUNT] });
        },
      }),
    ],
  });
  return { config, loads };
}

describe('lazyConnector', () => {
  it('loads nothing when the page starts and reconnects', async () => {
    const { config, loads } = lazyConfig();
    const connector = config.connectors[0];
    expect(connector?.name).toBe('Some Wallet');
    await reconnect(config);
    expect(await connector?.getProvider({ chainId: foundry.id })).toBeUndefined();
    expect(await connector?.isAuthorized()).toBe(false);
    expect(loads.count).toBe(0);
    expect(config.state.status).toBe('disconnected');
  });

  it('loads the real connector once chosen and connects through it', async () => {
    const { config, loads } = lazyConfig();
    const connector = config.connectors[0];
    if (!connector) throw new Error('no connector');
    const result = await connect(config, { connector });
    expect(result.accounts).toEqual([ACCOUNT]);
    expect(result.chainId).toBe(foundry.id);
    expect(loads.count).toBe(1);
    // The real connector's events reach wagmi's state through the stand-in's emitter.
    expect(config.state.status).toBe('connected');
    expect(config.state.connections.get(connector.uid)?.accounts).toEqual([ACCOUNT]);
    expect(await connector.getAccounts()).toEqual([ACCOUNT]);
    await disconnect(config, { connector });
    expect(config.state.status).toBe('disconnected');
    await connect(config, { connector });
    expect(loads.count).toBe(1);
  });
});

describe('the wallets offered', () => {
  const ids = (connectors: ReturnType<typeof walletConnectors>) =>
    connectors.map((create) => create({ chains: [foundry], emitter: undefined as never } as never).id);

  it('are injected/EIP-6963 wallets and Coinbase Wallet; WalletConnect only with a project id in the build', () => {
    expect(ids(walletConnectors({ walletConnectProjectId: '' }))).toEqual(['injected', 'coinbaseWalletSDK']);
    const loadWalletConnect = async () => (await import('wagmi/connectors')).walletConnect;
    expect(ids(walletConnectors({ walletConnectProjectId: 'abc123', loadWalletConnect }))).toEqual([
      'injected',
      'coinbaseWalletSDK',
      'walletConnect',
    ]);
    // A project id without WalletConnect's code in the build (it was built without one) offers none.
    expect(ids(walletConnectors({ walletConnectProjectId: 'abc123', loadWalletConnect: null }))).toEqual([
      'injected',
      'coinbaseWalletSDK',
    ]);
  });
});
