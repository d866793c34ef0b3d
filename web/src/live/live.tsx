/**
 * One pair of subscriptions for the signed-in account, shared by every page: the live balance and
 * each deposit's latest state. Pages merge these over their query results and refetch lists when
 * `ledgerVersion` moves.
 *
 * Subscriptions have no replay: what the API published while a stream was down (an API restart, a
 * dropped connection) is lost. So a stream that ends or fails makes the page say it is reconnecting, the
 * API is tried again with a growing delay, and once it answers the streams are opened again and the
 * balance read afresh; `ledgerVersion` moves, so every page refetches what it may have missed.
 *
 * That read races the new streams: an event heard on them while it is in flight may be newer than its
 * answer (read before the event's entry was written). The streams are live by then and bring anything
 * newer, so an event heard on them wins: the read's balance, or a deposit's state, is taken only when the
 * streams have said nothing newer about it.
 *
 * A page's own read of the balance (e.g. right after a completion) races the streams the same way: its
 * answer is taken only when the live balance took no figure since the read started.
 */
import { createContext, type ReactNode, use, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useClient } from 'urql';
import { onEnd, pipe, subscribe } from 'wonka';
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

/** What a dropped stream may have missed, read when the streams open again: the balance and deposits. */
const LiveCatchUpQuery = graphql(`
  query LiveCatchUp {
    me {
      id
      balance
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
    }
  }
`);

/** Delays between attempts to reach the API again, then the last one repeated. */
const RECONNECT_DELAYS_MS = [250, 500, 1_000, 2_000, 4_000];
/** Streams up this long before they drop start the delays from the shortest again. */
const STAYED_UP_MS = 30_000;

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
  /** Moves on each new ledger entry, and after a reconnection (entries may have been missed). */
  ledgerVersion: number;
  /** True while the live streams are down and the page tries to reach the API again. */
  reconnecting: boolean;
  /**
   * Reads the balance with `read` (a query, e.g. right after a completion) and moves the live balance to
   * its answer if it changed, unless the live balance took a figure (newer) while the read was in flight.
   */
  refreshBalance(read: () => Promise<string | undefined>): Promise<void>;
  /**
   * Follows the deposit of transaction `txHash` (e.g. a payment just sent): a reconnection's catch-up
   * brings its state even if the streams never told of it (mined and credited while they were down).
   * Returns the unfollow.
   */
  follow(txHash: string): () => void;
}

const LiveContext = createContext<LiveState>({
  balance: null,
  deposits: new Map(),
  ledgerVersion: 0,
  reconnecting: false,
  refreshBalance: async () => {},
  follow: () => () => {},
});

