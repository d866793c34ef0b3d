/**
 * API keys: create one (name, optional spend limit, per day/week/month or for the key's life, the models it
 * may call, expiry) and see its secret exactly once; the list with last use, spend in the current period and
 * allowed models; revoke with a confirmation. A wallet with the auditor role also chooses the key's scope
 * (its own account, or every account read-only for the audit CLI) and sees each key's scope: the API says
 * which scopes the caller may give (`availableApiKeyScopes`), and refuses any other.
 */
import { type FormEvent, useId, useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { ConfirmAction } from '../components/ConfirmAction';
import { SecretOnce } from '../components/SecretOnce';
import { Empty, ErrorState, Loading } from '../components/States';
import { type FragmentType, getFragmentData, graphql } from '../gql';
import type { ApiKeyScope, LimitReset } from '../gql/graphql';
import { describeGraphqlError } from '../lib/errors';
import { displayCredits, displayDateTime } from '../lib/format';
import { readPositiveCredits, tooLong } from '../lib/inputs';

/** The longest key name the API accepts (api/src/modules/apikeys/apikeys.service.ts). */
const MAX_KEY_NAME_LENGTH = 100;

const ApiKeyRowFields = graphql(`
  fragment ApiKeyRow_apiKey on ApiKey {
    id
    name
    prefix
    createdAt
    lastUsedAt
    revokedAt
    expiresAt
    spendLimit
    spent
    scope
    limitReset
    allowedModels
    spentThisPeriod
  }
`);

/** A key's limit period as the page says it, UTC boundaries (weeks from Monday). */
const PERIOD_LABEL: Record<LimitReset, string> = {
  DAILY: 'per day',
  WEEKLY: 'per week',
  MONTHLY: 'per month',
};

const ApiKeysQuery = graphql(`
  query ApiKeys {
    me {
      id
      availableApiKeyScopes
      apiKeys {
        id
        scope
        ...ApiKeyRow_apiKey
      }
    }
  }
`);

const CreateApiKeyMutation = graphql(`
  mutation CreateApiKey($input: CreateApiKeyInput!) {
    createApiKey(input: $input) {
      secret
      apiKey {
        id
        scope
        ...ApiKeyRow_apiKey
      }
    }
  }
`);

const RevokeApiKeyMutation = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) {
      id
      ...ApiKeyRow_apiKey
    }
  }
