/**
 * One signed webhook request: `POST` of `{ type, timestamp, data }`, signed the Standard Webhooks way with
 * the `standardwebhooks` package (`webhook-id` is the event's id, the same on every retry; `webhook-timestamp`
 * is the attempt's). No redirect is followed (a 3xx is a failed attempt), the whole attempt has a deadline,
 * and no more than a short excerpt of the response is read. Unless private URLs are allowed, the connection
 * goes only to addresses checked when it is made (`guardedLookup`, against DNS rebinding).
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { guardedLookup, hostOf, isPublicAddress, urlProblem } from './url-guard.ts';
import type { WebhookEventType } from './webhook-events.store.ts';

/** Bytes of a response body kept for the delivery log. */
export const RESPONSE_EXCERPT_BYTES = 512;

/** The wire name of an event type: `DEPOSIT_CREDITED` -> `deposit.credited`, `AUTO_TOP_UP_FAILED` -> `auto_top_up.failed`. */
export function wireEventType(type: WebhookEventType): string {
  const lower = type.toLowerCase();
  const cut = lower.lastIndexOf('_');
  return `${lower.slice(0, cut)}.${lower.slice(cut + 1)}`;
}

export interface WebhookMessage {
  /** The `webhook-id`: stable across retries, receivers deduplicate on it. */
  id: string;
  type: WebhookEventType;
  /** When the event happened. */
  occurredAt: Date;
  data: Record<string, unknown>;
}

export function webhookBody(message: WebhookMessage): string {
  return JSON.stringify({
    type: wireEventType(message.type),
    timestamp: message.occurredAt.toISOString(),
    data: message.data,
  });
}

export interface SendOptions {
  timeoutMs: number;
  allowPrivateUrls: boolean;
  /** The attempt's time (the signed `webhook-timestamp`). */
  now?: Date;
}

export interface SendResult {
  responseCode: number | null;
  error: string | null;
  responseExcerpt: string | null;
  latencyMs: number;
}

/** Sends `message` to `url` signed with `secret` (`whsec_...`); never throws: a failure is in the result. */
export async function sendWebhook(
  url: string,
  secret: string,
  message: WebhookMessage,
  options: SendOptions,
): Promise<SendResult> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  const refused = (error: string): SendResult => ({
    responseCode: null,
    error,
    responseExcerpt: null,
    latencyMs: latency(),
  });
  const problem = urlProblem(url, options.allowPrivateUrls);
  if (problem) return refused(`the URL ${problem}`);
  const target = new URL(url);
  const host = hostOf(target);
  if (!options.allowPrivateUrls && isIP(host) !== 0 && !isPublicAddress(host)) {
    return refused(`${host} is a private or reserved address`);
  }
  const body = webhookBody(message);
  const timestamp = options.now ?? new Date();
  const signature = new Webhook(secret).sign(message.id, timestamp, body);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise<SendResult>((resolve) => {
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    // Set once the status line has arrived: at the deadline, the answer is that status and what came of the body.
    let answered: (() => void) | null = null;
    const finish = (result: Omit<SendResult, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve({ ...result, latencyMs: latency() });
    };
    const request = client.request(
      target,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'ChainMeter-Webhooks/1',
          'webhook-id': message.id,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': signature,
        },
        lookup: options.allowPrivateUrls ? undefined : guardedLookup,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        const done = () => {
          const code = response.statusCode ?? null;
          const ok = code !== null && code >= 200 && code < 300;
          finish({
            responseCode: code,
            error: ok ? null : code !== null && code >= 300 && code < 400 ? 'redirect not followed' : null,
            responseExcerpt: kept > 0 ? Buffer.concat(chunks).toString('utf8') : null,
          });
          response.destroy();
        };
        answered = done;
        response.on('data', (chunk: Buffer) => {
          if (kept < RESPONSE_EXCERPT_BYTES) {
            const part = chunk.subarray(0, RESPONSE_EXCERPT_BYTES - kept);
            chunks.push(part);
            kept += part.length;
          }
          // Enough for the log: the rest of the body is never read.
          if (kept >= RESPONSE_EXCERPT_BYTES) done();
        });
        response.on('end', done);
        response.on('error', done);
      },
    );
    deadline = setTimeout(() => {
      if (answered) answered();
      else
        finish({
          responseCode: null,
          error: `no answer within ${options.timeoutMs} ms`,
          responseExcerpt: null,
        });
      request.destroy();
    }, options.timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => {
      finish({
        responseCode: null,
        error: error.code ? `${error.code}: ${error.message}` : error.message,
        responseExcerpt: null,
      });
    });
    request.end(body);
  });
}