export function LiveProvider({ children }: { children: ReactNode }) {
  const client = useClient();
  const [balance, setBalance] = useState<{ balance: string | null; version: number }>({
    balance: null,
    version: 0,
  });
  const [deposits, setDeposits] = useState<ReadonlyMap<string, LiveDeposit>>(new Map());
  /** Each opening of the streams; the first is 0. */
  const [opening, setOpening] = useState(0);
  /** Failed attempts to reach the API since the streams dropped; null while they are up. */
  const [attempts, setAttempts] = useState<number | null>(null);

  /** Drops in a row of streams that did not stay up: an API that answers but ends them is not hammered. */
  const quickDrops = useRef(0);
  /** Each figure the live balance took (a stream's event, a read's answer): a read started before one is older. */
  const balanceFigures = useRef(0);
  /** The transaction hashes (lower case) whose deposits pages follow. */
  const followed = useRef(new Set<string>());

  useEffect(() => {
    let closed = false;
    const openedAt = Date.now();
    /** What these streams have told: it is newer than (or as new as) what the catch-up read. */
    let balanceHeard = false;
    const depositsHeard = new Set<string>();
    const dropped = () => {
      if (closed) return;
      closed = true;
      if (Date.now() - openedAt > STAYED_UP_MS) quickDrops.current = 0;
      const firstAttempt = quickDrops.current++;
      setAttempts((current) => current ?? firstAttempt);
    };
    const balances = pipe(
      client.subscription(BalanceUpdatedSubscription, {}),
      onEnd(dropped),
      subscribe((result) => {
        if (result.error) return dropped();
        const update = result.data?.balanceUpdated;
        if (!update) return;
        balanceHeard = true;
        balanceFigures.current += 1;
        setBalance((current) => ({ balance: update.balance, version: current.version + 1 }));
      }),
    );
    const depositUpdates = pipe(
      client.subscription(DepositUpdatedSubscription, {}),
      onEnd(dropped),
      subscribe((result) => {
        if (result.error) return dropped();
        const update = result.data?.depositUpdated;
        if (!update) return;
        const { id, txHash, status } = update;
        depositsHeard.add(id);
        setDeposits((current) => new Map(current).set(id, { id, txHash, status, fragment: update }));
      }),
    );
    if (opening > 0) {
      // Opened again: read what the streams missed while they were down.
      client
        .query(LiveCatchUpQuery, {}, { requestPolicy: 'network-only' })
        .toPromise()
        .then((result) => {
          const me = result.data?.me;
          if (closed || !me) return;
          // The version moves either way: pages refetch what the streams missed while they were down.
          const stale = balanceHeard;
          if (!stale) balanceFigures.current += 1;
          setBalance((current) => ({
            balance: stale ? current.balance : me.balance,
            version: current.version + 1,
          }));
          // Deposits this page follows (seen live before, or followed by their transaction) take their
          // state now, as do those still pending: a deposit credited while the streams were down must not
          // stay "pending" (or unseen) on screen. One the new streams already updated keeps that newer state.
          const heard = new Set(depositsHeard);
          setDeposits((current) => {
            const next = new Map(current);
            for (const { node } of me.deposits.edges) {
              if (heard.has(node.id)) continue;
              if (
                current.has(node.id) ||
                node.status === 'PENDING' ||
                followed.current.has(node.txHash.toLowerCase())
              )
                next.set(node.id, { id: node.id, txHash: node.txHash, status: node.status, fragment: node });
            }
            return next;
          });
        });
    }
    return () => {
      closed = true;
      balances.unsubscribe();
      depositUpdates.unsubscribe();
    };
  }, [client, opening]);

  useEffect(() => {
    if (attempts === null) return;
    let cancelled = false;
    const delay = RECONNECT_DELAYS_MS[Math.min(attempts, RECONNECT_DELAYS_MS.length - 1)];
    const timer = setTimeout(async () => {
      const probe = await client.query(LiveCatchUpQuery, {}, { requestPolicy: 'network-only' }).toPromise();
      if (cancelled) return;
      if (probe.error?.networkError) return setAttempts(attempts + 1);
      // The API answers again (a signed-out answer ends the session through the client's auth events).
      setAttempts(null);
      setOpening((current) => current + 1);
    }, delay);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [attempts, client]);

  const refreshBalance = useCallback(async (read: () => Promise<string | undefined>) => {
    const before = balanceFigures.current;
    const answer = await read();
    if (answer === undefined || balanceFigures.current !== before) return;
    balanceFigures.current += 1;
    setBalance((current) =>
      current.balance === answer ? current : { balance: answer, version: current.version + 1 },
    );
  }, []);
  const follow = useCallback((txHash: string) => {
    const key = txHash.toLowerCase();
    followed.current.add(key);
    return () => {
      followed.current.delete(key);
    };
  }, []);
  const value = useMemo(
    () => ({
      balance: balance.balance,
      ledgerVersion: balance.version,
      deposits,
      reconnecting: attempts !== null,
      refreshBalance,
      follow,
    }),
    [balance, deposits, attempts, refreshBalance, follow],
  );
  return <LiveContext value={value}>{children}</LiveContext>;
}

export function useLive(): LiveState {
  return use(LiveContext);
}
