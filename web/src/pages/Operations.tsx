/**
 * Operations, for the DAO's operators (wallets in OPERATOR_ADDRESSES, signed in): solvency now and over
 * time, the NEEDS_REVIEW queue (bill at a stated price or waive, with a reason), balance adjustments with a
 * reason, and revenue by day and by model. The API decides who is an operator: `operations` is null for
 * anyone else, and every action is refused to them there.
 */
import { formatCredits, type MicroUsd, parseCredits } from '@chainmeter/schema';
import { type FormEvent, useEffect, useId, useState } from 'react';
import { type CombinedError, useMutation, useQuery } from 'urql';
import { isAddress } from 'viem';
import { BarChart } from '../components/BarChart';
import { DayRangeError, DayRangeFields, useDayRange } from '../components/DayRange';
import { LineChart } from '../components/LineChart';
import { Empty, ErrorState, Loading } from '../components/States';
import { graphql } from '../gql';
import { describeGraphqlError } from '../lib/errors';
import { displayCredits, displayDateTime, shortHex } from '../lib/format';
import { useLive } from '../live/live';

const OperationsQuery = graphql(`
  query Operations($from: DateTime!, $to: DateTime!, $historyFrom: DateTime!, $historyTo: DateTime!) {
    solvency {
      treasuryBalance
      outstandingCredits
      heldCredits
      creditedDeposits
      chargedUsage
      operatorAdjustments
      accountDebt
      asOfBlock
      takenAt
    }
    solvencyHistory(from: $historyFrom, to: $historyTo) {
      takenAt
      treasuryBalance
      outstandingCredits
    }
    operations {
      needsReview(first: 50) {
        edges {
          node {
            id
            requestId
            model
            walletAddress
            promptTokens
            completionTokens
            providerCost
            userPrice
            flags
            createdAt
          }
        }
        pageInfo {
          hasNextPage
        }
      }
      byDay: revenue(from: $from, to: $to, groupBy: DAY) {
        key
        userPrice
        providerCost
        margin
        calls
      }
      byModel: revenue(from: $from, to: $to, groupBy: MODEL) {
        key
        userPrice
        providerCost
        margin
        calls
      }
    }
  }
`);

const ResolveUsageMutation = graphql(`
  mutation ResolveUsage($id: ID!, $input: ResolveUsageInput!) {
    resolveUsage(id: $id, input: $input) {
      id
      userPrice
      resolution
      resolvedBy
    }
  }
`);

const AdjustBalanceMutation = graphql(`
  mutation AdjustBalance($input: AdjustBalanceInput!) {
    adjustBalance(input: $input) {
      id
      amount
      balanceAfter
      operator
      reasonText
    }
  }
`);

/** The API's own words for an operator's refusal (it says why: what can be spent, who resolved first). */
function operatorError(error: CombinedError): string {
  const first = error.graphQLErrors[0];
  return first && !error.networkError ? first.message : describeGraphqlError(error);
}

/** `part / whole` as a percentage with one decimal, exactly (bigints). */
function percent(part: string, whole: string): string {
  const w = parseCredits(whole);
  if (w === 0n) return '—';
  const tenths = (parseCredits(part) * 1000n) / w;
  return `${tenths / 10n}.${tenths % 10n}%`;
}

