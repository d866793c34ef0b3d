/**
 * A wallet connector whose SDK loads only when someone picks it. wagmi's Coinbase Wallet and WalletConnect
 * connectors import their SDKs on first `getProvider()`, and wagmi's reconnect asks every connector for its
 * provider on each page load: used as they are, every visitor would download both SDKs (hundreds of kB).
 * This stand-in shows the wallet in the list at no cost; on `connect` it imports the real connector, builds
 * it on the same wagmi config (so its events reach the same emitter) and hands every call to it. A wallet
 * connected before is reconnected on the next visit (its SDK then loads, as the person chose it).
 */
import { type CreateConnectorFn, createConnector } from 'wagmi';

type Connector = ReturnType<CreateConnectorFn>;

export interface LazyConnectorParameters {
  id: string;
  name: string;
  type: string;
  /** Reverse DNS of the wallet, so wagmi does not list its EIP-6963 announcement twice. */
  rdns?: string;
  /** Imports the real connector (a dynamic `import()`, so the bundler splits it out). */
  load(): Promise<CreateConnectorFn>;
}

const chosenKey = (id: string) => `chainmeter.connector.${id}`;

export function lazyConnector(parameters: LazyConnectorParameters) {
  return createConnector((config) => {
    let loading: Promise<Connector> | undefined;
    let inner: Connector | undefined;
    const real = () => {
      loading ??= parameters.load().then(async (create) => {
        const connector = create(config);
        await connector.setup?.();
        inner = connector;
        return connector;
      });
      return loading;
    };
    const chosenBefore = () => globalThis.localStorage?.getItem(chosenKey(parameters.id)) === '1';
    // Before it is chosen, the stand-in has no provider and is never authorized: nothing is loaded.
    const dormant = () => !inner && !chosenBefore();

    return {
      id: parameters.id,
      name: parameters.name,
      type: parameters.type,
      ...(parameters.rdns ? { rdns: parameters.rdns } : {}),
      async connect(connectParameters) {
        const connector = await real();
        const result = await connector.connect(connectParameters as never);
        globalThis.localStorage?.setItem(chosenKey(parameters.id), '1');
        return result as never;
      },
      async disconnect() {
        globalThis.localStorage?.removeItem(chosenKey(parameters.id));
        await inner?.disconnect();
      },
      async getAccounts() {
        return (await real()).getAccounts();
      },
      async getChainId() {
        return (await real()).getChainId();
      },
      async getProvider(providerParameters) {
        if (dormant()) return undefined;
        return (await real()).getProvider(providerParameters);
      },
      async isAuthorized() {
        if (dormant()) return false;
        return (await real()).isAuthorized();
      },
      async switchChain(switchParameters) {
        const connector = await real();
        if (!connector.switchChain) throw new Error(`${parameters.name} cannot switch chains`);
        return connector.switchChain(switchParameters);
      },
      onAccountsChanged(accounts) {
        inner?.onAccountsChanged(accounts);
      },
      onChainChanged(chainId) {
        inner?.onChainChanged(chainId);
      },
      onConnect(connectInfo) {
        inner?.onConnect?.(connectInfo);
      },
      onDisconnect(error) {
        inner?.onDisconnect(error);
      },
      onMessage(message) {
        inner?.onMessage?.(message);
      },
    };
  });
}
