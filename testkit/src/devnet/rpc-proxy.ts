import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A JSON-RPC proxy on 127.0.0.1 in front of a real node (anvil) that a test can make hostile, the way a
 * load-balanced RPC whose nodes disagree is: a head that lags or goes backwards, a log missing from
 * `eth_getLogs`, errors, delays. Everything it does not change is forwarded unchanged (batches included).
 *
 * @example
 * const proxy = await startRpcProxy(anvil.rpcUrl);
 * const stop = proxy.intercept(laggingHead(5));  // `latest` is 5 blocks old from now on
 * stop();                                        // and honest again
 * await proxy.close();
 */
export interface RpcProxy {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /**
   * Adds an interceptor; the newest one is asked first and may answer, change the call, or pass
   * (`next(call)` asks the older ones, then the node). Returns a function that removes it.
   */
  intercept(interceptor: RpcInterceptor): () => void;
  /** Removes every interceptor: the proxy forwards everything again. */
  reset(): void;
  /** How many calls of `method` the proxy has received. */
  calls(method: string): number;
  close(): Promise<void>;
}

export interface RpcCall {
  method: string;
  params: unknown[];
}

export type RpcReply = { result: unknown } | { error: { code: number; message: string } };

export type RpcInterceptor = (call: RpcCall, next: (call: RpcCall) => Promise<RpcReply>) => Promise<RpcReply>;

interface JsonRpcRequest {
  jsonrpc?: string;
  id?: unknown;
  method?: unknown;
  params?: unknown;
}

