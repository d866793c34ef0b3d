/**
 * Balance settings: the low-balance alert (a threshold in credits, or off) and auto top-up.
 */
import { parseCredits } from '@chainmeter/schema';
import { type FormEvent, useId, useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { ErrorState, Loading } from '../components/States';
import { graphql } from '../gql';
import { describeGraphqlError } from '../lib/errors';
import { displayCredits } from '../lib/format';

const SettingsQuery = graphql(`
  query BalanceSettings {
    me {
      id
      balance
      lowBalanceThreshold
    }
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
    </div>
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
    try {
      if (parseCredits(value.trim()) <= 0n) return setFormError('The threshold must be more than zero.');
    } catch {
      return setFormError('The threshold is a number of credits with at most 3 decimals.');
    }
    await save(value.trim());
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
