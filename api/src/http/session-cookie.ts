/** The web client's httpOnly session cookie, set and cleared through the cookie store of the request. */
import type { SessionCookie } from '../context.ts';
import type { ApiConfig } from '../env.ts';
import { SESSION_COOKIE } from './caller.ts';

/** The request's cookie store (`@whatwg-node/server-plugin-cookies` puts one on yoga's request). */
export interface CookieStoreLike {
  get(name: string): Promise<{ value?: string } | null | undefined>;
  set(init: Record<string, unknown>): Promise<void>;
  delete(name: string): Promise<void>;
}

export function sessionCookie(
  store: CookieStoreLike,
  config: Pick<ApiConfig, 'publicOrigin'>,
): SessionCookie {
  const secure = config.publicOrigin.startsWith('https://');
  return {
    set: (token, expiresAt) =>
      store.set({
        name: SESSION_COOKIE,
        value: token,
        expires: expiresAt,
        httpOnly: true,
        sameSite: 'lax',
        path: '/',
        secure,
        domain: null,
      }),
    clear: () => store.delete(SESSION_COOKIE),
  };
}
