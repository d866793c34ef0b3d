/**
 * A minimal GraphQL-over-HTTP caller and a graphql-ws subscriber for the integration tests: they talk to
 * the API exactly as an outside client does (HTTP POST, Bearer token, WebSocket with connectionParams).
 */
import { createClient } from 'graphql-ws';
import type { PrivateKeyAccount } from 'viem';

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

export async function subscribe<T>(
  apiUrl: string,
  query: string,
  token?: string,
  variables?: Record<string, unknown>,
): Promise<Recorder<T>> {
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
  let acknowledged!: () => void;
  const ready = new Promise<void>((resolve) => {
    acknowledged = resolve;
  });
  client.on('connected', () => acknowledged());
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
  await ready;
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
