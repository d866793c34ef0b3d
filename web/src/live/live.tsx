/**
 * One pair of subscriptions for the signed-in account, shared by every page: the live balance and
 * each deposit's latest state. Pages merge these over their query results and refetch lists when
 * `ledgerVersion` moves.
 */
import { createContext, type ReactNode, use, useCallback, useMemo, useState } from 'react';
import { useSubscription } from 'urql';
import type { DepositProgressFields } from '../components/DepositProgress';
import { type FragmentType, graphql } from '../gql';
import type { DepositStatus } from '../gql/graphql';

const BalanceUpdatedSubscription = graphql(`
  subscription BalanceUpdated {
    balanceUpdated {
      balance
      entry {
        id
        reason
      }
    }
  }
`);

const DepositUpdatedSubscription = graphql(`
  subscription DepositUpdated {
    depositUpdated {
      id
      txHash
      status
      ...DepositProgress_deposit
    }
  }
`);

export interface LiveDeposit {
  id: string;
  txHash: string;
  status: DepositStatus;
  fragment: FragmentType<typeof DepositProgressFields>;
}

export interface LiveState {
  /** The newest balance pushed by the API, or null before the first update. */
  balance: string | null;
  /** Each deposit's newest state, by id, in arrival order. */
  deposits: ReadonlyMap<string, LiveDeposit>;
  /** Moves on each new ledger entry. */
  ledgerVersion: number;
  /** True once the subscriptions have failed; pages then fall back to reloads. */
  error: boolean;
  /** A balance read by a query (e.g. right after a completion): moves the live balance if it changed. */
  reportBalance(balance: string): void;
}

const LiveContext = createContext<LiveState>({
  balance: null,
  deposits: new Map(),
  ledgerVersion: 0,
  error: false,
  reportBalance: () => {},
});

export function LiveProvider({ children }: { children: ReactNode }) {
  const [balance, setBalance] = useState<{ balance: string | null; version: number }>({
    balance: null,
    version: 0,
  });
  const [deposits, setDeposits] = useState<ReadonlyMap<string, LiveDeposit>>(new Map());
  const [balanceResult] = useSubscription({ query: BalanceUpdatedSubscription }, (_previous, event) => {
    setBalance((current) => ({ balance: event.balanceUpdated.balance, version: current.version + 1 }));
    return event;
  });
  const [depositResult] = useSubscription({ query: DepositUpdatedSubscription }, (_previous, event) => {
    const { id, txHash, status } = event.depositUpdated;
    setDeposits((current) =>
      new Map(current).set(id, { id, txHash, status, fragment: event.depositUpdated }),
    );
    return event;
  });
  const error = Boolean(balanceResult.error || depositResult.error);
  const reportBalance = useCallback((reported: string) => {
    setBalance((current) =>
      current.balance === reported ? current : { balance: reported, version: current.version + 1 },
    );
  }, []);
  const value = useMemo(
    () => ({ balance: balance.balance, ledgerVersion: balance.version, deposits, error, reportBalance }),
    [balance, deposits, error, reportBalance],
  );
  return <LiveContext value={value}>{children}</LiveContext>;
}

export function useLive(): LiveState {
  return use(LiveContext);
}
