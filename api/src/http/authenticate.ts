/**
 * Turns the credential a request carries into a viewer. One place for every transport: the
 * `Authorization: Bearer` header (GraphQL over HTTP and SSE, REST), the httpOnly session cookie (the web
 * client) and graphql-ws `connectionParams.authorization`. Session tokens start with `cms_`, API keys
 * with `cm_`.
 */

import type { Em } from '../db/orm.ts';
import type { ApiConfig } from '../env.ts';
import { isApiKeySecret, viewerFromApiKey } from '../modules/apikeys/apikeys.service.ts';
import { isSessionToken, viewerFromSessionToken } from '../modules/auth/auth.service.ts';
import type { Viewer } from '../viewer.ts';

export const SESSION_COOKIE = 'cm_session';

/** `Bearer abc` or a bare `abc` -> `abc`. */
export function bearerToken(authorization: unknown): string | null {
  if (typeof authorization !== 'string') return null;
  const token = authorization.replace(/^Bearer\s+/i, '').trim();
  return token.length > 0 && token.length <= 512 ? token : null;
}

export async function authenticate(
  em: Em,
  config: Pick<ApiConfig, 'auditorAddresses'>,
  token: string | null,
): Promise<Viewer | null> {
  if (!token) return null;
  if (isSessionToken(token)) return viewerFromSessionToken(em, config, token);
  // An API key: the token itself is never logged nor echoed in an error.
  if (isApiKeySecret(token)) return viewerFromApiKey(em, config, token);
  return null;
}
