import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { isPublicAddress } from './url-guard.ts';
import { RESPONSE_EXCERPT_BYTES, sendWebhook, wireEventType } from './webhook-sender.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const message = {
  id: '5c1e1f3a-6a47-4d3c-9e2b-1d2b9d7a0f11',
  type: 'DEPOSIT_CREDITED' as const,
  occurredAt: new Date('2026-12-03T12:00:00.000Z'),
  data: { depositId: 'd1', amount: '1000000' },
};

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A real receiver on loopback whose handler the test writes; returns its base URL and what it saw. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; hits: number }> {
  const state = { url: '', hits: 0 };
  const server = createServer((request, response) => {
    state.hits++;
    handler?.(request, response);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

const open = { timeoutMs: 2_000, allowPrivateUrls: true };

describe('sendWebhook', () => {
  it('signs the Standard Webhooks way: the receiver verifies with standardwebhooks', async () => {
    let verified: unknown = null;
    const target = await serve((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        verified = new Webhook(SECRET).verify(
          Buffer.concat(chunks).toString('utf8'),
          request.headers as Record<string, string>,
        );
        response.writeHead(200).end('thanks');
      });
    });
    const result = await sendWebhook(`${target.url}/hook`, SECRET, message, open);
    expect(result).toMatchObject({ responseCode: 200, error: null, responseExcerpt: 'thanks' });
    expect(verified).toEqual({
      type: 'deposit.credited',
      timestamp: '2026-12-03T12:00:00.000Z',
      data: { depositId: 'd1', amount: '1000000' },
    });
  });

  it('a wrong secret does not verify', async () => {
    let error: string | null = null;
    const target = await serve((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        try {
          new Webhook('whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldA==').verify(
            Buffer.concat(chunks).toString('utf8'),
            request.headers as Record<string, string>,
          );
        } catch (caught) {
          error = (caught as Error).message;
        }
        response.writeHead(400).end();
      });
    });
    expect((await sendWebhook(target.url, SECRET, message, open)).responseCode).toBe(400);
    expect(error).toMatch(/signature/i);
  });

  it('does not follow a redirect', async () => {
    const elsewhere = await serve((_request, response) => response.writeHead(200).end());
    const target = await serve((_request, response) =>
      response.writeHead(307, { location: `${elsewhere.url}/` }).end(),
    );
    const result = await sendWebhook(target.url, SECRET, message, open);
    expect(result).toMatchObject({ responseCode: 307, error: 'redirect not followed' });
    expect(elsewhere.hits).toBe(0);
  });

  it('keeps no more than a short excerpt of the answer', async () => {
    const target = await serve((_request, response) => response.writeHead(500).end('x'.repeat(100_000)));
    const result = await sendWebhook(target.url, SECRET, message, open);
    expect(result.responseCode).toBe(500);
    expect(result.responseExcerpt).toBe('x'.repeat(RESPONSE_EXCERPT_BYTES));
  });

  it('gives up on a receiver that never answers at the deadline', async () => {
    const target = await serve(() => {});
    const result = await sendWebhook(target.url, SECRET, message, { timeoutMs: 200, allowPrivateUrls: true });
    expect(result).toMatchObject({ responseCode: null, error: 'no answer within 200 ms' });
  });

  it('takes the status of an answer whose body never ends, at the deadline', async () => {
    const target = await serve((_request, response) => {
      response.writeHead(202);
      response.write('accepted, ');
    });
    const result = await sendWebhook(target.url, SECRET, message, { timeoutMs: 200, allowPrivateUrls: true });
    expect(result).toMatchObject({ responseCode: 202, error: null, responseExcerpt: 'accepted, ' });
  });

  it('outside the devnet, refuses a private address when connecting, even behind a host name (DNS rebinding)', async () => {
    const target = await serve((_request, response) => response.writeHead(200).end());
    const port = new URL(target.url).port;
    const strict = { timeoutMs: 2_000, allowPrivateUrls: false };
    const byName = await sendWebhook(`https://localhost:${port}/`, SECRET, message, strict);
    expect(byName.responseCode).toBeNull();
    expect(byName.error).toMatch(/private or reserved/);
    const byAddress = await sendWebhook(`https://127.0.0.1:${port}/`, SECRET, message, strict);
    expect(byAddress.error).toMatch(/private or reserved/);
    const plain = await sendWebhook(target.url, SECRET, message, strict);
    expect(plain.error).toMatch(/https/);
    expect(target.hits).toBe(0);
  });
});

describe('wireEventType', () => {
  it('is the lowercase dotted form of the enum', () => {
    expect(wireEventType('DEPOSIT_PENDING')).toBe('deposit.pending');
    expect(wireEventType('DEPOSIT_CREDITED')).toBe('deposit.credited');
    expect(wireEventType('DEPOSIT_REORGED')).toBe('deposit.reorged');
    expect(wireEventType('BALANCE_LOW')).toBe('balance.low');
    expect(wireEventType('KEY_LIMIT_REACHED')).toBe('key_limit.reached');
    expect(wireEventType('AUTO_TOP_UP_SUBMITTED')).toBe('auto_top_up.submitted');
    expect(wireEventType('AUTO_TOP_UP_FAILED')).toBe('auto_top_up.failed');
  });
});

describe('isPublicAddress', () => {
  it('refuses private, loopback, link-local, shared, reserved and mapped forms', () => {
    for (const address of [
      '127.0.0.1',
      '127.255.0.9',
      '10.0.0.1',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.0.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'fe80::1',
      'fc00::1',
      'fd12:3456::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:a9fe:a9fe',
      '::127.0.0.1',
      // IPv4-compatible (::/96) however spelled: the URL parser turns [::127.0.0.1] into [::7f00:1].
      '::7f00:1',
      '::a00:1',
      '0::a9fe:a9fe',
      '0:0:0:0:0:0:c0a8:1',
      '::127.0.0.1%1',
      '::808:808',
      // IPv4-mapped (::ffff:0:0/96) in its other spellings, and IPv4-translated (::ffff:0:0:0/96).
      '0:0:0:0:0:ffff:7f00:1',
      '0::ffff:10.0.0.1',
      '::ffff:0a00:0001',
      '::ffff:0:7f00:1',
      '::ffff:0:127.0.0.1',
      '::ffff:0:808:808',
      '64:ff9b::a00:1',
      '2002:7f00:1::',
      // The rest of ::/8 and of what lies outside global unicast (2000::/3), Teredo and documentation.
      '::1:0:0:0',
      '0:1::7f00:1',
      '100::1',
      '64:ff9b:1::a00:1',
      '4000::1',
      'e000::1',
      '2001:0:4136:e378:8000:63bf:3fff:fdd2',
      '3fff:1::1',
      'not-an-ip',
    ]) {
      expect({ address, public: isPublicAddress(address) }).toEqual({ address, public: false });
    }
  });

  it('allows public addresses', () => {
    for (const address of [
      '8.8.8.8',
      '1.1.1.1',
      '172.32.0.1',
      '2606:4700:4700::1111',
      '::ffff:8.8.8.8',
      '::ffff:808:808',
      '0:0:0:0:0:ffff:101:101',
      '2001:4860:4860::8888',
    ]) {
      expect({ address, public: isPublicAddress(address) }).toEqual({ address, public: true });
    }
  });
});
