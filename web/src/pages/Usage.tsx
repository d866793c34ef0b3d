/**
 * Usage: every metered request (model, tokens, provider cost, price, key, time) with filters, spend
 * by day and by model, and CSV / JSON exports of the same range.
 */
import { useEffect, useId, useState } from 'react';
import { useQuery } from 'urql';
import { BarChart } from '../components/BarChart';
import { DayRangeError, DayRangeFields, useDayRange } from '../components/DayRange';
import { Empty, ErrorState, Loading } from '../components/States';
import { graphql } from '../gql';
import { describeGraphqlError } from '../lib/errors';
import { displayCredits, displayDateTime } from '../lib/format';
import { useLive } from '../live/live';

const PAGE_SIZE = 25;

const UsageQuery = graphql(`
  query Usage($first: Int!, $after: String, $filter: UsageFilter, $from: DateTime!, $to: DateTime!) {
    me {
      id
      apiKeys {
        id
        name
        prefix
      }
      byDay: usageSummary(from: $from, to: $to, groupBy: DAY) {
        key
        requests
        userPrice
      }
      byModel: usageSummary(from: $from, to: $to, groupBy: MODEL) {
        key
        requests
        userPrice
      }
      usage(first: $first, after: $after, filter: $filter) {
        edges {
          cursor
          node {
            id
            requestId
            model
            promptTokens
            completionTokens
            providerCost
            userPrice
            billingStatus
            createdAt
            apiKey {
              id
              name
            }
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

export function UsagePage() {
  const id = useId();
  const range = useDayRange(30);
  const [model, setModel] = useState('');
  const [apiKeyId, setApiKeyId] = useState('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors[cursors.length - 1] ?? null;
  // A new filter starts again from the first page.
  const firstPage = () => setCursors([null]);
  const filterBy = (set: (value: string) => void, value: string) => {
    set(value);
    firstPage();
  };
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: UsageQuery,
    variables: {
      first: PAGE_SIZE,
      after,
      from: range.from,
      to: range.to,
      filter: { from: range.from, to: range.to, model: model || null, apiKeyId: apiKeyId || null },
    },
    pause: !range.valid,
  });
  const live = useLive();
  useEffect(() => {
    if (live.ledgerVersion > 0) reexecute({ requestPolicy: 'network-only' });
  }, [live.ledgerVersion, reexecute]);

  const me = data?.me;
  const rows = me?.usage.edges.map((edge) => edge.node) ?? [];
  const exportQuery = new URLSearchParams({ from: range.from, to: range.to });

  return (
    <div className="page">
      <section className="card" aria-labelledby="usage-title">
        <div className="card-head">
          <h1 id="usage-title">Usage</h1>
          <div className="row">
            <a className="button" href={`/v1/usage/export?format=csv&${exportQuery}`} download>
              Export CSV
            </a>
            <a className="button" href={`/v1/usage/export?format=json&${exportQuery}`} download>
              Export JSON
            </a>
          </div>
        </div>
        <form className="filters" onSubmit={(event) => event.preventDefault()} aria-label="Usage filters">
          <DayRangeFields id={id} range={range} onChange={firstPage} />
          <div className="field">
            <label htmlFor={`${id}-model`}>Model</label>
            <select id={`${id}-model`} value={model} onChange={(e) => filterBy(setModel, e.target.value)}>
              <option value="">All models</option>
              {(me?.byModel ?? []).map((bucket) => (
                <option key={bucket.key}>{bucket.key}</option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor={`${id}-key`}>API key</label>
            <select id={`${id}-key`} value={apiKeyId} onChange={(e) => filterBy(setApiKeyId, e.target.value)}>
              <option value="">All (keys and playground)</option>
              {(me?.apiKeys ?? []).map((key) => (
                <option key={key.id} value={key.id}>
                  {key.name} ({key.prefix}…)
                </option>
              ))}
            </select>
          </div>
        </form>
        <DayRangeError range={range} />
      </section>

      {error && !data ? (
        <ErrorState
          message={describeGraphqlError(error)}
          onRetry={() => reexecute({ requestPolicy: 'network-only' })}
        />
      ) : fetching && !data ? (
        <Loading label="Loading usage…" />
      ) : (
        <>
          <section className="card charts" aria-label="Spend charts">
            <BarChart
              title="Spend by day (credits)"
              empty="No spend in this range."
              bars={(me?.byDay ?? []).map((b) => ({
                label: b.key,
                value: b.userPrice,
                detail: `${b.requests} req`,
              }))}
            />
            <BarChart
              title="Spend by model (credits)"
              empty="No spend in this range."
              bars={(me?.byModel ?? []).map((b) => ({
                label: b.key,
                value: b.userPrice,
                detail: `${b.requests} req`,
              }))}
            />
          </section>
          <section className="card" aria-labelledby="requests-title">
            <h2 id="requests-title">Requests</h2>
            {rows.length === 0 ? (
              <Empty>No requests match. Try the playground, or widen the filters.</Empty>
            ) : (
              <div className="table-wrap">
                <table className="table" data-testid="usage-table">
                  <caption className="visually-hidden">Metered requests, newest first</caption>
                  <thead>
                    <tr>
                      <th scope="col">Time</th>
                      <th scope="col">Model</th>
                      <th scope="col" className="num">
                        Tokens in / out
                      </th>
                      <th scope="col" className="num">
                        Provider cost
                      </th>
                      <th scope="col" className="num">
                        Price
                      </th>
                      <th scope="col">Key</th>
                    </tr>
                  </thead>
                  <tbody>
                    {rows.map((row) => (
                      <tr key={row.id} title={`Request ${row.requestId}`}>
                        <td data-label="Time">{displayDateTime(row.createdAt)}</td>
                        <td data-label="Model">
                          <code>{row.model}</code>
                        </td>
                        <td data-label="Tokens in / out" className="num">
                          {row.promptTokens} / {row.completionTokens}
                        </td>
                        <td data-label="Provider cost" className="num">
                          {row.providerCost === null ? (
                            <span className="badge badge-pending">unknown</span>
                          ) : (
                            displayCredits(row.providerCost)
                          )}
                        </td>
                        <td data-label="Price" className="num">
                          {displayCredits(row.userPrice)}
                          {row.billingStatus === 'NEEDS_REVIEW' && (
                            <span className="badge badge-pending"> review</span>
                          )}
                        </td>
                        <td data-label="Key">
                          {row.apiKey ? row.apiKey.name : <span className="muted">session</span>}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <nav className="pager" aria-label="Usage pages">
              <button
                type="button"
                disabled={cursors.length === 1}
                onClick={() => setCursors((l) => l.slice(0, -1))}
              >
                ← Newer
              </button>
              <span className="muted small">Page {cursors.length} · prices in credits</span>
              <button
                type="button"
                disabled={!me?.usage.pageInfo.hasNextPage}
                onClick={() => {
                  const next = me?.usage.pageInfo.endCursor;
                  if (next) setCursors((l) => [...l, next]);
                }}
              >
                Older →
              </button>
            </nav>
          </section>
        </>
      )}
    </div>
  );
}
