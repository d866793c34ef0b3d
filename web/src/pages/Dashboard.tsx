/**
 * The balance (credits and USD) moving live, deposits still confirming, and the latest activity.
 */
import { useEffect } from 'react';
import { useQuery } from 'urql';
import { DepositProgress, DepositProgressFields } from '../components/DepositProgress';
import { LedgerTable } from '../components/LedgerTable';
import { Empty, ErrorState, Loading } from '../components/States';
import { getFragmentData, graphql } from '../gql';
import { describeGraphqlError } from '../lib/errors';
import { creditsToUsd, displayCredits } from '../lib/format';
import { type LiveDeposit, useLive } from '../live/live';
import { usePaymentConfig } from '../payment-config';
import { Link } from '../router';
import { useSession } from '../session/session';

const DashboardQuery = graphql(`
  query Dashboard {
    me {
      id
      balance
      debt
      deposits(first: 20) {
        edges {
          node {
            id
            txHash
            status
            ...DepositProgress_deposit
          }
        }
      }
      ledger(first: 5) {
        edges {
          node {
            id
            ...LedgerRow_entry
          }
        }
      }
    }
  }
`);

export function DashboardPage() {
  const session = useSession();
  const live = useLive();
  const { confirmations } = usePaymentConfig();
  const [{ data, fetching, error }, reexecute] = useQuery({ query: DashboardQuery });
  useEffect(() => {
    if (live.ledgerVersion > 0) reexecute({ requestPolicy: 'network-only' });
  }, [live.ledgerVersion, reexecute]);

  const balance = live.balance ?? data?.me?.balance ?? session.me?.balance ?? '0';
  // Live states win over the query's snapshot; deposits first seen live are added.
  const deposits = new Map<string, Pick<LiveDeposit, 'status' | 'fragment'>>(
    (data?.me?.deposits.edges ?? []).map(({ node }) => [node.id, { status: node.status, fragment: node }]),
  );
  for (const [id, deposit] of live.deposits)
    deposits.set(id, { status: deposit.status, fragment: deposit.fragment });
  const pending = [...deposits.values()].filter((deposit) => deposit.status === 'PENDING');
  const justCredited = [...live.deposits.values()].filter((deposit) => deposit.status !== 'PENDING');
  const entries = data?.me?.ledger.edges.map((edge) => edge.node) ?? [];
  const debt = data?.me?.debt ?? '0';

  return (
    <div className="page">
      <h1 className="visually-hidden">Dashboard</h1>
      <section className="card balance-card" aria-labelledby="balance-title">
        <h2 id="balance-title" className="eyebrow">
          Balance
        </h2>
        <p className="balance" data-testid="balance" aria-live="polite">
          <span className="balance-credits">{displayCredits(balance)}</span>
          <span className="balance-unit">credits</span>
        </p>
        <p className="balance-usd" data-testid="balance-usd">
          {creditsToUsd(balance)}
        </p>
        {Number(debt) > 0 && (
          <p className="alert alert-warn" role="status" data-testid="debt">
            You owe {displayCredits(debt)} credits ({creditsToUsd(debt)}): a payment you had already spent was
            reversed when the chain dropped its block. Your next credits pay this first.
          </p>
        )}
        <div className="actions">
          <Link to="/buy" className="button primary">
            Buy credits
          </Link>
          <Link to="/playground" className="button">
            Try a model
          </Link>
        </div>
      </section>

      <section className="card" aria-labelledby="pending-title">
        <h2 id="pending-title">Deposits</h2>
        {fetching && !data ? (
          <Loading label="Loading deposits…" />
        ) : error && !data ? (
          <ErrorState
            message={describeGraphqlError(error)}
            onRetry={() => reexecute({ requestPolicy: 'network-only' })}
          />
        ) : pending.length === 0 && justCredited.length === 0 ? (
          <Empty>
            No deposit waiting for confirmations. <Link to="/buy">Buy credits</Link> to add one.
          </Empty>
        ) : (
          <ul className="deposit-list" aria-live="polite">
            {[...pending, ...justCredited].map((deposit) => (
              <li key={getFragmentData(DepositProgressFields, deposit.fragment).id}>
                <DepositProgress deposit={deposit.fragment} required={confirmations} />
              </li>
            ))}
          </ul>
        )}
      </section>

      <section className="card" aria-labelledby="activity-title">
        <div className="card-head">
          <h2 id="activity-title">Recent activity</h2>
          <Link to="/ledger">Full ledger</Link>
        </div>
        {fetching && !data ? (
          <Loading label="Loading activity…" />
        ) : error && !data ? (
          // Never "nothing yet" for an account whose activity could not be read.
          <ErrorState
            message={describeGraphqlError(error)}
            onRetry={() => reexecute({ requestPolicy: 'network-only' })}
          />
        ) : entries.length === 0 ? (
          <Empty>Nothing yet: your first deposit will show here.</Empty>
        ) : (
          <LedgerTable entries={entries} caption="Recent ledger entries" />
        )}
      </section>
    </div>
  );
}
