/**
 * Balance settings: the low-balance alert (a threshold in credits, or off) and auto top-up.
 */
import { type FormEvent, useId, useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { type Address, type Hex, parseUnits } from 'viem';
import { ErrorState, Loading } from '../components/States';
import { graphql } from '../gql';
import { describeGraphqlError } from '../lib/errors';
import { displayCredits } from '../lib/format';
import { readPositiveCredits } from '../lib/inputs';
import { usePaymentConfig } from '../payment-config';
import { useAutoTopUpSigner } from '../wallet/auto-top-up';

const SettingsQuery = graphql(`
  query BalanceSettings {
    me {
      id
      balance
      lowBalanceThreshold
    }
  }
`);

const AutoTopUpQuery = graphql(`
  query AutoTopUpSettings {
    me {
      id
      autoTopUp {
        threshold
        remaining
        paused
        pausedReason
        nonces
      }
    }
  }
`);

const SetAutoTopUpMutation = graphql(`
  mutation SetAutoTopUp($input: AutoTopUpInput!) {
    setAutoTopUp(input: $input) {
      threshold
      remaining
      paused
      pausedReason
      nonces
    }
  }
`);

const CancelAutoTopUpMutation = graphql(`
  mutation CancelAutoTopUp {
    cancelAutoTopUp
  }
`);

const SetLowBalanceAlertMutation = graphql(`
  mutation SetLowBalanceAlert($threshold: Credits) {
    setLowBalanceAlert(threshold: $threshold) {
      id
      balance
      lowBalanceThreshold
    }
  }
`);

export function SettingsPage() {
  const [{ data, fetching, error }, reexecute] = useQuery({ query: SettingsQuery });
  return (
    <div className="page">
      <section className="card" aria-labelledby="alert-title">
        <h1 id="alert-title">Low-balance alert</h1>
        <p className="muted">
          When your balance falls below the threshold, a banner shows here and your webhooks receive{' '}
          <code>balance.low</code> (once each time it falls below).
        </p>
        {error && !data ? (
          <ErrorState
            message={describeGraphqlError(error)}
            onRetry={() => reexecute({ requestPolicy: 'network-only' })}
          />
        ) : fetching && !data ? (
          <Loading label="Loading settings…" />
        ) : (
          <LowBalanceAlertForm threshold={data?.me?.lowBalanceThreshold ?? null} />
        )}
      </section>
      <AutoTopUpCard />
    </div>
  );
}

function AutoTopUpCard() {
  const [{ data, fetching, error }, reexecute] = useQuery({ query: AutoTopUpQuery });
  const refresh = () => reexecute({ requestPolicy: 'network-only' });
  const topUp = data?.me?.autoTopUp ?? null;
  const [cancelled, setCancelled] = useState<Hex[] | null>(null);
  return (
    <section className="card" aria-labelledby="topup-title">
      <h2 id="topup-title">Auto top-up</h2>
      <p className="muted">
        Your wallet signs a few USDC authorizations to the treasury. When your balance falls below the
        threshold, ChainMeter submits the next one and credits it like any payment. An authorization can only
        move its amount to the treasury, for your account: nobody holds your funds.
      </p>
      {error && !data ? (
        <ErrorState message={describeGraphqlError(error)} onRetry={refresh} />
      ) : fetching && !data ? (
        <Loading label="Loading auto top-up…" />
      ) : (
        <>
          {topUp && (
            <AutoTopUpStatus
              topUp={topUp}
              onCancelled={(nonces) => {
                setCancelled(nonces);
                refresh();
              }}
            />
          )}
          {cancelled && cancelled.length > 0 && (
            <CancelOnChain nonces={cancelled} onDone={() => setCancelled(null)} />
          )}
          {(!topUp || topUp.paused) && <AutoTopUpForm onSaved={refresh} />}
        </>
      )}
    </section>
  );
}

function AutoTopUpStatus({
  topUp,
  onCancelled,
}: {
  topUp: {
    threshold: string;
    remaining: number;
    paused: boolean;
    pausedReason?: string | null;
    nonces: string[];
  };
  onCancelled(nonces: Hex[]): void;
}) {
  const [{ fetching }, cancel] = useMutation(CancelAutoTopUpMutation);
  const [cancelError, setCancelError] = useState<string | null>(null);
  return (
    <div data-testid="auto-top-up-status">
      {topUp.paused ? (
        <p className="alert alert-error" role="alert">
          Paused: the last submission failed ({topUp.pausedReason ?? 'unknown reason'}). Sign new
          authorizations below to resume.
        </p>
      ) : (
        <p className="alert alert-ok" role="status">
          On: below {displayCredits(topUp.threshold)} credits, the next of {topUp.remaining} stored
          authorization{topUp.remaining === 1 ? '' : 's'} is submitted.
        </p>
      )}
      <div className="row">
        <button
          type="button"
          className="danger"
          disabled={fetching}
          onClick={async () => {
            setCancelError(null);
            const nonces = topUp.nonces as Hex[];
            const result = await cancel({});
            if (result.error) return setCancelError(describeGraphqlError(result.error));
            onCancelled(nonces);
          }}
        >
          {fetching ? 'Cancelling…' : 'Cancel auto top-up'}
        </button>
      </div>
      {cancelError && (
        <p className="alert alert-error" role="alert">
          {cancelError}
        </p>
      )}
    </div>
  );
}

function CancelOnChain({ nonces, onDone }: { nonces: Hex[]; onDone(): void }) {
  const config = usePaymentConfig();
  const signer = useAutoTopUpSigner({
    chainId: config.chainId,
    token: config.tokenAddress as Address,
    treasury: config.treasuryAddress as Address,
  });
  const [progress, setProgress] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  return (
    <div className="alert alert-info" role="status" data-testid="cancel-on-chain">
      <span>
        Auto top-up is cancelled: ChainMeter deleted its {nonces.length} unused authorization
        {nonces.length === 1 ? '' : 's'}. You may also cancel them on chain (one transaction each, paid in
        gas), so that no copy can ever be used. {progress}
        {failure && <span className="field-error"> {failure}</span>}
      </span>
      <span className="banner-actions">
        <button
          type="button"
          disabled={!signer.ready || progress !== null}
          onClick={async () => {
            setFailure(null);
            setProgress(`Cancelled 0 of ${nonces.length}…`);
            try {
              await signer.cancelOnChain(nonces, (done) =>
                setProgress(`Cancelled ${done} of ${nonces.length}.`),
              );
              setProgress(`All ${nonces.length} cancelled on chain.`);
            } catch (error) {
              setProgress(null);
              setFailure(error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error));
            }
          }}
        >
          Cancel on chain too
        </button>
        <button type="button" className="ghost" onClick={onDone}>
          Done
        </button>
      </span>
    </div>
  );
}

