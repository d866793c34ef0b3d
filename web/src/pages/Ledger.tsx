/**
 * The whole ledger, newest first, a page at a time (Relay cursors).
 */
import { useEffect, useState } from 'react';
import { useQuery } from 'urql';
import { LedgerTable } from '../components/LedgerTable';
import { Empty, ErrorState, Loading } from '../components/States';
import { graphql } from '../gql';
import { describeGraphqlError } from '../lib/errors';
import { useLive } from '../live/live';

const PAGE_SIZE = 20;

const LedgerQuery = graphql(`
  query Ledger($first: Int!, $after: String) {
    me {
      id
      ledger(first: $first, after: $after) {
        edges {
          cursor
          node {
            id
            ...LedgerRow_entry
          }
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
`);

export function LedgerPage() {
  // The cursors of the pages before this one: going back pops one.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors[cursors.length - 1] ?? null;
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: LedgerQuery,
    variables: { first: PAGE_SIZE, after },
  });
  const live = useLive();
  useEffect(() => {
    if (live.ledgerVersion > 0 && after === null) reexecute({ requestPolicy: 'network-only' });
  }, [live.ledgerVersion, after, reexecute]);

  const ledger = data?.me?.ledger;
  const entries = ledger?.edges.map((edge) => edge.node) ?? [];
  const page = cursors.length;
  return (
    <div className="page">
      <section className="card" aria-labelledby="ledger-title">
        <div className="card-head">
          <h1 id="ledger-title">Ledger</h1>
          <span className="muted small">Newest first · append-only</span>
        </div>
        {error && !data ? (
          <ErrorState
            message={describeGraphqlError(error)}
            onRetry={() => reexecute({ requestPolicy: 'network-only' })}
          />
        ) : fetching && !data ? (
          <Loading label="Loading the ledger…" />
        ) : entries.length === 0 ? (
          <Empty>No entries yet. Deposits and model usage appear here.</Empty>
        ) : (
          <LedgerTable entries={entries} caption={`Ledger entries, page ${page}`} />
        )}
        <nav className="pager" aria-label="Ledger pages">
          <button type="button" disabled={page === 1} onClick={() => setCursors((list) => list.slice(0, -1))}>
            ← Newer
          </button>
          <span className="muted small">Page {page}</span>
          <button
            type="button"
            disabled={!ledger?.pageInfo.hasNextPage || !ledger.pageInfo.endCursor}
            onClick={() => {
              const next = ledger?.pageInfo.endCursor;
              if (next) setCursors((list) => [...list, next]);
            }}
          >
            Older →
          </button>
        </nav>
      </section>
    </div>
  );
}
