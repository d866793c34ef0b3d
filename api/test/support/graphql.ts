/**
 * A minimal GraphQL-over-HTTP caller and a graphql-ws subscriber for the integration tests: they talk to
 * the API exactly as an outside client does (HTTP POST, Bearer token, WebSocket with connectionParams).
 */
import { createClient } from 'graphql-ws';
import type { PrivateKeyAccount } from 'viem';
import { waitFor } from './wait-for.ts';

export interface GraphQLResponse<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export async function gql<T = Record<string, unknown>>(
  apiUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  token?: string,
): Promise<GraphQLResponse<T> & { status: number }> {
  const response = await fetch(`${apiUrl}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, ...((await response.json()) as GraphQLResponse<T>) };
}

/** Like `gql`, but fails the test on any error and returns `data`. */
export async function gqlData<T = Record<string, unknown>>(
  apiUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  token?: string,
): Promise<T> {
  const result = await gql<T>(apiUrl, query, variables, token);
  if (result.errors?.length || !result.data) {
    throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  }
  return result.data;
}

export async function signIn(apiUrl: string, account: PrivateKeyAccount, chainId: number): Promise<string> {
  const { siweChallenge } = await gqlData<{ siweChallenge: string }>(
    apiUrl,
    'mutation($address: Address!, $chainId: Int!) { siweChallenge(address: $address, chainId: $chainId) }',
    { address: account.address, chainId },
  );
  const signature = await account.signMessage({ message: siweChallenge });
  const { signIn: session } = await gqlData<{ signIn: { token: string } }>(
    apiUrl,
    'mutation($message: String!, $signature: String!) { signIn(message: $message, signature: $signature) { token } }',
    { message: siweChallenge, signature },
  );
  return session.token;
}

/** A graphql-ws subscription that records every event; `waitFor` resolves on the first matching one. */
export interface Recorder<T> {
  events: T[];
  errors: unknown[];
  /** Whether the server ended the subscription. */
  readonly completed: boolean;
  waitFor(predicate: (event: T) => boolean, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

/** Per API: the subscription being set up, so that each `subscribe` sees only its own start. */
const settingUp = new Map<string, Promise<unknown>>();

/**
 * Opens a subscription and resolves once the server hears its channel (its listener is attached and, with
 * Redis, the SUBSCRIBE confirmed), so that an event triggered next reaches it; or once the server refused
 * or ended it. The acknowledged connection alone is not enough: the server sets the subscription up
 * asynchronously. The sign is `chainmeter_graphql_subscriptions_started_total` on the API's open /metrics;
 * subscriptions to one API are set up one at a time, so its rise is this one's.
 */
export function subscribe<T>(
  apiUrl: string,
  query: string,
  token?: string,
  variables?: Record<string, unknown>,
): Promise<Recorder<T>> {
  const previous = settingUp.get(apiUrl) ?? Promise.resolve();
  const recorder = previous.then(() => openSubscription<T>(apiUrl, query, token, variables));
  settingUp.set(
    apiUrl,
    recorder.catch(() => {}),
  );
  return recorder;
}

/** How many subscriptions the API has started so far, all channels. */
async function subscriptionsStarted(apiUrl: string): Promise<number> {
  const response = await fetch(`${apiUrl}/metrics`);
  if (!response.ok) throw new Error(`subscribe reads ${apiUrl}/metrics, which answered ${response.status}`);
  let started = 0;
  for (const line of (await response.text()).split('\n')) {
    const match = /^chainmeter_graphql_subscriptions_started_total(?:\{[^}]*\})? (\d+)$/.exec(line);
    if (match) started += Number(match[1]);
  }
  return started;
}

async function openSubscription<T>(
  apiUrl: string,
  query: string,
  token: string | undefined,
  variables: Record<string, unknown> | undefined,
  startTimeoutMs = 15_000,
): Promise<Recorder<T>> {
  const startedBefore = await subscriptionsStarted(apiUrl);
  const client = createClient({
    url: `${apiUrl.replace(/^http/, 'ws')}/graphql`,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    lazy: false,
    retryAttempts: 0,
  });
  const events: T[] = [];
  const errors: unknown[] = [];
  let completed = false;
  const waiters = new Set<() => void>();
  const dispose = client.subscribe<T>(
    { query, variables },
    {
      next: (value) => {
        if (value.errors) errors.push(...value.errors);
        if (value.data) events.push(value.data as T);
        for (const wake of waiters) wake();
      },
      error: (error) => {
        errors.push(error);
        for (const wake of waiters) wake();
      },
      complete: () => {
        completed = true;
      },
    },
  );
  // Refused or ended by the server counts as set up too: the caller asserts on it.
  await waitFor(
    `the server to start the subscription ${query}`,
    async () => errors.length > 0 || completed || (await subscriptionsStarted(apiUrl)) > startedBefore,
    startTimeoutMs,
  ).catch(async (error: unknown) => {
    dispose();
    await client.dispose();
    throw error;
  });
  return {
    events,
    errors,
    get completed() {
      return completed;
    },
    waitFor: (predicate, timeoutMs = 30_000) =>
      new Promise<T>((resolve, reject) => {
        const check = () => {
          const found = events.find(predicate);
          if (found) {
            cleanup();
            resolve(found);
          } else if (errors.length > 0) {
            cleanup();
            reject(new Error(`subscription error: ${JSON.stringify(errors)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    close: async () => {
      dispose();
      await client.dispose();
    },
  };
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}
