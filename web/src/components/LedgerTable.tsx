/**
 * Ledger entries, newest first: signed amounts, the balance after each, deposits linked to their tx.
 */
import { type FragmentType, getFragmentData, graphql } from '../gql';
import { displayCredits, displayDateTime } from '../lib/format';
import { TxLink } from './DepositProgress';

export const LedgerRowFields = graphql(`
  fragment LedgerRow_entry on LedgerEntry {
    id
    amount
    balanceAfter
    reason
    createdAt
    deposit {
      id
      chainId
      txHash
    }
  }
`);

const REASON_LABEL: Record<string, string> = {
  DEPOSIT: 'Deposit',
  USAGE: 'Model usage',
  ADJUSTMENT: 'Adjustment',
};

export function LedgerTable({
  entries,
  caption,
}: {
  entries: readonly FragmentType<typeof LedgerRowFields>[];
  caption: string;
}) {
  return (
    <div className="table-wrap">
      <table className="table">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">What</th>
            <th scope="col" className="num">
              Amount
            </th>
            <th scope="col" className="num">
              Balance after
            </th>
            <th scope="col">Transaction</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((masked) => {
            const entry = getFragmentData(LedgerRowFields, masked);
            const positive = !entry.amount.startsWith('-');
            return (
              <tr key={entry.id}>
                <td data-label="When">{displayDateTime(entry.createdAt)}</td>
                <td data-label="What">
                  <span className={`reason reason-${entry.reason.toLowerCase()}`}>
                    {REASON_LABEL[entry.reason] ?? entry.reason}
                  </span>
                </td>
                <td data-label="Amount" className={`num ${positive ? 'amount-in' : 'amount-out'}`}>
                  {positive ? '+' : ''}
                  {displayCredits(entry.amount)}
                </td>
                <td data-label="Balance after" className="num">
                  {displayCredits(entry.balanceAfter)}
                </td>
                <td data-label="Transaction">
                  {entry.deposit ? (
                    <TxLink chainId={entry.deposit.chainId} txHash={entry.deposit.txHash} />
                  ) : (
                    '—'
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
