/**
 * The soak's load, through nginx like any outside client: deposits from many wallets (on chain), metered
 * completions with API keys (`POST /v1/chat/completions`, some streamed), and subscriptions held open
 * (`balanceUpdated`, half over graphql-ws and half over SSE), each reconnecting when its connection drops.
 * Every call and every connection change is recorded with its time, for the report and the end checks.
 *
 * Each kind is a `LoadKind`: started with the soak, stopped before the drain. Pay-per-request (x402) calls
 * are meant to be one more kind beside these (see `loadKinds` in main.ts).
 */
import { createClient } from 'graphql-ws';
import type { Address, Hash, PrivateKeyAccount } from 'viem';
import { type BlockWatcher, sendTransfer } from './chain.ts';
import { sleep } from './processes.ts';

export interface LoadKind {
  readonly name: string;
  start(): void;
  /** Stops starting new work and resolves once the work in flight has ended. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- deposits

export interface DepositRecord {
  wallet: Address;
  amount: bigint;
  sentAt: number;
  hash?: Hash;
  /** Why the transaction could not be sent (the RPC refused it). */
  sendError?: string;
}

interface DepositLoadOptions {
  rpcUrl: string;
  token: Address;
  treasury: Address;
  wallets: readonly PrivateKeyAccount[];
  perSecond: number;
  watcher: BlockWatcher;
}

