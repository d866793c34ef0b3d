import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../../test/support/wait-for.ts';
import { clientGoneSignal } from '../http/node-request.ts';
import { openAiErrorFor } from '../http/openai.errors.ts';
import { type RequestVariables, requestObservability } from './http.ts';
import { createLogger } from './logger.ts';
import { createAppMetrics } from './metrics.ts';

const lines: { level: number; msg: string; status?: number }[] = [];
const metrics = createAppMetrics();
let server: ServerType;
let origin: string;
let handlerSawAbort = false;
let entered: () => void = () => undefined;
const inHandler = new Promise<void>((resolve) => {
  entered = resolve;
});

beforeAll(async () => {
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  const app = new Hono<{ Variables: RequestVariables }>();
  app.use('*', requestObservability({ logger, metrics }));
  // The app's own error handler, as openai.routes.ts installs it for the whole app.
  app.onError((error, c) => openAiErrorFor(c, logger, error));
  // As yoga does with the Request the /graphql route builds: the client's going away aborts the work,
  // which then fails with the signal's reason.
  app.get('/slow', async (c) => {
    const signal = clientGoneSignal(c);
    entered();
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    handlerSawAbort = true;
    throw signal.reason;
  });
  app.get('/broken', () => {
    throw new Error('a bug');
  });
  server = await new Promise<ServerType>((resolve) => {
    const listening = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(listening));
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function statusCount(status: string): Promise<number> {
  const counter = await metrics.httpRequests.get();
  return counter.values
    .filter((value) => value.labels.status === status)
    .reduce((sum, value) => sum + value.value, 0);
}

it('counts a client that went away as 499 at debug, not as a server failure', async () => {
  const client = request(`${origin}/slow`);
  client.on('error', () => undefined);
  client.end();
  // Once the request is in the handler, the client hangs up.
  await inHandler;
  client.destroy();
  await waitFor('the 499 line', () => lines.some((line) => line.status === 499));
  expect(handlerSawAbort).toBe(true);
  const line = lines.find((entry) => entry.status === 499);
  expect(line?.level).toBe(20); // debug
  expect(lines.filter((entry) => entry.level >= 40)).toEqual([]); // no warning, no error
  expect(await statusCount('499')).toBe(1);
  expect(await statusCount('500')).toBe(0);
});

it('still counts a failure of its own as 500, logged as an error', async () => {
  const before = await statusCount('500');
  const response = await fetch(`${origin}/broken`);
  expect(response.status).toBe(500);
  await waitFor('the failure line', () => lines.some((line) => line.msg === 'request failed'));
  expect(lines.find((line) => line.msg === 'request failed')?.status).toBe(500);
  expect(lines.some((line) => line.msg === 'REST request failed')).toBe(true);
  expect(await statusCount('500')).toBe(before + 1);
});
