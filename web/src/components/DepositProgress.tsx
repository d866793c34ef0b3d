/**
 * One deposit's journey: pending with its confirmation count, then credited (or reorged out).
 */
import { type FragmentType, getFragmentData, graphql } from '../gql';
import { displayCredits, displayDateTime, shortHex, txUrl } from '../lib/format';

export const DepositProgressFields = graphql(`
  fragment DepositProgress_deposit on Deposit {
    id
    chainId
    txHash
    blockNumber
    credits
    status
    confirmations
    creditedAt
  }
`);

export function TxLink({ chainId, txHash }: { chainId: number; txHash: string }) {
  const url = txUrl(chainId, txHash);
  if (!url) {
    return (
      <code className="hash" title={`${txHash} (no public explorer for chain ${chainId})`}>
        {shortHex(txHash, 10, 6)}
      </code>
    );
  }
  return (
    <a className="hash" href={url} target="_blank" rel="noreferrer" title={txHash}>
      {shortHex(txHash, 10, 6)}
      <span className="visually-hidden"> (opens the block explorer)</span>
    </a>
  );
}

export function DepositProgress({
  deposit: masked,
  required,
}: {
  deposit: FragmentType<typeof DepositProgressFields>;
  required: number;
}) {
  const deposit = getFragmentData(DepositProgressFields, masked);
  const done = Math.min(deposit.confirmations, required);
  return (
    <div className="deposit" data-status={deposit.status} data-testid={`deposit-${deposit.txHash}`}>
      <div className="deposit-main">
        <strong className="deposit-credits">+{displayCredits(deposit.credits)} credits</strong>
        <TxLink chainId={deposit.chainId} txHash={deposit.txHash} />
      </div>
      {deposit.status === 'PENDING' && (
        <div className="deposit-progress">
          <progress max={required} value={done} aria-label="Confirmations" />
          <span className="badge badge-pending" role="status">
            Pending {done}/{required} confirmations
          </span>
        </div>
      )}
      {deposit.status === 'CREDITED' && (
        <span className="badge badge-ok">
          Credited{deposit.creditedAt ? ` ${displayDateTime(deposit.creditedAt)}` : ''}
        </span>
      )}
      {deposit.status === 'REORGED' && (
        <span className="badge badge-error">Dropped by a chain reorganisation: not credited</span>
      )}
    </div>
  );
}