export function OperationsPage() {
  const id = useId();
  const range = useDayRange(30);
  const [historyTo] = useState(() => new Date(Date.now() + 86_400_000).toISOString());
  const [historyFrom] = useState(() => new Date(Date.now() - 90 * 86_400_000).toISOString());
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: OperationsQuery,
    variables: { from: range.from, to: range.to, historyFrom, historyTo },
    requestPolicy: 'cache-and-network',
  });
  const refresh = () => reexecute({ requestPolicy: 'network-only' });
  const live = useLive();
  useEffect(() => {
    if (live.ledgerVersion > 0) reexecute({ requestPolicy: 'network-only' });
  }, [live.ledgerVersion, reexecute]);

  if (error && !data) return <ErrorState message={describeGraphqlError(error)} onRetry={refresh} />;
  if (fetching && !data) return <Loading label="Loading operations…" />;
  if (!data?.operations) {
    return (
      <div className="card empty-state" data-testid="operations-refused">
        <h1>Operators only</h1>
        <p>This section is for the wallets listed in the platform's OPERATOR_ADDRESSES, signed in.</p>
      </div>
    );
  }
  const { solvency, operations } = data;
  const queue = operations.needsReview.edges.map((edge) => edge.node);
  // The recorded snapshots, then the figures now.
  const points = [...data.solvencyHistory, solvency];
  const covered = parseCredits(solvency.treasuryBalance) >= parseCredits(solvency.outstandingCredits);

  return (
    <div className="page">
      <section className="card" aria-labelledby={`${id}-solvency`}>
        <div className="card-head">
          <h1 id={`${id}-solvency`}>Solvency</h1>
          <span className={`badge ${covered ? 'badge-ok' : 'badge-error'}`} data-testid="solvency-status">
            {covered ? 'Covered' : 'Short'}: treasury{' '}
            {percent(solvency.treasuryBalance, solvency.outstandingCredits)} of what is owed
          </span>
        </div>
        <dl className="figures" data-testid="solvency-figures">
          <div>
            <dt>Treasury on chain</dt>
            <dd>{displayCredits(solvency.treasuryBalance)}</dd>
          </div>
          <div>
            <dt>Outstanding credits</dt>
            <dd>{displayCredits(solvency.outstandingCredits)}</dd>
          </div>
          <div>
            <dt>Held by calls in flight</dt>
            <dd>{displayCredits(solvency.heldCredits)}</dd>
          </div>
          <div>
            <dt>Deposits credited</dt>
            <dd>{displayCredits(solvency.creditedDeposits)}</dd>
          </div>
          <div>
            <dt>Usage charged</dt>
            <dd>{displayCredits(solvency.chargedUsage)}</dd>
          </div>
          <div>
            <dt>Operator adjustments</dt>
            <dd>{displayCredits(solvency.operatorAdjustments)}</dd>
          </div>
          <div>
            <dt>Owed after deep reorgs</dt>
            <dd>{displayCredits(solvency.accountDebt)}</dd>
          </div>
        </dl>
        <p className="muted small">
          In credits (1 credit = $0.001). Treasury read at block {solvency.asOfBlock},{' '}
          {displayDateTime(solvency.takenAt)}. Outstanding = deposits credited − usage charged + operator
          adjustments.
        </p>
        <LineChart
          title="Treasury against outstanding credits"
          empty="No snapshots yet."
          times={points.map((p) => p.takenAt)}
          series={[
            { name: 'Treasury', color: '#16a34a', values: points.map((p) => p.treasuryBalance) },
            { name: 'Outstanding', color: '#4f46e5', values: points.map((p) => p.outstandingCredits) },
          ]}
        />
      </section>

      <section className="card" aria-labelledby={`${id}-review`}>
        <h2 id={`${id}-review`}>
          Calls to review ({queue.length}
          {operations.needsReview.pageInfo.hasNextPage ? '+' : ''})
        </h2>
        <p className="muted small">
          Each was charged its hold because its cost was unknown or above the hold. Bill it at a stated price
          or waive it; the difference is charged or refunded, with your address and reason on the record.
        </p>
        {queue.length === 0 ? (
          <Empty>Nothing to review.</Empty>
        ) : (
          <ul className="review-list" data-testid="review-queue">
            {queue.map((call) => (
              <ReviewItem key={call.id} call={call} onDone={refresh} />
            ))}
          </ul>
        )}
      </section>

      <section className="card" aria-labelledby={`${id}-adjust`}>
        <h2 id={`${id}-adjust`}>Adjust a balance</h2>
        <AdjustForm onDone={refresh} />
      </section>

      <section className="card" aria-labelledby={`${id}-revenue`}>
        <h2 id={`${id}-revenue`}>Revenue</h2>
        <form className="filters" onSubmit={(event) => event.preventDefault()} aria-label="Revenue range">
          <DayRangeFields id={id} range={range} />
        </form>
        <DayRangeError range={range} />
        <div className="charts">
          <BarChart
            title="Margin by day (credits)"
            empty="No calls in this range."
            bars={operations.byDay.map((b) => ({
              label: b.key,
              value: b.margin,
              detail: `${b.calls} calls`,
            }))}
          />
          <BarChart
            title="Margin by model (credits)"
            empty="No calls in this range."
            bars={operations.byModel.map((b) => ({
              label: b.key,
              value: b.margin,
              detail: `${b.calls} calls`,
            }))}
          />
        </div>
        <RevenueTable title="By model" rows={operations.byModel} testId="revenue-by-model" />
        <RevenueTable title="By day (UTC)" rows={operations.byDay} testId="revenue-by-day" />
      </section>
    </div>
  );
}

