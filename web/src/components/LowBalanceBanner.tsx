/**
 * The low-balance banner: shown on every page while the live balance is below the account's alert
 * threshold (`setLowBalanceAlert`), with the way to buy credits and to change the alert.
 */
import { parseCredits } from '@chainmeter/schema';
import { useQuery } from 'urql';
import { graphql } from '../gql';
import { displayCredits } from '../lib/format';
import { useLive } from '../live/live';
import { Link } from '../router';
import { useSession } from '../session/session';

export const LowBalanceThresholdQuery = graphql(`
  query LowBalanceThreshold {
    me {
      id
      balance
      lowBalanceThreshold
    }
  }
`);

export function LowBalanceBanner() {
  const [{ data }] = useQuery({ query: LowBalanceThresholdQuery });
  const live = useLive();
  const session = useSession();
  const threshold = data?.me?.lowBalanceThreshold ?? null;
  const balance = live.balance ?? data?.me?.balance ?? session.me?.balance ?? null;
  if (threshold === null || balance === null || parseCredits(balance) >= parseCredits(threshold)) return null;
  return (
    <div className="alert alert-warn banner" role="status" data-testid="low-balance-banner">
      <span>
        Your balance, <strong>{displayCredits(balance)} credits</strong>, is below your alert threshold of{' '}
        {displayCredits(threshold)} credits.
      </span>
      <span className="banner-actions">
        <Link to="/buy" className="button primary">
          Buy credits
        </Link>
        <Link to="/settings" className="button">
          Alert settings
        </Link>
      </span>
    </div>
  );
}
