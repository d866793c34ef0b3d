/**
 * The plain HTTP client of non-streaming upstream calls: a keep-alive `node:http(s)` POST of JSON, never
 * retried. It skips the SDK because a plain request measured 0.2 ms where the SDK took 0.7 ms (headers,
 * retry and parse layers over undici's fetch) on the development machine, paid on every metered call.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import { abortedByCaller, answerTimedOut, UpstreamError } from './upstream-error.ts';
import { firstHeaderValue } from './upstream-headers.ts';

/**
 * The largest answer read (after decoding): far above any completion (1,000,000 output tokens, the most a
 * request may ask for, are a few MB of JSON), small enough that an upstream cannot exhaust the memory.
 */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

const DECODERS: Record<string, (body: Buffer, maxOutputLength: number) => Buffer> = {
  gzip: (body, maxOutputLength) => zlib.gunzipSync(body, { maxOutputLength }),
  'x-gzip': (body, maxOutputLength) => zlib.gunzipSync(body, { maxOutputLength }),
  // HTTP's "deflate" is zlib-wrapped; some servers send it raw.
  deflate: (body, maxOutputLength) =>
    body.length > 0 && (body[0] as number) % 16 === 8
      ? zlib.inflateSync(body, { maxOutputLength })
      : zlib.inflateRawSync(body, { maxOutputLength }),
  br: (body, maxOutputLength) => zlib.brotliDecompressSync(body, { maxOutputLength }),
  zstd: (body, maxOutputLength) => zlib.zstdDecompressSync(body, { maxOutputLength }),
};

/**
 * The body as sent before its `content-encoding`s (applied in the order listed, so undone from the last).
 * An upstream may encode its answer whether or not it was asked to: read as it is, it would be garbage.
 */
function decodedBody(body: Buffer, contentEncoding: string | undefined): Buffer {
  const encodings = (contentEncoding ?? '')
    .split(',')
    .map((encoding) => encoding.trim().toLowerCase())
    .filter((encoding) => encoding !== '' && encoding !== 'identity');
  let decoded = body;
  for (const encoding of encodings.reverse()) {
    const decode = DECODERS[encoding];
    if (!decode)
      throw new UpstreamError('bad_response', `upstream answer in an unknown encoding: ${encoding}`);
    try {
      decoded = decode(decoded, MAX_ANSWER_BYTES);
    } catch (error) {
      throw new UpstreamError('bad_response', `upstream answer could not be decoded (${encoding})`, {
        cause: error,
      });
    }
  }
  return decoded;
}

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface JsonPoster {
  /** One POST; the whole exchange (headers and body) within the poster's `timeoutMs`. */
  post(
    url: URL,
    payload: unknown,
    options: { signal?: AbortSignal; headers?: Record<string, string> },
  ): Promise<RawAnswer>;
}

export function createJsonPoster(options: {
  protocol: string;
  timeoutMs: number;
  headers: Record<string, string>;
}): JsonPoster {
  const transport = options.protocol === 'https:' ? https : http;
  // An idle socket is closed after 4 s, or 1 s before the server's `Keep-Alive: timeout=` hint (as undici
  // does), so a request is never sent on a socket the upstream is closing (ECONNRESET, a failed call).
  // This timeout only applies to idle sockets: a call in progress is bounded by `timeoutMs` below.
  const agent = new transport.Agent({ keepAlive: true, timeout: 4_000 });

  function post(
    url: URL,
    payload: unknown,
    { signal, headers }: { signal?: AbortSignal; headers?: Record<string, string> },
  ): Promise<RawAnswer> {
    const body = JSON.stringify(payload);
    return new Promise<RawAnswer>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortedByCaller());
        return;
      }
      /** Why this side ended the call (timeout, abort), which the socket error that follows must not hide. */
      let endedBy: UpstreamError | null = null;
      const request = transport.request(url, {
        method: 'POST',
        agent,
        headers: { ...options.headers, ...headers, 'content-length': Buffer.byteLength(body) },
      });
      const stop = (error: UpstreamError) => {
        endedBy ??= error;
        request.destroy(error);
      };
      const timer = setTimeout(() => stop(answerTimedOut()), options.timeoutMs);
      const onAbort = () => stop(abortedByCaller());
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      request.on('error', (error: NodeJS.ErrnoException) => {
        done();
        reject(
          endedBy ??
            new UpstreamError('unavailable', `upstream unreachable: ${error.code ?? 'connection failed'}`, {
              cause: error,
            }),
        );
      });
      request.on('response', (response) => {
        const parts: Buffer[] = [];
        let size = 0;
        response.on('data', (part: Buffer) => {
          size += part.length;
          if (size > MAX_ANSWER_BYTES) {
            stop(new UpstreamError('bad_response', `upstream answer larger than ${MAX_ANSWER_BYTES} bytes`));
            return;
          }
          parts.push(part);
        });
        response.on('error', () => {}); // reported through 'close' below
        response.on('close', () => {
          done();
          if (!response.complete) {
            reject(endedBy ?? new UpstreamError('bad_response', 'upstream connection closed mid-answer'));
            return;
          }
          let body: Buffer;
          try {
            body = decodedBody(
              Buffer.concat(parts),
              firstHeaderValue(response.headers['content-encoding']) ?? undefined,
            );
          } catch (error) {
            reject(error);
            return;
          }
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: body.toString('utf8'),
          });
        });
      });
      request.end(body);
    });
  }

  return { post };
}
