/**
 * urql on the API's own origin. The session is the httpOnly `cm_session` cookie that signIn sets, so
 * no token lives in page JavaScript; subscriptions use GraphQL over SSE (fetch), which carries the
 * same cookie.
 */
import { Client, cacheExchange, fetchExchange } from 'urql';

export function createGraphqlClient(): Client {
  return new Client({
    url: '/graphql',
    exchanges: [cacheExchange, fetchExchange],
    fetchSubscriptions: true,
    fetchOptions: { credentials: 'same-origin' },
    requestPolicy: 'cache-and-network',
  });
}
