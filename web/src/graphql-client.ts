/**
 * urql on the API's own origin. The session is the httpOnly `cm_session` cookie that signIn sets, so
 * no token lives in page JavaScript; subscriptions use GraphQL over SSE (fetch), which carries the
 * same cookie. The API accepts the cookie only on requests another site could not have sent without a
 * CORS preflight (api/src/http/csrf.ts): JSON bodies, or any request with the CSRF header, which every
 * request here carries (urql sends queries as GETs).
 */
import { Client, cacheExchange, fetchExchange, mapExchange, type OperationResult } from 'urql';

/** The API's CSRF header (api/src/http/csrf.ts). */
const CSRF_HEADER = 'x-graphql-yoga-csrf';

/**
 * Fires `unauthenticated` whenever an answer shows the request carried no live session: an
 * UNAUTHENTICATED error, or a query's `me` answered null. The session decides whether that ends a
 * sign-in (it may be the first check of a visitor who never signed in).
 */
export const authEvents = new EventTarget();

function showsNoSession(result: OperationResult): boolean {
  if (result.error?.graphQLErrors.some((error) => error.extensions?.code === 'UNAUTHENTICATED')) return true;
  const data = result.data as Record<string, unknown> | null | undefined;
  return result.operation.kind === 'query' && data != null && 'me' in data && data.me === null;
}

export function createGraphqlClient(): Client {
  return new Client({
    url: '/graphql',
    exchanges: [
      cacheExchange,
      mapExchange({
        onResult(result) {
          if (showsNoSession(result)) authEvents.dispatchEvent(new Event('unauthenticated'));
        },
      }),
      fetchExchange,
    ],
    fetchSubscriptions: true,
    fetchOptions: { credentials: 'same-origin', headers: { [CSRF_HEADER]: '1' } },
    requestPolicy: 'cache-and-network',
  });
}
