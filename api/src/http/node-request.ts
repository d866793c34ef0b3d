/**
 * The metered call's request read straight from Node's `IncomingMessage` (`c.env.incoming` on
 * @hono/node-server), for the one route where every call pays for it: reading the body or the abort
 * signal through `c.req.raw` builds a whole WHATWG Request (headers object, body as a web stream) per
 * call, which cost the API more CPU than its hold. Elsewhere (no Node request: `app.request()`), the
 * same answers come from `c.req`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from 'hono';

interface NodeBindings {
  incoming?: IncomingMessage;
  outgoing?: ServerResponse;
}

const nodeOf = (c: Context): NodeBindings => (c.env ?? {}) as NodeBindings;

/** Served by Node (@hono/node-server), not through `app.request()`. */
export const hasNodeRequest = (c: Context): boolean => nodeOf(c).incoming !== undefined;

/** A request header (first value when repeated), case-insensitive. */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = nodeOf(c).incoming;
  if (!incoming) return c.req.header(name);
  const value = incoming.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

export type JsonBody = { ok: true; value: unknown } | { ok: false; reason: 'too_large' | 'invalid_json' };

/**
 * The body parsed as JSON, refused as `too_large` past `maxBytes` whether the size is declared
 * (`content-length`) or not (chunked: counted as the bytes arrive, and the rest is not read).
 */
export async function readJsonBody(c: Context, maxBytes: number): Promise<JsonBody> {
  const incoming = nodeOf(c).incoming;
  let text: string;
  if (!incoming) {
    text = await c.req.text();
    if (Buffer.byteLength(text) > maxBytes) return { ok: false, reason: 'too_large' };
  } else {
    if (Number(incoming.headers['content-length'] ?? 0) > maxBytes) return { ok: false, reason: 'too_large' };
    const body = await readUpTo(incoming, maxBytes);
    if (body === null) return { ok: false, reason: 'too_large' };
    text = body.toString('utf8');
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, reason: 'invalid_json' };
  }
}

/** What a WHATWG Request is built with: its class and its init. */
type RequestClass = new (url: string, init: RequestInit) => Request;

/**
 * The request as a WHATWG Request of class `RequestClass` (yoga's own, `yoga.fetchAPI.Request`), built from
 * Node's `IncomingMessage`: its headers as Node parsed them, its body read whole (refused as null past
 * `maxBytes`, declared or counted), aborted when the client goes away. The Request @hono/node-server
 * builds (`c.req.raw`, undici's, its body a web stream over the Node stream) cost the GraphQL read path
 * more than its resolvers; undefined without a Node request (`app.request()`: use `c.req.raw`).
 */
export async function nodeRequestAs(
  c: Context,
  RequestClass: RequestClass,
  maxBytes: number,
): Promise<Request | null | undefined> {
  const { incoming } = nodeOf(c);
  if (!incoming) return undefined;
  const method = incoming.method ?? 'GET';
  let body: string | undefined;
  if (method !== 'GET' && method !== 'HEAD') {
    if (Number(incoming.headers['content-length'] ?? 0) > maxBytes) return null;
    const bytes = await readUpTo(incoming, maxBytes);
    if (bytes === null) return null;
    body = bytes.toString('utf8');
  }
  return new RequestClass(c.req.url, {
    method,
    headers: incoming.headers as Record<string, string>,
    body,
    signal: clientGoneSignal(c),
  });
}

/** The client hung up before its request's body was read: there is nobody to answer. */
class ClientGoneError extends Error {
  override name = 'ClientGoneError';
  constructor() {
    super('the client closed the connection before its request body was read');
  }
}

/**
 * The whole body, or null as soon as it passes `maxBytes`: reading stops there (the stream is paused, not
 * destroyed, so the 413 can still be sent; @hono/node-server discards the rest once the response is out).
 * Rejects with {@link ClientGoneError} when the client hung up before the body was read (while its
 * credential was being checked, say): Node then destroys the request without an 'end' or an 'error', and
 * waiting for them would keep the request's handler, and all it holds, forever.
 */
function readUpTo(incoming: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    if (incoming.destroyed) {
      reject(new ClientGoneError());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      incoming.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        stop();
        incoming.pause();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    // Destroyed before its end: no 'end' will come ('error', if any, is emitted before 'close').
    const onClose = () => {
      stop();
      reject(new ClientGoneError());
    };
    incoming.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/**
 * Whether the client went away before its response was complete: the connection closed with the response
 * unfinished (a tab closed on a live subscription, a caller that gave up).
 */
export function clientWentAway(c: Context): boolean {
  const outgoing = nodeOf(c).outgoing;
  if (!outgoing) return c.req.raw.signal.aborted;
  return outgoing.destroyed && !outgoing.writableFinished;
}

/**
 * Closes the client's connection now (a client that stopped taking its stream); without a Node response
 * (`app.request()`) there is none to close.
 */
export function hangUp(c: Context): void {
  nodeOf(c).outgoing?.destroy();
}

/** Aborted when the client goes away before the response is complete. */
export function clientGoneSignal(c: Context): AbortSignal {
  const outgoing = nodeOf(c).outgoing;
  if (!outgoing) return c.req.raw.signal;
  const controller = new AbortController();
  outgoing.once('close', () => {
    if (!outgoing.writableFinished) controller.abort(new Error('client connection closed'));
  });
  return controller.signal;
}

/** The content types of yoga's single results (a query's or a mutation's): one JSON text, never a stream. */
const SINGLE_RESULT_TYPE = /^application\/(?:graphql-response\+)?json\b/i;

/**
 * Yoga's answer to a request served by Node, as a Response that @hono/node-server writes in one go. Yoga's
 * own Response (its ponyfill) hands the server its body as a web stream, which the server reads chunk by
 * chunk, waiting a timer turn for the first one: for a single JSON result that is a second copy of the body
 * and a timer per request. The same status, headers and text go out; streams (SSE subscriptions, incremental
 * delivery) and pages pass through as they are, and so does everything without a Node request.
 */
export async function singleResultResponse(c: Context, response: Response): Promise<Response> {
  if (!hasNodeRequest(c) || !SINGLE_RESULT_TYPE.test(response.headers.get('content-type') ?? '')) {
    return response;
  }
  // `Response` is @hono/node-server's (it replaces the global when it serves): it keeps the text and the
  // headers as given and writes them without a stream, with the text's own content-length.
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  return new Response(await response.text(), { status: response.status, headers });
}