export async function startRpcProxy(target: string): Promise<RpcProxy> {
  const interceptors: RpcInterceptor[] = [];
  const counts = new Map<string, number>();

  async function forward(call: RpcCall): Promise<RpcReply> {
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: call.method, params: call.params }),
    });
    const body = (await response.json()) as { result?: unknown; error?: { code: number; message: string } };
    return body.error ? { error: body.error } : { result: body.result ?? null };
  }

  /** Runs `call` through the interceptors from index `i` (newest first) down to the node. */
  function dispatch(call: RpcCall, i: number): Promise<RpcReply> {
    const interceptor = interceptors[i];
    if (!interceptor) return forward(call);
    return interceptor(call, (next) => dispatch(next, i - 1));
  }

  async function answer(request: JsonRpcRequest): Promise<object> {
    const method = typeof request.method === 'string' ? request.method : '';
    const params = Array.isArray(request.params) ? request.params : [];
    counts.set(method, (counts.get(method) ?? 0) + 1);
    let reply: RpcReply;
    try {
      reply = await dispatch({ method, params }, interceptors.length - 1);
    } catch (error) {
      reply = { error: { code: -32603, message: `proxy: ${(error as Error).message}` } };
    }
    return { jsonrpc: '2.0', id: request.id ?? null, ...reply };
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      response.writeHead(400, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } }),
      );
      return;
    }
    const out = Array.isArray(body)
      ? await Promise.all(body.map((item) => answer(item as JsonRpcRequest)))
      : await answer(body as JsonRpcRequest);
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(out));
  }

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: Error) => {
      if (!response.headersSent) response.writeHead(500);
      response.end(String(error.message));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    intercept(interceptor) {
      interceptors.push(interceptor);
      return () => {
        const i = interceptors.indexOf(interceptor);
        if (i >= 0) interceptors.splice(i, 1);
      };
    },
    reset() {
      interceptors.length = 0;
    },
    calls: (method) => counts.get(method) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const toHex = (n: bigint) => `0x${n.toString(16)}`;

/** mulberry32: a small seeded generator of numbers in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Whether a block parameter names the head (`latest`, or `pending`, which anvil answers alike). */
const isHeadTag = (tag: unknown) => tag === 'latest' || tag === 'pending' || tag === undefined;

/**
 * The head as a node `lag` blocks behind (`{ at }`: one stuck at that block) reports it: `eth_blockNumber`
 * and `eth_getBlockByNumber('latest')` answer that older block, and a block above it is "not found" (null),
 * as a node that has not seen it yet answers. With `every: n`, about one request in n of those goes to the
 * lagging node (a load balancer in front of it and honest ones), picked by a seeded pseudo-random sequence:
 * the same on every run, and never in step with a client that retries (strict alternation would send
 * every retry of a block to the node that lacks it). With `times: n`, only the first n head answers lag,
 * then the node answers everything.
 */
export function laggingHead(
  lag: number | { at: bigint },
  options: { every?: number; times?: number } = {},
): RpcInterceptor & { readonly lagged: number } {
  const every = options.every ?? 1;
  const pick = seededRandom(every);
  let lagged = 0;
  const interceptor: RpcInterceptor = async (call, next) => {
    const isHeadRequest =
      call.method === 'eth_blockNumber' ||
      (call.method === 'eth_getBlockByNumber' && isHeadTag(call.params[0]));
    const isBlockRequest = call.method === 'eth_getBlockByNumber' && !isHeadRequest;
    if (!isHeadRequest && !isBlockRequest) return next(call);
    const toLaggingNode = every === 1 || pick() < 1 / every;
    if (!toLaggingNode || lagged >= (options.times ?? Infinity)) return next(call);
    let stale: bigint;
    if (typeof lag === 'number') {
      const reply = await next({ method: 'eth_blockNumber', params: [] });
      if (!('result' in reply)) return reply;
      const head = BigInt(reply.result as string) - BigInt(lag);
      stale = head < 0n ? 0n : head;
    } else {
      stale = lag.at;
    }
    if (call.method === 'eth_blockNumber') {
      lagged++;
      return { result: toHex(stale) };
    }
    if (isHeadRequest) {
      lagged++;
      return next({ ...call, params: [toHex(stale), ...call.params.slice(1)] });
    }
    const tag = call.params[0];
    if (typeof tag === 'string' && tag.startsWith('0x') && BigInt(tag) > stale) return { result: null };
    return next(call);
  };
  /** How many head requests it has answered with the old head. */
  return Object.defineProperty(interceptor, 'lagged', { get: () => lagged }) as RpcInterceptor & {
    readonly lagged: number;
  };
}

/** A log as `eth_getLogs` answers it (hex strings). */
export interface RpcLog {
  transactionHash?: string;
  logIndex?: string;
  topics?: string[];
}

/** `eth_getLogs` answers without the logs `drop` picks (e.g. one sender's), as a faulty node might. */
export function droppedLogs(drop: (log: RpcLog) => boolean): RpcInterceptor {
  return async (call, next) => {
    const reply = await next(call);
    if (call.method !== 'eth_getLogs' || !('result' in reply) || !Array.isArray(reply.result)) return reply;
    return { result: reply.result.filter((log) => !drop(log as RpcLog)) };
  };
}

/** Which calls an interceptor acts on: these methods (all when empty), or those a predicate picks. */
export type RpcCallFilter = readonly string[] | ((call: RpcCall) => boolean);

function matches(filter: RpcCallFilter, call: RpcCall): boolean {
  if (typeof filter === 'function') return filter(call);
  return filter.length === 0 || filter.includes(call.method);
}

/** The next `count` calls that `which` picks fail with a JSON-RPC error. */
export function rpcErrors(which: RpcCallFilter, count: number): RpcInterceptor {
  let left = count;
  return async (call, next) => {
    if (left <= 0 || !matches(which, call)) return next(call);
    left--;
    return { error: { code: -32603, message: `proxy: injected failure of ${call.method}` } };
  };
}

/** The calls that `which` picks are answered `ms` later. */
export function delayedCalls(which: RpcCallFilter, ms: number): RpcInterceptor {
  return async (call, next) => {
    if (matches(which, call)) await new Promise((resolve) => setTimeout(resolve, ms));
    return next(call);
  };
}
