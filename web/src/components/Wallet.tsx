/**
 * Connecting a wallet, switching to the payment chain, signing in and out.
 */
import { useEffect, useId, useState } from 'react';
import { type Connector, useAccount, useConnect, useConnectors, useDisconnect, useSwitchChain } from 'wagmi';
import { describeWalletError } from '../lib/errors';
import { shortHex } from '../lib/format';
import { usePaymentConfig } from '../payment-config';
import { useSession } from '../session/session';
import { chainFor } from '../wallet/config';

const DEV_WALLET_ID = 'devWallet';

export function ConnectWallet() {
  const connectors = useConnectors();
  const { connectAsync, isPending } = useConnect();
  const [error, setError] = useState<string | null>(null);
  const [pendingId, setPendingId] = useState<string | null>(null);
  const { chainId } = usePaymentConfig();
  // wagmi lists the generic injected connector and each EIP-6963 wallet it discovered; show the
  // generic one only when no named wallet announced itself.
  const named = connectors.filter((c) => c.type === 'injected' && c.id !== 'injected');
  const hasInjected = typeof window !== 'undefined' && 'ethereum' in window;
  const wallets = connectors.filter(
    (c) => c.id !== DEV_WALLET_ID && (c.id !== 'injected' || (named.length === 0 && hasInjected)),
  );
  const dev = connectors.find((c) => c.id === DEV_WALLET_ID);

  const connect = async (connector: Connector) => {
    setError(null);
    setPendingId(connector.uid);
    try {
      await connectAsync({ connector, chainId });
    } catch (failure) {
      setError(describeWalletError(failure));
    } finally {
      setPendingId(null);
    }
  };

  return (
    <section className="hero card" aria-labelledby="connect-title">
      <h1 id="connect-title">Pay for AI with USDC</h1>
      <p className="lead">
        Buy credits with USDC on {chainFor(chainId).name}, watch them arrive once the chain confirms, and
        spend them on model calls from the playground or your own code.
      </p>
      <h2 className="section-title">Connect a wallet</h2>
      {wallets.length === 0 && !dev && (
        <p className="muted">
          No browser wallet found. Install a wallet extension such as MetaMask or Coinbase Wallet, then
          reload.
        </p>
      )}
      <div className="wallet-list">
        {wallets.map((connector) => (
          <button
            key={connector.uid}
            type="button"
            className="wallet-button"
            disabled={isPending}
            onClick={() => connect(connector)}
          >
            {connector.icon && <img src={connector.icon} alt="" width={24} height={24} />}
            {pendingId === connector.uid
              ? 'Connecting…'
              : connector.name === 'Injected'
                ? 'Browser wallet'
                : connector.name}
          </button>
        ))}
      </div>
      {wallets.length === 0 && !hasInjected && dev && (
        <p className="muted small">
          No browser wallet found: on this local chain, the dev wallet needs none.
        </p>
      )}
      {dev && <DevWalletPicker connector={dev} busy={isPending} onConnect={() => connect(dev)} />}
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

function DevWalletPicker({
  connector,
  busy,
  onConnect,
}: {
  connector: Connector;
  busy: boolean;
  onConnect(): void;
}) {
  const id = useId();
  const [payers, setPayers] = useState<readonly { index: number; address: string }[]>([]);
  const [selected, setSelected] = useState(1);
  useEffect(() => {
    import('../wallet/dev-wallet').then((module) => {
      setPayers(module.devPayers);
      setSelected(module.selectedDevPayer());
    });
  }, []);
  const choose = async (index: number) => {
    setSelected(index);
    const module = await import('../wallet/dev-wallet');
    module.selectDevPayer(index);
  };
  return (
    <div className="dev-wallet">
      <h3>Local devnet</h3>
      <p className="muted small">
        A built-in wallet holding one of anvil's public test accounts, funded with test USDC. Devnet only.
      </p>
      <div className="row">
        <label htmlFor={id}>Account</label>
        <select id={id} value={selected} onChange={(event) => choose(Number(event.target.value))}>
          {payers.map((payer) => (
            <option key={payer.index} value={payer.index}>
              #{payer.index} {shortHex(payer.address)}
            </option>
          ))}
        </select>
        <button type="button" className="primary" disabled={busy} onClick={onConnect}>
          Use {connector.name}
        </button>
      </div>
    </div>
  );
}

export function SwitchChainPanel() {
  const { chainId } = usePaymentConfig();
  const { switchChainAsync, isPending } = useSwitchChain();
  const { chain: walletChain, chainId: walletChainId } = useAccount();
  const [error, setError] = useState<string | null>(null);
  const target = chainFor(chainId);
  return (
    <section className="card narrow" aria-labelledby="switch-title">
      <h1 id="switch-title">Wrong network</h1>
      <p>
        Your wallet is on {walletChain?.name ?? `chain ${walletChainId}`}. ChainMeter takes payments on{' '}
        <strong>{target.name}</strong> (chain {chainId}).
      </p>
      <button
        type="button"
        className="primary"
        disabled={isPending}
        onClick={async () => {
          setError(null);
          try {
            await switchChainAsync({ chainId });
          } catch (failure) {
            setError(describeWalletError(failure));
          }
        }}
      >
        {isPending ? 'Switching…' : `Switch to ${target.name}`}
      </button>
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

export function SignInPanel() {
  const session = useSession();
  const { address } = useAccount();
  const otherAccount =
    session.me && address && session.me.walletAddress.toLowerCase() !== address.toLowerCase();
  return (
    <section className="card narrow" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in with Ethereum</h1>
      <p>
        Sign a message with <code>{address ? shortHex(address) : 'your wallet'}</code> to prove it is yours.
        It costs nothing and sends no transaction.
      </p>
      {otherAccount && address && (
        // The session cookie is the browser's, shared by its tabs: it holds another account when this tab's
        // wallet moved to another account, or when another tab signed in with one. Either way, signing in
        // here replaces that account's session in every tab.
        <p className="alert alert-info" data-testid="other-account">
          This browser is signed in as {shortHex(session.me?.walletAddress ?? '')}, not as {shortHex(address)}
          , the account your wallet uses here. Signing in here ends the session of{' '}
          {shortHex(session.me?.walletAddress ?? '')} in every tab.
        </p>
      )}
      <button type="button" className="primary" disabled={session.signingIn} onClick={() => session.signIn()}>
        {session.signingIn ? 'Waiting for your signature…' : 'Sign in'}
      </button>
      {session.signInError && (
        <p className="alert alert-error" role="alert">
          {session.signInError}
        </p>
      )}
    </section>
  );
}

export function AccountMenu({ signedIn }: { signedIn: boolean }) {
  const { address, isConnected, connector } = useAccount();
  const { disconnect } = useDisconnect();
  const session = useSession();
  if (!isConnected || !address) return null;
  return (
    <div className="account-menu">
      <span className="address" title={address}>
        <span className={signedIn ? 'dot dot-ok' : 'dot'} aria-hidden="true" />
        {shortHex(address)}
        <span className="visually-hidden">{signedIn ? ' (signed in)' : ' (not signed in)'}</span>
        <span className="connector-name">{connector?.name}</span>
      </span>
      {signedIn ? (
        <button type="button" className="ghost" onClick={() => session.signOut()}>
          Sign out
        </button>
      ) : (
        <button type="button" className="ghost" onClick={() => disconnect()}>
          Disconnect
        </button>
      )}
    </div>
  );
}