`);

export function ApiKeysPage() {
  const [{ data, fetching, error }, reexecute] = useQuery({ query: ApiKeysQuery });
  const [created, setCreated] = useState<{ name: string; secret: string; scope: ApiKeyScope } | null>(null);
  const keys = data?.me?.apiKeys ?? [];
  const auditor = data?.me?.availableApiKeyScopes.includes('AUDITOR') ?? false;
  // Scopes matter only to auditors, and to a wallet that made AUDITOR keys before it lost the role.
  const showScope = auditor || keys.some((key) => key.scope === 'AUDITOR');
  return (
    <div className="page">
      <section className="card" aria-labelledby="keys-title">
        <h1 id="keys-title">API keys</h1>
        <p className="muted">
          Keys let your code call the API (<code>Authorization: Bearer cm_…</code>) and the OpenAI-compatible{' '}
          <code>/v1</code> endpoint, billed to your balance.
        </p>
        {created ? (
          <SecretOnce
            warning={
              // One flex item: the alert spreads its children apart.
              <span>
                Copy the secret of “{created.name}” now. It is shown only once: ChainMeter stores only its
                hash.
                {created.scope === 'AUDITOR' && (
                  <>
                    {' '}
                    It is an auditor key: give it to the audit CLI,{' '}
                    <code>
                      npm run audit -- --api {window.location.origin} --key {'<secret>'}
                    </code>
                    .
                  </>
                )}
              </span>
            }
            label="Secret"
            secret={created.secret}
            onDone={() => setCreated(null)}
            testId="secret-once"
            secretTestId="api-key-secret"
          />
        ) : (
          <CreateKeyForm
            auditor={auditor}
            onCreated={(name, secret, scope) => {
              setCreated({ name, secret, scope });
              reexecute({ requestPolicy: 'network-only' });
            }}
          />
        )}
      </section>
      <section className="card" aria-labelledby="keys-list-title">
        <h2 id="keys-list-title">Your keys</h2>
        {error && !data ? (
          <ErrorState
            message={describeGraphqlError(error)}
            onRetry={() => reexecute({ requestPolicy: 'network-only' })}
          />
        ) : fetching && !data ? (
          <Loading label="Loading keys…" />
        ) : keys.length === 0 ? (
          <Empty>No keys yet. Create one above to call the API from your code.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <caption className="visually-hidden">API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col" className="num">
                    Spent
                  </th>
                  <th scope="col">Models</th>
                  {showScope && <th scope="col">Scope</th>}
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.map((key) => (
                  <ApiKeyRow key={key.id} apiKey={key} showScope={showScope} auditor={auditor} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

function CreateKeyForm({
  auditor,
  onCreated,
}: {
  /** The caller may create AUDITOR keys: the form offers the scope, else it sends none (ACCOUNT). */
  auditor: boolean;
  onCreated(name: string, secret: string, scope: ApiKeyScope): void;
}) {
  const id = useId();
  const [name, setName] = useState('');
  const [scope, setScope] = useState<ApiKeyScope>('ACCOUNT');
  const [limit, setLimit] = useState('');
  const [reset, setReset] = useState<LimitReset | ''>('');
  const [models, setModels] = useState('');
  const [expires, setExpires] = useState('');
  const [formError, setFormError] = useState<string | null>(null);
  const [{ fetching }, createKey] = useMutation(CreateApiKeyMutation);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setFormError(null);
    if (!name.trim()) return setFormError('Give the key a name.');
    const longName = tooLong(name.trim(), MAX_KEY_NAME_LENGTH, 'The name');
    if (longName) return setFormError(longName);
    const spendLimit = limit.trim() ? readPositiveCredits(limit, 'The spend limit') : null;
    if (spendLimit && !spendLimit.ok) return setFormError(spendLimit.reason);
    if (reset && !limit.trim()) return setFormError('A reset needs a spend limit to reset.');
    const allowedModels = [
      ...new Set(
        models
          .split(',')
          .map((model) => model.trim())
          .filter(Boolean),
      ),
    ];
    const expiresAt = expires ? new Date(`${expires}T23:59:59.999Z`) : null;
    if (expiresAt && expiresAt.getTime() <= Date.now())
      return setFormError('The expiry must be in the future.');
    const result = await createKey({
      input: {
        name: name.trim(),
        spendLimit: spendLimit ? spendLimit.credits : null,
        limitReset: reset || null,
        allowedModels: allowedModels.length > 0 ? allowedModels : null,
        expiresAt: expiresAt ? expiresAt.toISOString() : null,
        scope: auditor ? scope : null,
      },
    });
    if (!result.data) {
      return setFormError(result.error ? describeGraphqlError(result.error) : 'The API gave no answer.');
    }
    onCreated(name.trim(), result.data.createApiKey.secret, result.data.createApiKey.apiKey.scope);
    setName('');
    setScope('ACCOUNT');
    setLimit('');
    setReset('');
    setModels('');
    setExpires('');
  };

  return (
    <form className="form-grid" onSubmit={submit} noValidate>
      <div className="field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input
          id={`${id}-name`}
          value={name}
          placeholder="e.g. backend-prod"
          onChange={(event) => setName(event.target.value)}
          required
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-limit`}>Spend limit (credits, optional)</label>
        <input
          id={`${id}-limit`}
          inputMode="decimal"
          value={limit}
          placeholder="No limit"
          onChange={(event) => setLimit(event.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-reset`}>Limit resets</label>
        <select
          id={`${id}-reset`}
          value={reset}
          aria-describedby={`${id}-budget-hint`}
          onChange={(event) => setReset(event.target.value as LimitReset | '')}
        >
          <option value="">Never</option>
          <option value="DAILY">Daily, 00:00 UTC</option>
          <option value="WEEKLY">Weekly, Monday 00:00 UTC</option>
          <option value="MONTHLY">Monthly, the 1st 00:00 UTC</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-models`}>Allowed models (optional)</label>
        <input
          id={`${id}-models`}
          value={models}
          placeholder="Any model"
          aria-describedby={`${id}-budget-hint`}
          onChange={(event) => setModels(event.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-expires`}>Expires (optional)</label>
        <input
          id={`${id}-expires`}
          type="date"
          value={expires}
          onChange={(event) => setExpires(event.target.value)}
        />
      </div>
      {auditor && (
        <fieldset className="form-wide scope-choices" data-testid="key-scope-choice">
          <legend>Scope</legend>
          <label className="check">
            <input
              type="radio"
              name={`${id}-scope`}
              value="ACCOUNT"
              checked={scope === 'ACCOUNT'}
              onChange={() => setScope('ACCOUNT')}
            />
            <span>This account only</span>
          </label>
          <label className="check">
            <input
              type="radio"
              name={`${id}-scope`}
              value="AUDITOR"
              checked={scope === 'AUDITOR'}
              aria-describedby={`${id}-auditor-hint`}
              onChange={() => setScope('AUDITOR')}
            />
            <span>
              Auditor: read every account's records, read-only
              <span id={`${id}-auditor-hint`} className="muted small block">
                For the audit CLI (<code>npm run audit -- --api … --key …</code>); only while your wallet
                keeps the auditor role.
              </span>
            </span>
          </label>
        </fieldset>
      )}
      <div className="field field-submit">
        <button type="submit" className="primary" disabled={fetching}>
          {fetching ? 'Creating…' : 'Create key'}
        </button>
      </div>
      <p id={`${id}-budget-hint`} className="muted small form-wide">
        With a reset, the spend limit is a budget per UTC day, week (from Monday) or month. Allowed models are
        comma-separated; a call to any other is refused before it reaches the model.
      </p>
      {formError && (
        <p className="alert alert-error form-wide" role="alert">
          {formError}
        </p>
      )}
    </form>
  );
}

function ApiKeyRow({
  apiKey: masked,
  showScope,
  auditor,
}: {
  apiKey: FragmentType<typeof ApiKeyRowFields>;
  showScope: boolean;
  /** The wallet has the auditor role now (its AUDITOR keys read every account only while it does). */
  auditor: boolean;
}) {
  const key = getFragmentData(ApiKeyRowFields, masked);
  const [{ fetching }, revoke] = useMutation(RevokeApiKeyMutation);
  const expired = key.expiresAt !== null && new Date(key.expiresAt).getTime() <= Date.now();
  const status = key.revokedAt ? 'Revoked' : expired ? 'Expired' : 'Active';
  return (
    <tr data-testid={`api-key-${key.name}`}>
      <td data-label="Name">
        <strong className="key-name">{key.name}</strong>
      </td>
      <td data-label="Key">
        <code>{key.prefix}…</code>
      </td>
      <td data-label="Created">{displayDateTime(key.createdAt)}</td>
      <td data-label="Last used">{key.lastUsedAt ? displayDateTime(key.lastUsedAt) : 'Never'}</td>
      <td data-label="Spent" className="num" data-testid="key-spent">
        {key.limitReset ? (
          <span>
            {displayCredits(key.spentThisPeriod)}
            <span className="muted">
              {' '}
              / {displayCredits(key.spendLimit ?? '0')} {PERIOD_LABEL[key.limitReset]}
            </span>
            <span className="muted small block">{displayCredits(key.spent)} in all</span>
          </span>
        ) : (
          <span>
            {displayCredits(key.spent)}
            {key.spendLimit !== null && <span className="muted"> / {displayCredits(key.spendLimit)}</span>}
          </span>
        )}
      </td>
      <td data-label="Models" data-testid="key-models">
        {key.allowedModels ? (
          <span className="small">
            {key.allowedModels.map((model) => (
              <code key={model} className="block">
                {model}
              </code>
            ))}
          </span>
        ) : (
          <span className="muted">Any</span>
        )}
      </td>
      {showScope && (
        <td data-label="Scope" data-testid="key-scope">
          {key.scope === 'AUDITOR' ? (
            <span>
              <span className="badge badge-pending">Auditor</span>
              <span className="muted small block">
                {auditor ? 'every account, read-only' : 'own account only: your wallet lost the auditor role'}
              </span>
            </span>
          ) : (
            <span className="muted">This account</span>
          )}
        </td>
      )}
      <td data-label="Status">
        <span>
          <span className={`badge ${status === 'Active' ? 'badge-ok' : 'badge-muted'}`}>{status}</span>
          {key.expiresAt && !key.revokedAt && (
            <span className="muted small"> until {displayDateTime(key.expiresAt)}</span>
          )}
        </span>
      </td>
      <td data-label="Actions" className="actions-cell">
        {status === 'Active' && (
          <ConfirmAction
            verb="Revoke"
            busyVerb="Revoking"
            target={key.name}
            consequence="Apps using it stop at once."
            busy={fetching}
            onConfirm={async () => {
              const result = await revoke({ id: key.id });
              return result.error ? describeGraphqlError(result.error) : null;
            }}
          />
        )}
      </td>
    </tr>
  );
}