interface RevenueRow {
  key: string;
  userPrice: string;
  providerCost: string;
  margin: string;
  calls: number;
}

function RevenueTable({
  title,
  rows,
  testId,
}: {
  title: string;
  rows: readonly RevenueRow[];
  testId: string;
}) {
  if (rows.length === 0) return null;
  const keyLabel = title === 'By model' ? 'Model' : 'Day';
  const total = (pick: (row: RevenueRow) => string) =>
    formatCredits(rows.reduce((sum, row) => sum + parseCredits(pick(row)), 0n) as MicroUsd);
  return (
    <div className="table-wrap">
      <table className="table" data-testid={testId}>
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">{keyLabel}</th>
            <th scope="col" className="num">
              Calls
            </th>
            <th scope="col" className="num">
              User price
            </th>
            <th scope="col" className="num">
              Provider cost
            </th>
            <th scope="col" className="num">
              Margin
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.key}>
              <td data-label={keyLabel}>
                <code>{row.key}</code>
              </td>
              <td data-label="Calls" className="num">
                {row.calls}
              </td>
              <td data-label="User price" className="num">
                {displayCredits(row.userPrice)}
              </td>
              <td data-label="Provider cost" className="num">
                {displayCredits(row.providerCost)}
              </td>
              <td data-label="Margin" className="num">
                {displayCredits(row.margin)}
              </td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr>
            <th scope="row">Total</th>
            <td data-label="Calls" className="num">
              {rows.reduce((sum, row) => sum + row.calls, 0)}
            </td>
            <td data-label="User price" className="num">
              {displayCredits(total((r) => r.userPrice))}
            </td>
            <td data-label="Provider cost" className="num">
              {displayCredits(total((r) => r.providerCost))}
            </td>
            <td data-label="Margin" className="num">
              {displayCredits(total((r) => r.margin))}
            </td>
          </tr>
        </tfoot>
      </table>
    </div>
  );
}

interface ReviewCall {
  id: string;
  requestId: string;
  model: string;
  walletAddress?: string | null;
  promptTokens: number;
  completionTokens: number;
  providerCost?: string | null;
  userPrice: string;
  flags: string[];
  createdAt: string;
}

