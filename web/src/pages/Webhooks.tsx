/**
 * Webhooks: add an endpoint (URL and the events it wants) and see its signing secret exactly once; each
 * endpoint's deliveries, newest first, with their status, attempts, last response code and latency, and a
 * redelivery; delete an endpoint with a confirmation. The list refreshes itself while the page is open.
 */
import { type FormEvent, useEffect, useId, useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { ConfirmAction } from '../components/ConfirmAction';
import { SecretOnce } from '../components/SecretOnce';
import { Empty, ErrorState, Loading } from '../components/States';
import { type FragmentType, getFragmentData, graphql } from '../gql';
import type { WebhookEventType } from '../gql/graphql';
import { describeGraphqlError } from '../lib/errors';
import { displayDateTime } from '../lib/format';
import { tooLong } from '../lib/inputs';

const REFRESH_MS = 3_000;
/** The longest endpoint URL the API accepts (api/src/modules/webhooks/url-guard.ts). */
const MAX_URL_LENGTH = 2_048;

/** Every event type, with the words the form shows and the wire name receivers get. */
const EVENT_TYPES: { type: WebhookEventType; label: string; wire: string }[] = [
  { type: 'DEPOSIT_PENDING', label: 'Deposit pending', wire: 'deposit.pending' },
  { type: 'DEPOSIT_CREDITED', label: 'Deposit credited', wire: 'deposit.credited' },
  { type: 'DEPOSIT_REORGED', label: 'Deposit reorged', wire: 'deposit.reorged' },
  { type: 'BALANCE_LOW', label: 'Balance low', wire: 'balance.low' },
  { type: 'KEY_LIMIT_REACHED', label: 'Key limit reached', wire: 'key_limit.reached' },
  { type: 'AUTO_TOP_UP_SUBMITTED', label: 'Auto top-up submitted', wire: 'auto_top_up.submitted' },
  { type: 'AUTO_TOP_UP_FAILED', label: 'Auto top-up failed', wire: 'auto_top_up.failed' },
];

const wireName = (type: WebhookEventType) => EVENT_TYPES.find((e) => e.type === type)?.wire ?? type;

const WebhookDeliveryRowFields = graphql(`
  fragment WebhookDeliveryRow_delivery on WebhookDelivery {
    id
    webhookId
    eventType
    status
    attempts
    lastResponseCode
    createdAt
    deliveredAt
    attemptLog {
      id
      latencyMs
      error
    }
  }
`);

const WebhookEndpointFields = graphql(`
  fragment WebhookEndpoint_endpoint on WebhookEndpoint {
    id
    url
    events
    createdAt
    deliveries(first: 20) {
      edges {
        node {
          id
          ...WebhookDeliveryRow_delivery
        }
      }
    }
  }
`);

const WebhooksQuery = graphql(`
  query Webhooks {
    me {
      id
      webhookEndpoints {
        id
        ...WebhookEndpoint_endpoint
      }
    }
  }
`);

const CreateWebhookEndpointMutation = graphql(`
  mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {
    createWebhookEndpoint(input: $input) {
      secret
      endpoint {
        id
        url
      }
    }
  }
`);

const DeleteWebhookEndpointMutation = graphql(`
  mutation DeleteWebhookEndpoint($id: ID!) {
    deleteWebhookEndpoint(id: $id) {
      id
    }
  }
`);

const RedeliverWebhookMutation = graphql(`
  mutation RedeliverWebhook($deliveryId: ID!) {
    redeliverWebhook(deliveryId: $deliveryId) {
      id
      ...WebhookDeliveryRow_delivery
    }
  }
`);

export function WebhooksPage() {
  const [{ data, fetching, error }, reexecute] = useQuery({ query: WebhooksQuery });
  const [created, setCreated] = useState<{ url: string; secret: string } | null>(null);
  const refresh = () => reexecute({ requestPolicy: 'network-only' });
  useEffect(() => {
    const timer = setInterval(() => reexecute({ requestPolicy: 'network-only' }), REFRESH_MS);
    return () => clearInterval(timer);
  }, [reexecute]);
  const endpoints = data?.me?.webhookEndpoints ?? [];
  return (
    <div className="page">
      <section className="card" aria-labelledby="webhooks-title">
        <h1 id="webhooks-title">Webhooks</h1>
        <p className="muted">
          Your server is told about your events by a signed <code>POST</code> (Standard Webhooks: verify it
          with the <code>standardwebhooks</code> package and the endpoint's secret). Failed deliveries are
          retried for a day; receivers deduplicate on <code>webhook-id</code>.
        </p>
        {created ? (
          <SecretOnce
            warning={<>Copy the signing secret of {created.url} now. It is shown only once.</>}
            label="Signing secret"
            secret={created.secret}
            onDone={() => setCreated(null)}
            testId="webhook-secret-once"
            secretTestId="webhook-secret"
          />
        ) : (
          <CreateEndpointForm
            onCreated={(url, secret) => {
              setCreated({ url, secret });
              refresh();
            }}
          />
        )}
      </section>
      {error && !data ? (
        <section className="card">
          <ErrorState message={describeGraphqlError(error)} onRetry={refresh} />
        </section>
      ) : fetching && !data ? (
        <section className="card">
          <Loading label="Loading endpoints…" />
        </section>
      ) : endpoints.length === 0 ? (
        <section className="card">
          <Empty>No endpoints yet. Add one above to be told when your deposits arrive.</Empty>
        </section>
      ) : (
        endpoints.map((endpoint) => (
          <EndpointCard key={endpoint.id} endpoint={endpoint} onChanged={refresh} />
        ))
      )}
    </div>
  );
}

function CreateEndpointForm({ onCreated }: { onCreated(url: string, secret: string): void }) {
  const id = useId();
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<Set<WebhookEventType>>(
    () => new Set<WebhookEventType>(['DEPOSIT_CREDITED', 'DEPOSIT_REORGED']),
  );
  const [formError, setFormError] = useState<string | null>(null);
  const [{ fetching }, create] = useMutation(CreateWebhookEndpointMutation);

  const toggle = (type: WebhookEventType) =>
    setEvents((current) => {
      const next = new Set(current);
      if (next.has(type)) next.delete(type);
      else next.add(type);
      return next;
    });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setFormError(null);
    const trimmed = url.trim();
    if (!/^https?:\/\//i.test(trimmed)) return setFormError('Enter the URL of your endpoint, https://…');
    const longUrl = tooLong(trimmed, MAX_URL_LENGTH, 'The URL');
    if (longUrl) return setFormError(longUrl);
    if (events.size === 0) return setFormError('Choose at least one event.');
    const result = await create({
      input: { url: trimmed, events: EVENT_TYPES.map((e) => e.type).filter((type) => events.has(type)) },
    });
    if (!result.data) {
      return setFormError(result.error ? describeGraphqlError(result.error) : 'The API gave no answer.');
    }
    onCreated(trimmed, result.data.createWebhookEndpoint.secret);
    setUrl('');
  };

  return (
    <form className="form-grid" onSubmit={submit} noValidate>
      <div className="field form-wide">
        <label htmlFor={`${id}-url`}>Endpoint URL</label>
        <input
          id={`${id}-url`}
          type="url"
          value={url}
          placeholder="https://example.com/webhooks/chainmeter"
          onChange={(event) => setUrl(event.target.value)}
          required
        />
      </div>
      <fieldset className="form-wide event-choices">
        <legend>Events</legend>
        {EVENT_TYPES.map((e) => (
          <label key={e.type} className="check">
            <input type="checkbox" checked={events.has(e.type)} onChange={() => toggle(e.type)} />
            <span>
              {e.label}
              <code className="muted small">{e.wire}</code>
            </span>
          </label>
        ))}
      </fieldset>
      <div className="field field-submit">
        <button type="submit" className="primary" disabled={fetching}>
          {fetching ? 'Adding…' : 'Add endpoint'}
        </button>
      </div>
      {formError && (
        <p className="alert alert-error form-wide" role="alert">
          {formError}
        </p>
      )}
    </form>
  );
}

function EndpointCard({
  endpoint: masked,
  onChanged,
}: {
  endpoint: FragmentType<typeof WebhookEndpointFields>;
  onChanged(): void;
}) {
  const endpoint = getFragmentData(WebhookEndpointFields, masked);
  const [{ fetching }, remove] = useMutation(DeleteWebhookEndpointMutation);
  const deliveries = endpoint.deliveries.edges.map((edge) => edge.node);
  const titleId = useId();
  return (
    <section className="card" aria-labelledby={titleId} data-testid="webhook-endpoint">
      <div className="card-head">
        <div>
          <h2 id={titleId} className="endpoint-url">
            <code>{endpoint.url}</code>
          </h2>
          <p className="muted small">
            Since {displayDateTime(endpoint.createdAt)} · {endpoint.events.map(wireName).join(', ')}
          </p>
        </div>
        <div className="actions-cell">
          <ConfirmAction
            verb="Delete"
            busyVerb="Deleting"
            target={endpoint.url}
            consequence="Nothing more is sent to it."
            busy={fetching}
            onConfirm={async () => {
              const result = await remove({ id: endpoint.id });
              if (result.error) return describeGraphqlError(result.error);
              onChanged();
              return null;
            }}
          />
        </div>
      </div>
      {deliveries.length === 0 ? (
        <Empty>No deliveries yet: they appear here as your events happen.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="table">
            <caption className="visually-hidden">Deliveries to {endpoint.url}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col" className="num">
                  Attempts
                </th>
                <th scope="col" className="num">
                  Response
                </th>
                <th scope="col" className="num">
                  Latency
                </th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((delivery) => (
                <DeliveryRow key={delivery.id} delivery={delivery} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

const STATUS_BADGE: Record<string, string> = {
  DELIVERED: 'badge-ok',
  PENDING: 'badge-pending',
  FAILED: 'badge-error',
};

function DeliveryRow({ delivery: masked }: { delivery: FragmentType<typeof WebhookDeliveryRowFields> }) {
  const delivery = getFragmentData(WebhookDeliveryRowFields, masked);
  const [{ fetching }, redeliver] = useMutation(RedeliverWebhookMutation);
  const [redeliverError, setRedeliverError] = useState<string | null>(null);
  const last = delivery.attemptLog[0];
  return (
    <tr data-testid="webhook-delivery">
      <td data-label="Event">
        <code>{wireName(delivery.eventType)}</code>
        <div className="muted small" title="webhook-id">
          {delivery.webhookId.slice(0, 8)}…
        </div>
      </td>
      <td data-label="Status">
        <span className={`badge ${STATUS_BADGE[delivery.status] ?? 'badge-muted'}`}>{delivery.status}</span>
      </td>
      <td data-label="Attempts" className="num">
        {delivery.attempts}
      </td>
      <td data-label="Response" className="num" title={last?.error ?? undefined}>
        {delivery.lastResponseCode ?? (last?.error ? 'no answer' : '–')}
      </td>
      <td data-label="Latency" className="num">
        {last ? `${last.latencyMs} ms` : '–'}
      </td>
      <td data-label="Created">{displayDateTime(delivery.createdAt)}</td>
      <td data-label="Actions" className="actions-cell">
        <button
          type="button"
          disabled={fetching}
          onClick={async () => {
            setRedeliverError(null);
            const result = await redeliver({ deliveryId: delivery.id });
            if (result.error) setRedeliverError(describeGraphqlError(result.error));
          }}
        >
          {fetching ? 'Sending…' : 'Redeliver'}
          <span className="visually-hidden"> {wireName(delivery.eventType)}</span>
        </button>
        {redeliverError && (
          <span className="field-error small" role="alert">
            {redeliverError}
          </span>
        )}
      </td>
    </tr>
  );
}
