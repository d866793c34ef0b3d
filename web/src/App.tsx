/**
 * The client's frame: the payment config from the API first (it decides the chain and the wallets),
 * then wagmi, the session, the live subscriptions and the pages.
 */
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, type ReactNode, Suspense, useCallback, useEffect, useState } from 'react';
import { Provider as UrqlProvider, useQuery } from 'urql';
import { type Config, useAccount, WagmiProvider } from 'wagmi';
import { LowBalanceBanner } from './components/LowBalanceBanner';
import { Loading } from './components/States';
import { AccountMenu, ConnectWallet, SignInPanel, SwitchChainPanel } from './components/Wallet';
import { graphql } from './gql';
import { createGraphqlClient } from './graphql-client';
import { describeGraphqlError } from './lib/errors';
import { displayCredits } from './lib/format';
import { LiveProvider, useLive } from './live/live';
import { DashboardPage } from './pages/Dashboard';
import { PaymentConfigContext, readPaymentConfig, usePaymentConfig } from './payment-config';
import { Link, OPERATIONS_PATH, RouterProvider, routes, useRouter } from './router';
import { SessionProvider, useSession } from './session/session';
import { createWagmiConfig } from './wallet/config';

const PaymentConfigQuery = graphql(`
  query PaymentConfig {
    paymentConfig {
      ...PaymentConfigFields
    }
  }
`);

/** Whether the signed-in wallet is an operator: the API answers `operations` to operators only. */
const OperatorCheckQuery = graphql(`
  query OperatorCheck {
    operations {
      __typename
    }
  }
`);

const queryClient = new QueryClient();

export function App() {
  const [client, setClient] = useState(createGraphqlClient);
  // A new session (or none) gets a new client: no cached result or subscription outlives it.
  const resetClient = useCallback(() => setClient(createGraphqlClient()), []);
  return (
    <UrqlProvider value={client}>
      <RouterProvider>
        <ConfigGate onSessionChange={resetClient} />
      </RouterProvider>
    </UrqlProvider>
  );
}

function ConfigGate({ onSessionChange }: { onSessionChange(): void }) {
  const [{ data, error }, reexecute] = useQuery({ query: PaymentConfigQuery, requestPolicy: 'cache-first' });
  const paymentConfig = data ? readPaymentConfig(data.paymentConfig) : null;
  const chainId = paymentConfig?.chainId;
  const [wagmi, setWagmi] = useState<Config | null>(null);
  const [wagmiError, setWagmiError] = useState<string | null>(null);
  useEffect(() => {
    if (chainId === undefined) return;
    createWagmiConfig(chainId).then(setWagmi, (failure: unknown) => setWagmiError(String(failure)));
  }, [chainId]);

  if (error && !data) {
    return (
      <Frame>
        <div className="card error-state" role="alert">
          <h1>ChainMeter is unreachable</h1>
          <p>{describeGraphqlError(error)}</p>
          <button type="button" onClick={() => reexecute({ requestPolicy: 'network-only' })}>
            Retry
          </button>
        </div>
      </Frame>
    );
  }
  if (wagmiError) {
    return (
      <Frame>
        <div className="card error-state" role="alert">
          <h1>The wallet setup failed</h1>
          <p>{wagmiError}</p>
        </div>
      </Frame>
    );
  }
  if (!paymentConfig || !wagmi) {
    return (
      <Frame>
        <div className="splash" aria-busy="true">
          <span className="spinner" aria-hidden="true" /> Loading ChainMeter…
        </div>
      </Frame>
    );
  }
  return (
    <WagmiProvider config={wagmi}>
      <QueryClientProvider client={queryClient}>
        <PaymentConfigContext value={paymentConfig}>
          <SessionProvider chainId={paymentConfig.chainId} onSessionChange={onSessionChange}>
            <Shell />
          </SessionProvider>
        </PaymentConfigContext>
      </QueryClientProvider>
    </WagmiProvider>
  );
}

function Frame({ children, header }: { children: ReactNode; header?: ReactNode }) {
  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href="/">
          <span className="brand-mark" aria-hidden="true">
            M
          </span>
          ChainMeter
        </a>
        {header}
      </header>
      <main className="content" id="main">
        {children}
      </main>
      <footer className="footer">
        Credits are bought with USDC and credited only once the chain confirms.
      </footer>
    </div>
  );
}

