/**
 * Who the caller is, for every transport: the `Authorization: Bearer` header (GraphQL over HTTP and SSE,
 * REST), graphql-ws `connectionParams.authorization`, and the web client's httpOnly session cookie.
 * Session tokens start with `cms_`, API keys with `cm_`; a token is never logged nor echoed in an error.
 */
import type { AppServices } from '../context.ts';
import { sqlFor } from '../db/sql.ts';
import type { AccountRecord } from '../modules/accounts/accounts.store.ts';
import { type ApiKeyCheck, callerFromApiKey, isApiKeySecret } from '../modules/apikeys/apikeys.service.ts';
import { callerFromSessionToken, isSessionToken } from '../modules/auth/auth.service.ts';
import type { Viewer } from '../viewer.ts';
import { cookieNotAccepted } from './csrf.ts';

export const SESSION_COOKIE = 'cm_session';

/** `Bearer abc` or a bare `abc` -> `abc`. */
export function bearerToken(authorization: unknown): string | null {
  if (typeof authorization !== 'string') return null;
  const token = authorization.replace(/^Bearer\s+/i, '').trim();
  return token.length > 0 && token.length <= 512 ? token : null;
}

/** Where a request carries its credential. */
interface CallerCredentials {
  /** `Authorization` values in order of precedence (graphql-ws params, the header): the first token wins. */
  authorization: readonly unknown[];
  /**
   * The session cookie, read only when no `Authorization` token is present; absent where the transport
   * never reads it. A request that carries it without being `accepted` (one a browser can send cross-site)
   * is refused with FORBIDDEN (see http/csrf.ts).
   */
  sessionCookie?: { value: string | null | undefined; accepted: boolean };
}

export interface Caller {
  viewer: Viewer;
  /** Set when the API key was taken on trust from `recentApiKeys`: the call's hold checks it is still live. */
  keyCheck?: ApiKeyCheck;
  /** The account's row, read with the credential (absent when the key was taken on trust). */
  account?: AccountRecord;
}

interface ResolveCallerOptions {
  /**
   * How `recentApiKeys` is used for an API key (by default not at all: its row is read now). `claim`: a key
   * this replica saw lately is taken on trust with a `keyCheck` (the metered call's hold checks it), any
   * other key is read now and remembered. `refresh`: the key is read now and remembered, or forgotten when
   * it is dead.
   */
  recentApiKeys?: 'claim' | 'refresh';
}

/**
 * The caller of a request, or null when it carries no credential or one that is unknown, revoked or
 * expired. Throws FORBIDDEN for a session cookie on a request that may not use it.
 *
 * @example
 * const caller = await resolveCaller(services, { authorization: [c.req.header('authorization')] });
 */
export async function resolveCaller(
  services: Pick<AppServices, 'orm' | 'config' | 'recentApiKeys'>,
  credentials: CallerCredentials,
  options: ResolveCallerOptions = {},
): Promise<Caller | null> {
  let token = firstToken(credentials.authorization);
  if (!token && credentials.sessionCookie?.value) {
    // A cross-site page can make the browser send the cookie on a form, text/plain body or GET.
    if (!credentials.sessionCookie.accepted) throw cookieNotAccepted();
    token = bearerToken(credentials.sessionCookie.value);
  }
  if (!token) return null;
  const { config, recentApiKeys } = services;
  // On the ORM's own connections, not through an EntityManager: most requests need none.
  if (isSessionToken(token)) return callerFromSessionToken(sqlFor(services.orm).query, config, token);
  if (!isApiKeySecret(token)) return null;
  if (options.recentApiKeys === 'claim') {
    const claim = recentApiKeys.claim(config, token);
    if (claim) return { viewer: claim.viewer, keyCheck: claim.check };
  }
  const remember = options.recentApiKeys ? recentApiKeys : undefined;
  return callerFromApiKey(sqlFor(services.orm).query, config, token, new Date(), remember);
}

function firstToken(values: readonly unknown[]): string | null {
  for (const value of values) {
    const token = bearerToken(value);
    if (token) return token;
  }
  return null;
}