/** Each wallet sends a transfer to the treasury, waits for its block, then pauses; `perSecond` in all. */
export class DepositLoad implements LoadKind {
  readonly name = 'deposits';
  readonly records: DepositRecord[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  private readonly options: DepositLoadOptions;

  constructor(options: DepositLoadOptions) {
    this.options = options;
  }

  start(): void {
    this.running = true;
    const periodMs = (this.options.wallets.length / this.options.perSecond) * 1_000;
    this.loops = this.options.wallets.map(async (wallet) => {
      // Spread the wallets over one period, so the load is even from the start.
      await this.pause(Math.random() * periodMs);
      while (this.running) {
        await this.deposit(wallet);
        await this.pause(periodMs * (0.5 + Math.random()));
      }
    });
  }

  private async pause(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (this.running && Date.now() < until) await sleep(Math.min(250, until - Date.now()));
  }

  /** One transfer of 1 to 3 USDC (an odd number of base units, so amounts differ); waits for its block. */
  async deposit(
    wallet: PrivateKeyAccount,
    amount = 1_000_000n + BigInt(Math.floor(Math.random() * 2_000_000)),
  ): Promise<DepositRecord> {
    const record: DepositRecord = { wallet: wallet.address, amount, sentAt: Date.now() };
    this.records.push(record);
    try {
      record.hash = await sendTransfer(
        this.options.rpcUrl,
        this.options.token,
        wallet,
        this.options.treasury,
        amount,
      );
    } catch (error) {
      record.sendError = (error as Error).message.split('\n')[0];
      return record;
    }
    const until = Date.now() + 20_000;
    while (Date.now() < until && !this.options.watcher.blockOf.has(record.hash)) await sleep(200);
    return record;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

// ---------------------------------------------------------------- completions

export interface CallRecord {
  start: number;
  end: number;
  stream: boolean;
  /** HTTP status, or 0 when no answer came (connection refused or reset, timeout). */
  status: number;
  /** A whole answer: 200 and, for a stream, through `[DONE]`. */
  served: boolean;
  /** The metered call's id (`x-request-id`), when an answer started. */
  requestId?: string;
  /** What went wrong: `error.code` of the body, `cut` (a stream that broke off), `network`, `timeout`. */
  failure?: string;
  /** A paid call's settlement transaction (PAYMENT-RESPONSE). */
  paymentTx?: string;
}

const CALL_TIMEOUT_MS = 20_000;

/** Metered completions at `perSecond`, at most `maxInFlight` at once, every 5th streamed. */
export interface CompletionLoadOptions {
  name: string;
  /** nginx's origin. */
  url: string;
  perSecond: number;
  maxInFlight: number;
  /** The Authorization header of call n (`Bearer <API key>`); undefined sends none (a call paid per request). */
  authorization(n: number): string | undefined;
  /** Plain `fetch` by default; a paying one for pay-per-request calls (x402's `wrapFetchWithPayment`). */
  fetch?: typeof fetch;
  /** The settlement an answer names (x402's PAYMENT-RESPONSE). */
  paymentOf?: (headers: Headers) => string | undefined;
}

export class CompletionLoad implements LoadKind {
  readonly name: string;
  readonly records: CallRecord[] = [];
  /** Calls not started because `maxInFlight` were still running (the platform fell behind). */
  skipped = 0;
  private running = false;
  private inFlight = new Set<Promise<void>>();
  private ticker: Promise<void> | undefined;

  private readonly options: CompletionLoadOptions;

  constructor(options: CompletionLoadOptions) {
    this.options = options;
    this.name = options.name;
  }

  start(): void {
    this.running = true;
    const intervalMs = 1_000 / this.options.perSecond;
    this.ticker = (async () => {
      let next = Date.now();
      for (let n = 0; this.running; n++) {
        if (this.inFlight.size >= this.options.maxInFlight) this.skipped++;
        else {
          const call = this.call(n).finally(() => this.inFlight.delete(call));
          this.inFlight.add(call);
        }
        next += intervalMs;
        await sleep(Math.max(0, next - Date.now()));
      }
    })();
  }

  private async call(n: number): Promise<void> {
    const stream = n % 5 === 4;
    const authorization = this.options.authorization(n);
    const record: CallRecord = { start: Date.now(), end: 0, stream, status: 0, served: false };
    try {
      const response = await (this.options.fetch ?? fetch)(`${this.options.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify({
          model: 'chainmeter-dev',
          messages: [{ role: 'user', content: `soak call ${n}: how much does this cost?` }],
          max_tokens: 16,
          ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
        }),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
      record.status = response.status;
      record.requestId = response.headers.get('x-request-id') ?? undefined;
      record.paymentTx = this.options.paymentOf?.(response.headers);
      const text = await response.text();
      if (response.status !== 200) {
        record.failure = errorCode(text) ?? `http_${response.status}`;
      } else if (stream) {
        record.served = text.includes('data: [DONE]');
        if (!record.served) record.failure = 'cut';
      } else {
        record.served = text.includes('"choices"');
        if (!record.served) record.failure = 'bad_body';
      }
    } catch (error) {
      const name = (error as Error).name;
      record.failure = name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network';
      // A stream that broke off after its headers: the answer had started.
      if (record.status === 200) record.failure = 'cut';
    }
    record.end = Date.now();
    this.records.push(record);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.ticker;
    await Promise.all([...this.inFlight]);
  }
}

function errorCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown } };
    return typeof parsed.error?.code === 'string' ? parsed.error.code : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- subscriptions

export interface SubscriptionRecord {
  transport: 'graphql-ws' | 'sse';
  wallet: Address;
  /** Times the connection was (re)established. */
  connects: number[];
  /** Times it dropped. */
  drops: number[];
  /** Times a `balanceUpdated` event arrived. */
  events: number[];
  errors: string[];
}

const BALANCE_SUBSCRIPTION = 'subscription { balanceUpdated { balance } }';
const RETRY_MS = 250;

/** `balanceUpdated` subscriptions held open through nginx, reconnecting after every drop. */
export class SubscriptionLoad implements LoadKind {
  readonly name = 'subscriptions';
  readonly records: SubscriptionRecord[] = [];
  private stops: (() => Promise<void>)[] = [];

  private readonly options: { url: string; sessions: readonly { wallet: Address; token: string }[] };

  constructor(options: SubscriptionLoad['options']) {
    this.options = options;
  }

  start(): void {
    for (const [index, session] of this.options.sessions.entries()) {
      const transport = index % 2 === 0 ? 'graphql-ws' : 'sse';
      const record: SubscriptionRecord = {
        transport,
        wallet: session.wallet,
        connects: [],
        drops: [],
        events: [],
        errors: [],
      };
      this.records.push(record);
      this.stops.push(transport === 'sse' ? this.sse(record, session.token) : this.ws(record, session.token));
    }
  }

  private ws(record: SubscriptionRecord, token: string): () => Promise<void> {
    const client = createClient({
      url: `${this.options.url.replace(/^http/, 'ws')}/graphql`,
      connectionParams: { authorization: `Bearer ${token}` },
      lazy: false,
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: () => true,
      retryWait: () => sleep(RETRY_MS),
      on: {
        connected: () => record.connects.push(Date.now()),
        closed: () => {
          if (record.connects.length > record.drops.length) record.drops.push(Date.now());
        },
      },
    });
    let stopping = false;
    const dispose = client.subscribe(
      { query: BALANCE_SUBSCRIPTION },
      {
        next: (value) => {
          if (value.data) record.events.push(Date.now());
          if (value.errors) record.errors.push(JSON.stringify(value.errors).slice(0, 200));
        },
        error: (error) => {
          if (!stopping) record.errors.push(String((error as Error).message ?? error).slice(0, 200));
        },
        complete: () => {},
      },
    );
    return async () => {
      stopping = true;
      dispose();
      await client.dispose();
    };
  }

  private sse(record: SubscriptionRecord, token: string): () => Promise<void> {
    const controller = new AbortController();
    const loop = (async () => {
      while (!controller.signal.aborted) {
        try {
          const response = await fetch(`${this.options.url}/graphql`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              accept: 'text/event-stream',
              authorization: `Bearer ${token}`,
            },
            body: JSON.stringify({ query: BALANCE_SUBSCRIPTION }),
            signal: controller.signal,
          });
          if (response.status !== 200 || !response.body) {
            record.errors.push(`HTTP ${response.status}`);
            await response.arrayBuffer().catch(() => {});
          } else {
            record.connects.push(Date.now());
            const decoder = new TextDecoder();
            let buffer = '';
            for await (const chunk of response.body) {
              buffer += decoder.decode(chunk as Uint8Array, { stream: true });
              let end = buffer.indexOf('\n\n');
              while (end >= 0) {
                const message = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                if (/^event: next$/m.test(message) && /"balanceUpdated"/.test(message))
                  record.events.push(Date.now());
                end = buffer.indexOf('\n\n');
              }
            }
            if (!controller.signal.aborted) record.drops.push(Date.now());
          }
        } catch {
          if (!controller.signal.aborted && record.connects.length > record.drops.length)
            record.drops.push(Date.now());
        }
        if (!controller.signal.aborted) await sleep(RETRY_MS);
      }
    })();
    return async () => {
      controller.abort();
      await loop;
    };
  }

  /** Whether every subscription is connected now. */
  allConnected(): boolean {
    return this.records.every((record) => record.connects.length > record.drops.length);
  }

  async stop(): Promise<void> {
    await Promise.all(this.stops.map((stop) => stop()));
  }
}