function Shell() {
  const { address, isConnected, chainId: walletChainId } = useAccount();
  const session = useSession();
  const { chainId } = usePaymentConfig();
  const signedIn = Boolean(
    isConnected && session.me && address && session.me.walletAddress.toLowerCase() === address.toLowerCase(),
  );

  let body: ReactNode;
  // Signed in, each page names itself (`Page`).
  let title: string | null = null;
  if (session.loading) {
    title = 'ChainMeter';
    body = (
      <div className="splash" aria-busy="true">
        <span className="spinner" aria-hidden="true" /> Checking your session…
      </div>
    );
  } else if (!isConnected) {
    title = 'Connect a wallet';
    body = <ConnectWallet />;
  } else if (walletChainId !== chainId) {
    title = 'Wrong network';
    body = <SwitchChainPanel />;
  } else if (!signedIn) {
    title = 'Sign in';
    body = <SignInPanel />;
  } else {
    body = <Pages />;
  }
  useDocumentTitle(title);

  return (
    <Frame header={<AccountMenu signedIn={signedIn} />}>
      {signedIn ? (
        <LiveProvider>{withNav(body)}</LiveProvider>
      ) : (
        <>
          {session.ended && !session.loading && (
            <p className="alert alert-warn" role="alert" data-testid="session-ended">
              {session.ended}
            </p>
          )}
          {body}
        </>
      )}
    </Frame>
  );
}

function withNav(body: ReactNode) {
  return (
    <>
      <NavBar />
      <ReconnectingBanner />
      <LowBalanceBanner />
      {body}
    </>
  );
}

function NavBar() {
  const live = useLive();
  const session = useSession();
  const balance = live.balance ?? session.me?.balance ?? '0';
  const [{ data: operatorCheck }] = useQuery({ query: OperatorCheckQuery, requestPolicy: 'cache-first' });
  return (
    <nav className="nav" aria-label="Main">
      <ul>
        {routes.map((route) => (
          <li key={route.path}>
            <Link to={route.path}>{route.label}</Link>
          </li>
        ))}
        {operatorCheck?.operations && (
          <li>
            <Link to={OPERATIONS_PATH}>Operations</Link>
          </li>
        )}
      </ul>
      <span className="nav-balance" data-testid="nav-balance">
        {displayCredits(balance)} credits
      </span>
    </nav>
  );
}

/** While the live streams are down, every balance on the page may be behind: say so until they are back. */
function ReconnectingBanner() {
  const { reconnecting } = useLive();
  if (!reconnecting) return null;
  return (
    <p className="alert alert-warn" role="status" data-testid="reconnecting">
      <span className="spinner" aria-hidden="true" /> Connection to ChainMeter lost: reconnecting… The balance
      shown may be out of date until then.
    </p>
  );
}

// Every page but the dashboard loads on its first visit: the first load stays within its budget
// (web/scripts/size-budget.ts).
const BuyPage = lazy(() => import('./pages/Buy').then((page) => ({ default: page.BuyPage })));
const LedgerPage = lazy(() => import('./pages/Ledger').then((page) => ({ default: page.LedgerPage })));
const UsagePage = lazy(() => import('./pages/Usage').then((page) => ({ default: page.UsagePage })));
const ApiKeysPage = lazy(() => import('./pages/ApiKeys').then((page) => ({ default: page.ApiKeysPage })));
const PlaygroundPage = lazy(() =>
  import('./pages/Playground').then((page) => ({ default: page.PlaygroundPage })),
);
const WebhooksPage = lazy(() => import('./pages/Webhooks').then((page) => ({ default: page.WebhooksPage })));
const SettingsPage = lazy(() => import('./pages/Settings').then((page) => ({ default: page.SettingsPage })));
const OperationsPage = lazy(() =>
  import('./pages/Operations').then((page) => ({ default: page.OperationsPage })),
);

function Pages() {
  return (
    <Suspense fallback={<Loading label="Loading the page" />}>
      <Page />
    </Suspense>
  );
}

/** The tab's title: `title · ChainMeter` (browser history, tabs and screen readers tell pages apart by it). */
function useDocumentTitle(title: string | null) {
  useEffect(() => {
    if (title !== null) document.title = title === 'ChainMeter' ? title : `${title} · ChainMeter`;
  }, [title]);
}

function Page() {
  const { path } = useRouter();
  const route = routes.find((candidate) => candidate.path === path);
  useDocumentTitle(route ? route.label : path === OPERATIONS_PATH ? 'Operations' : 'Page not found');
  switch (path) {
    case '/buy':
      return <BuyPage />;
    case '/ledger':
      return <LedgerPage />;
    case '/usage':
      return <UsagePage />;
    case '/keys':
      return <ApiKeysPage />;
    case '/webhooks':
      return <WebhooksPage />;
    case '/playground':
      return <PlaygroundPage />;
    case '/settings':
      return <SettingsPage />;
    case OPERATIONS_PATH:
      return <OperationsPage />;
    case '/':
      return <DashboardPage />;
    default:
      return (
        <div className="card empty-state">
          <h1>Page not found</h1>
          <p>
            <Link to="/">Back to the dashboard</Link>
          </p>
        </div>
      );
  }
}