function AutoTopUpForm({ onSaved }: { onSaved(): void }) {
  const id = useId();
  const config = usePaymentConfig();
  const signer = useAutoTopUpSigner({
    chainId: config.chainId,
    token: config.tokenAddress as Address,
    treasury: config.treasuryAddress as Address,
  });
  const [threshold, setThreshold] = useState('');
  const [amount, setAmount] = useState('10');
  const [count, setCount] = useState('3');
  const [until, setUntil] = useState(() => new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10));
  const [status, setStatus] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [{ fetching }, save] = useMutation(SetAutoTopUpMutation);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setFormError(null);
    const below = readPositiveCredits(threshold, 'The threshold');
    if (!below.ok) return setFormError(below.reason);
    let units: bigint;
    try {
      units = parseUnits(amount.trim(), config.tokenDecimals);
    } catch {
      return setFormError('The amount is a number of USDC.');
    }
    if (units <= 0n) return setFormError('Each top-up must be more than zero USDC.');
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1 || n > 50) return setFormError('Sign 1 to 50 authorizations.');
    const validBefore = BigInt(Math.floor(new Date(`${until}T23:59:59Z`).getTime() / 1000));
    if (!(validBefore > BigInt(Math.floor(Date.now() / 1000)) + 3_600n)) {
      return setFormError('They must stay valid at least an hour: pick a later date.');
    }
    try {
      setStatus(`Signing 0 of ${n}…`);
      const authorizations = await signer.sign(n, units, validBefore, (done) =>
        setStatus(`Signed ${done} of ${n}…`),
      );
      setStatus('Storing…');
      const result = await save({ input: { threshold: below.credits, authorizations } });
      setStatus(null);
      if (!result.data) {
        return setFormError(result.error ? describeGraphqlError(result.error) : 'The API gave no answer.');
      }
      onSaved();
    } catch (error) {
      setStatus(null);
      setFormError(error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error));
    }
  };

  return (
    <form className="form-grid" onSubmit={submit} noValidate data-testid="auto-top-up-form">
      <div className="field">
        <label htmlFor={`${id}-threshold`}>Top up below (credits)</label>
        <input
          id={`${id}-threshold`}
          inputMode="decimal"
          value={threshold}
          placeholder="e.g. 1000"
          onChange={(event) => setThreshold(event.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-amount`}>Amount each (USDC)</label>
        <input
          id={`${id}-amount`}
          inputMode="decimal"
          value={amount}
          onChange={(event) => setAmount(event.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-count`}>How many</label>
        <input
          id={`${id}-count`}
          type="number"
          min={1}
          max={50}
          value={count}
          onChange={(event) => setCount(event.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-until`}>Valid until</label>
        <input
          id={`${id}-until`}
          type="date"
          value={until}
          onChange={(event) => setUntil(event.target.value)}
        />
      </div>
      <div className="field field-submit">
        <button type="submit" className="primary" disabled={fetching || status !== null || !signer.ready}>
          {status ?? `Sign ${Number(count) > 0 ? count : ''} authorizations`}
        </button>
      </div>
      <p className="muted small form-wide">
        Each signature lets ChainMeter move that amount of USDC from your wallet to the treasury once, before
        the date; your wallet needs the USDC when one is used, not now.
        {signer.domainError && ' The token could not be read from the chain: check your network.'}
      </p>
      {formError && (
        <p className="alert alert-error form-wide" role="alert">
          {formError}
        </p>
      )}
    </form>
  );
}

function LowBalanceAlertForm({ threshold }: { threshold: string | null }) {
  const id = useId();
  const [value, setValue] = useState(threshold ?? '');
  const [formError, setFormError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [{ fetching }, setAlert] = useMutation(SetLowBalanceAlertMutation);

  const save = async (next: string | null) => {
    setFormError(null);
    setSaved(null);
    const result = await setAlert({ threshold: next });
    if (!result.data) {
      return setFormError(result.error ? describeGraphqlError(result.error) : 'The API gave no answer.');
    }
    const stored = result.data.setLowBalanceAlert.lowBalanceThreshold;
    setValue(stored ?? '');
    setSaved(stored === null ? 'The alert is off.' : `Alert set below ${displayCredits(stored)} credits.`);
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const read = readPositiveCredits(value, 'The threshold');
    if (!read.ok) return setFormError(read.reason);
    await save(read.credits);
  };

  return (
    <form className="form-grid" onSubmit={submit} noValidate>
      <div className="field">
        <label htmlFor={`${id}-threshold`}>Alert below (credits)</label>
        <input
          id={`${id}-threshold`}
          inputMode="decimal"
          value={value}
          placeholder="Off"
          onChange={(event) => setValue(event.target.value)}
        />
      </div>
      <div className="field field-submit">
        <button type="submit" className="primary" disabled={fetching}>
          {fetching ? 'Saving…' : 'Save alert'}
        </button>
      </div>
      {threshold !== null && (
        <div className="field field-submit">
          <button type="button" disabled={fetching} onClick={() => save(null)}>
            Turn off
          </button>
        </div>
      )}
      <p className="muted small form-wide" aria-live="polite" data-testid="alert-status">
        {saved ??
          (threshold === null ? 'No alert is set.' : `Alert set below ${displayCredits(threshold)} credits.`)}
      </p>
      {formError && (
        <p className="alert alert-error form-wide" role="alert">
          {formError}
        </p>
      )}
    </form>
  );
}