function ReviewItem({ call, onDone }: { call: ReviewCall; onDone(): void }) {
  const id = useId();
  const [price, setPrice] = useState(call.providerCost ?? '');
  const [reason, setReason] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [{ fetching }, resolve] = useMutation(ResolveUsageMutation);

  const submit = async (action: 'BILL' | 'WAIVE') => {
    setProblem(null);
    if (!reason.trim()) return setProblem('Give a reason: it is recorded with the resolution.');
    if (action === 'BILL') {
      try {
        if (parseCredits(price.trim()) < 0n) return setProblem('The price must not be negative.');
      } catch {
        return setProblem('The price is a number of credits with at most 3 decimals.');
      }
    }
    const result = await resolve({
      id: call.id,
      input: { action, price: action === 'BILL' ? price.trim() : null, reason: reason.trim() },
    });
    if (result.error) return setProblem(operatorError(result.error));
    onDone();
  };

  return (
    <li className="review-item" data-testid={`review-${call.id}`}>
      <div className="review-head">
        <code>{call.model}</code>
        <span className="muted small">
          {displayDateTime(call.createdAt)} ·{' '}
          {call.walletAddress ? shortHex(call.walletAddress) : 'unknown wallet'} · {call.promptTokens} in +{' '}
          {call.completionTokens} out tokens
        </span>
      </div>
      <p className="small">
        Charged <strong>{displayCredits(call.userPrice)}</strong> (its hold) · provider cost{' '}
        {call.providerCost ? (
          <strong>{displayCredits(call.providerCost)}</strong>
        ) : (
          <span className="badge badge-pending">unknown</span>
        )}
        {call.flags.map((flag) => (
          <span key={flag} className="badge badge-muted">
            {' '}
            {flag}
          </span>
        ))}
      </p>
      <form className="form-grid" onSubmit={(event: FormEvent) => event.preventDefault()} noValidate>
        <div className="field">
          <label htmlFor={`${id}-price`}>Price to bill (credits)</label>
          <input
            id={`${id}-price`}
            inputMode="decimal"
            value={price}
            onChange={(e) => setPrice(e.target.value)}
          />
        </div>
        <div className="field form-wide">
          <label htmlFor={`${id}-reason`}>Reason</label>
          <input
            id={`${id}-reason`}
            maxLength={500}
            value={reason}
            onChange={(e) => setReason(e.target.value)}
          />
        </div>
        <div className="actions">
          <button type="button" className="primary" disabled={fetching} onClick={() => submit('BILL')}>
            Bill
          </button>
          <button type="button" disabled={fetching} onClick={() => submit('WAIVE')}>
            Waive
          </button>
        </div>
      </form>
      {problem && (
        <p className="field-error" role="alert">
          {problem}
        </p>
      )}
    </li>
  );
}

function AdjustForm({ onDone }: { onDone(): void }) {
  const id = useId();
  const [wallet, setWallet] = useState('');
  const [amount, setAmount] = useState('');
  const [reason, setReason] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [{ fetching }, adjust] = useMutation(AdjustBalanceMutation);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(null);
    setDone(null);
    const address = wallet.trim();
    if (!isAddress(address, { strict: false }))
      return setProblem('The wallet is an address: 0x and 40 hex digits.');
    try {
      if (parseCredits(amount.trim()) === 0n) return setProblem('The amount must not be 0.');
    } catch {
      return setProblem(
        'The amount is a signed number of credits with at most 3 decimals (e.g. 25 or -1.5).',
      );
    }
    if (!reason.trim()) return setProblem('Give a reason: it is recorded on the ledger entry.');
    const result = await adjust({ input: { wallet: address, amount: amount.trim(), reason: reason.trim() } });
    if (result.error || !result.data) {
      return setProblem(result.error ? operatorError(result.error) : 'The API gave no answer.');
    }
    const entry = result.data.adjustBalance;
    setDone(
      `Adjusted by ${displayCredits(entry.amount)} credits; the balance is now ${displayCredits(entry.balanceAfter)}.`,
    );
    setAmount('');
    setReason('');
    onDone();
  };

  return (
    <form className="form-grid" onSubmit={submit} noValidate aria-label="Adjust a balance">
      <div className="field form-wide">
        <label htmlFor={`${id}-wallet`}>Wallet</label>
        <input
          id={`${id}-wallet`}
          value={wallet}
          placeholder="0x…"
          onChange={(e) => setWallet(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-amount`}>Amount (credits, signed)</label>
        <input
          id={`${id}-amount`}
          inputMode="decimal"
          value={amount}
          placeholder="e.g. 25 or -1.5"
          onChange={(e) => setAmount(e.target.value)}
        />
      </div>
      <div className="field form-wide">
        <label htmlFor={`${id}-reason`}>Reason</label>
        <input
          id={`${id}-reason`}
          maxLength={500}
          value={reason}
          placeholder="e.g. refund for the outage of Dec 1"
          onChange={(e) => setReason(e.target.value)}
        />
      </div>
      <div className="actions">
        <button type="submit" className="primary" disabled={fetching}>
          Adjust balance
        </button>
      </div>
      {problem && (
        <p className="field-error form-wide" role="alert">
          {problem}
        </p>
      )}
      {done && (
        <p className="alert alert-ok form-wide" role="status">
          {done}
        </p>
      )}
    </form>
  );
}
