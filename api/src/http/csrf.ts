/**
 * Request forgery (docs/security.md, "CSRF"): the session cookie rides every request the browser sends to
 * this origin, including the ones another site makes it send. A cross-site page can make a browser send,
 * without a CORS preflight, a form (`application/x-www-form-urlencoded`, `multipart/form-data`), a
 * `text/plain` body or a GET (a link, an image, an EventSource); it cannot send any other content type nor
 * a custom header without the preflight, which this API never grants with credentials.
 *
 * So the cookie is a credential only on a request that a browser would have preflighted: a body whose
 * content type is not one of those three (in practice `application/json`), or the header
 * {@link CSRF_HEADER}, the rule of yoga's and Apollo's CSRF prevention. A request carrying the cookie that
 * is neither is refused before anything runs; a Bearer credential (never sent by a browser on its own)
 * is unaffected. A request that is not preflighted also never receives a session cookie (signIn), so a
 * cross-site form cannot sign a browser into someone else's account either.
 */
import { forbidden } from '../errors.ts';

/** The header the web client sends with every GraphQL request (GETs included); its value is not read. */
const CSRF_HEADER = 'x-graphql-yoga-csrf';

/** What a browser sends cross-site without a preflight (the CORS-safelisted request content types). */
const SIMPLE_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'text/plain',
]);

/** True when a browser could only have sent `headers` after a CORS preflight (or from this origin). */
export function isPreflighted(headers: Pick<Headers, 'get' | 'has'>): boolean {
  if (headers.has(CSRF_HEADER)) return true;
  const contentType = headers.get('content-type');
  if (!contentType) return false;
  const mediaType = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  return mediaType !== '' && !SIMPLE_CONTENT_TYPES.has(mediaType);
}

/** The refusal of a cookie-authenticated request that is not preflighted: 403, FORBIDDEN, and how to fix it. */
export function cookieNotAccepted() {
  const error = forbidden(
    `The session cookie is accepted only on requests a browser preflights: send the GraphQL request as JSON (Content-Type: application/json) or with the header ${CSRF_HEADER}: 1. Integrators: use Authorization: Bearer <API key>.`,
  );
  (error.extensions as Record<string, unknown>).http = { status: 403 };
  return error;
}
