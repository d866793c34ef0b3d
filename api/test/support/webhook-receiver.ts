import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request as a webhook receiver saw it, its signature checked with `standardwebhooks`. */
export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  /** The raw body and signature header, for a test that verifies with another secret. */
  body: string;
  signature: string;
  /** The parsed body, as `Webhook.verify` returned it; null when the signature did not verify. */
  payload: { type: string; timestamp: string; data: Record<string, unknown> } | null;
  verifyError: string | null;
  status: number;
  /** When it arrived (epoch ms). */
  receivedAt: number;
}

/**
 * An answer the test writes itself (a body with odd bytes, a body that never ends, a reset connection):
 * `status` is what `received` records for it (0 when no status line is sent).
 */
export interface RawAnswer {
  status: number;
  write(response: ServerResponse): void;
}

/**
 * A real HTTP receiver on loopback, as an integrator writes one: it verifies each request with the
 * `standardwebhooks` package and the endpoint's secret (set once the endpoint exists), and answers what
 * `answer` says; `hang` keeps the request open without answering.
 */
export interface WebhookReceiver {
  url: string;
  secret: string | null;
  received: ReceivedWebhook[];
  /** Requests received and not answered (by `hang`). */
  open: number;
  /** The status for the n-th request (0-based); 'hang' never answers; a `RawAnswer` answers as it says. */
  answer: (index: number) => number | 'hang' | RawAnswer;
  close(): Promise<void>;
}

export async function startWebhookReceiver(path = '/hooks/chainmeter'): Promise<WebhookReceiver> {
  const hanging = new Set<ServerResponse>();
  const state: Omit<WebhookReceiver, 'url' | 'close'> = {
    secret: null,
    received: [],
    open: 0,
    answer: () => 204,
  };
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const receivedAt = Date.now();
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': String(request.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(request.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(request.headers['webhook-signature'] ?? ''),
      };
      let payload: ReceivedWebhook['payload'] = null;
      let verifyError: string | null = null;
      try {
        if (!state.secret) throw new Error('no secret yet');
        payload = new Webhook(state.secret).verify(body, headers) as ReceivedWebhook['payload'];
      } catch (error) {
        verifyError = (error as Error).message;
      }
      const index = state.received.length;
      const answer = request.url === path ? state.answer(index) : 404;
      state.received.push({
        id: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        body,
        signature: headers['webhook-signature'],
        payload,
        verifyError,
        status: answer === 'hang' ? 0 : typeof answer === 'object' ? answer.status : answer,
        receivedAt,
      });
      if (answer === 'hang') {
        state.open++;
        hanging.add(response);
        return;
      }
      if (typeof answer === 'object') {
        answer.write(response);
        return;
      }
      response.writeHead(answer, { 'content-type': 'text/plain' });
      response.end(answer >= 200 && answer < 300 ? 'ok' : 'receiver is failing on purpose');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}${path}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        hanging.clear();
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  });
}
