/**
 * urql on the API's own origin. The session is the httpOnly `cm_session` cookie that signIn sets, so
 * no token lives in page JavaScript; subscriptions use GraphQL over SSE (fetch), which carries the
 * same cookie. The API accepts the cookie only on requests another site could not have sent without a
 * CORS preflight (api/src/http/csrf.ts): JSON bodies, or any request with the CSRF header, which every
 * request here carries (urql sends queries as GETs).
 */
import { Client, cacheExchange, fetchExchange } from 'urql';

/** The API's CSRF header (api/src/http/csrf.ts). */
const CSRF_HEADER = 'x-graphql-yoga-csrf';

export function createGraphqlClient(): Client {
  return new Client({
    url: '/graphql',
    exchanges: [cacheExchange, fetchExchange],
    fetchSubscriptions: true,
    fetchOptions: { credentials: 'same-origin', headers: { [CSRF_HEADER]: '1' } },
    requestPolicy: 'cache-and-network',
  });
}
