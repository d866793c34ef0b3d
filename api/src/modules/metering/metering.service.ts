/**
 * Metered completions: hold, call, settle (DESIGN.md "Metering LLM calls").
 *
 * 1. Validate; estimate the most the call can cost (`estimateHold`, with the output limit sent upstream
 *    so the bound holds); take the rate limits; place the hold and write the durable record in one
 *    statement, or refuse with INSUFFICIENT_CREDITS without calling the upstream.
 * 2. Call the upstream once (never retried: a billed call runs at most once).
 * 3. Decide the settlement (`billing.ts`) and apply it exactly once (`metering.store.ts`). A settlement
 *    that fails never blocks or fails the answer: it is kept on the record (UNSETTLED) or, if even that
 *    fails, in memory, and the settlement loop retries it; the loop also settles what a crashed process
 *    left UNSETTLED and releases holds whose call never finished (HELD past `hold_expires_at`).
 * 4. While a call runs (a stream may run for longer than the hold TTL), a heartbeat keeps pushing its
 *    record's `hold_expires_at` forward, so only the holds of a process that died ever expire.
 */
import { randomUUID } from 'node:crypto';
import type { MicroUsd, Ratio } from '@chainmeter/schema';
import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { Model } from 'openai/resources/models';
import type { Logger } from 'pino';
import type { Viewer } from '../../context.ts';
import { hotSqlFor } from '../../db/hot-sql.ts';
import type { Orm } from '../../db/orm.ts';
import { badInput } from '../../errors.ts';
import type { ApiKeyCheck } from '../apikeys/apikeys.service.ts';
import type { RateLimits } from '../ratelimit/ratelimit.service.ts';
import { type CallResult, decideSettlement } from './billing.ts';
import type { ChatRequest } from './chat-request.ts';
import { type LlmUpstream, UpstreamError } from './llm.upstream.ts';
import type { BillingStatus } from './metering.entity.ts';
import {
  applyChargedSettlements,
  applySettlement,
  extendHolds,
  findExpiredHolds,
  findUnsettled,
  type HeldRecord,
  LedgerHeads,
  markUnsettled,
  type PendingSettlement,
  placeHold,
  type Settlement,
  type SettleResult,
} from './metering.store.ts';
import { estimateHold, type ModelPrice, type PriceTable, promptTokensUpperBound } from './pricing.ts';

/** Charged settlements written in one transaction at most. */
const MAX_SETTLEMENT_BATCH = 500;

/** Test hooks: inject failures into settlement to prove retries. Never set in production. */
export interface MeteringFaults {
  /** Called before each settlement attempt; a throw makes that attempt fail. */
  beforeSettlement?(usageId: string, attempt: number): void | Promise<void>;
  /** Called once the hold is committed, before the upstream is called. */
  afterHold?(usageId: string): void;
  /** Called once the upstream has answered (or a stream has ended), before the settlement. */
  afterAnswer?(usageId: string): void;
  /** Called once a charged settlement is committed, before the answer is sent. */
  afterSettlement?(usageId: string): void;
}

export interface MeteringOptions {
  orm: Orm;
  upstream: LlmUpstream;
  prices: PriceTable;
  markup: Ratio;
  logger: Logger;
  /** How long a hold may stay without its call finishing before the settlement loop releases it. */
  holdTtlMs: number;
  /** Period of the settlement loop. */
  settlementRetryMs: number;
  /**
   * Each call takes one request and its prompt's token bound before the hold (refused with RATE_LIMITED,
   * nothing held), and records its completion tokens once answered.
   */
  rateLimits?: RateLimits;
  faults?: MeteringFaults;
  /** Called after a charge commits, with its ledger entry (to publish `balanceUpdated`). */
  onCharged?: (charge: { accountId: string; ledgerEntryId: string }) => void;
}

/** A settled (or, after a failed settlement, to-be-settled) call as users see it. */
export interface UsageView {
  id: string;
  requestId: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  providerCost: bigint | null;
  userPrice: bigint;
  billingStatus: BillingStatus;
  apiKeyId: string | null;
  latencyMs: number | null;
  createdAt: Date;
  flags: string[];
}

export interface MeteredCompletion {
  requestId: string;
  completion: ChatCompletion;
  /** Null when nothing was charged (an empty completion). */
  usage: UsageView | null;
}

export interface MeteredStream {
  requestId: string;
  /** Single use; leaving the loop early (client gone) stops the upstream and bills what was generated. */
  chunks: AsyncIterable<ChatCompletionChunk>;
  /** Resolves once the call is settled (or queued for a retry). */
  settled: Promise<UsageView | null>;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** The caller's API key was taken on trust (`RecentApiKeys`): the hold checks it is still live. */
  keyCheck?: ApiKeyCheck;
  /** Settle before returning (GraphQL, which returns the usage) or in the background (REST). */
  settle?: 'await' | 'background';
}

/** The upstream failed: nothing was charged. */
export class CompletionFailedError extends Error {
  override name = 'CompletionFailedError';
  readonly upstream: UpstreamError;
  readonly requestId: string;
  constructor(upstream: UpstreamError, requestId: string) {
    super(`${upstream.message}; nothing was charged`);
    this.upstream = upstream;
    this.requestId = requestId;
  }
}

export interface MeteringService {
  complete(viewer: Viewer, request: ChatRequest, options?: CallOptions): Promise<MeteredCompletion>;
  stream(viewer: Viewer, request: ChatRequest, options?: CallOptions): Promise<MeteredStream>;
  listModels(): Promise<Model[]>;
  /** One round of the settlement loop; returns how many records it closed. */
  settleOutstanding(now?: Date): Promise<number>;
  /** Resolves when every background settlement started so far has finished (tests, shutdown). */
  whenIdle(): Promise<void>;
  /** Settlements still waiting in memory for a retry. */
  queuedSettlements(): number;
  /**
   * Charged settlement batches of this process so far: written in one guarded statement from the ledger
   * heads it knew, and those whose head had moved (another writer) and so went through the lock.
   */
  settlementBatches(): { guarded: number; stale: number };
  start(): void;
  stop(): Promise<void>;
}

interface Hold {
  usageId: string;
  requestId: string;
  hold: MicroUsd;
  accountId: string;
  price: ModelPrice | undefined;
  createdAt: Date;
  apiKeyId: string | null;
  model: string;
  promptBound: number;
  viewer: Viewer;
}

export function createMeteringService(options: MeteringOptions): MeteringService {
  const { orm, upstream, prices, markup, logger } = options;
  /** Every statement here is raw SQL (metering.store.ts), run on the ORM's connections. */
  const sql = hotSqlFor(orm);
  const inFlight = new Set<Promise<unknown>>();
  /** Settlements that could not even be recorded as UNSETTLED: retried from memory. */
  const retryQueue = new Map<string, Settlement>();
  const attempts = new Map<string, number>();
  /**
   * Records this process holds open: from the hold until the settlement is written (or recorded as
   * UNSETTLED, which the expiry never touches). Their expiry is pushed forward every third of the TTL
   * (the heartbeat), so a call that outlives `holdTtlMs` (a long stream) keeps its hold on every replica;
   * only a process that stopped beating (it died) has its holds released, one TTL after its last beat.
   */
  const owned = new Set<string>();
  /** The ledger heads this process saw last: most settlements go out as one guarded statement. */
  const heads = new LedgerHeads();
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let beating: Promise<void> | null = null;
  let loopRunning: Promise<number> | null = null;

  /** The most expensive rate in the table: the hold of a model without a price (settled NEEDS_REVIEW). */
  const fallbackPrice: ModelPrice | undefined = (() => {
    let input = -1n;
    let output = -1n;
    for (const price of prices.values()) {
      if (price.inputPerMTok > input) input = price.inputPerMTok;
      if (price.outputPerMTok > output) output = price.outputPerMTok;
    }
    return input < 0n ? undefined : { model: '*', inputPerMTok: input, outputPerMTok: output };
  })();

  function track<T>(promise: Promise<T>): Promise<T> {
    inFlight.add(promise);
    promise.then(
      () => inFlight.delete(promise),
      () => inFlight.delete(promise),
    );
    return promise;
  }

  async function reserve(
    viewer: Viewer,
    request: ChatRequest,
    streamed: boolean,
    keyCheck: ApiKeyCheck | undefined,
  ): Promise<Hold> {
    const price = prices.get(request.model);
    const holdPrice = price ?? fallbackPrice;
    if (!holdPrice) throw badInput(`The model ${request.model} has no price`, 'model');
    const hold = estimateHold(holdPrice, request.holdMessages, request.maxTokens, markup);
    const promptBound = Number(promptTokensUpperBound(request.holdMessages));
    await options.rateLimits?.consume(viewer, { requests: 1, tokens: promptBound });
    const apiKeyId = viewer.credential.kind === 'apiKey' ? viewer.credential.apiKeyId : null;
    const requestId = `req_${randomUUID().replaceAll('-', '')}`;
    const createdAt = new Date();
    const { usageId, head } = await placeHold(sql, {
      accountId: viewer.accountId,
      apiKeyId,
      requestId,
      model: request.model,
      hold,
      streamed,
      now: createdAt,
      holdExpiresAt: new Date(createdAt.getTime() + options.holdTtlMs),
      keyCheck,
    });
    owned.add(usageId);
    heads.observe(viewer.accountId, head);
    options.faults?.afterHold?.(usageId);
    return {
      usageId,
      requestId,
      hold,
      accountId: viewer.accountId,
      price,
      createdAt,
      apiKeyId,
      model: request.model,
      promptBound,
      viewer,
    };
  }

  function view(held: Hold, settlement: Settlement): UsageView | null {
    if (settlement.status === 'RELEASED') return null;
    return {
      id: held.usageId,
      requestId: held.requestId,
      model: held.model,
      promptTokens: settlement.promptTokens,
      completionTokens: settlement.completionTokens,
      providerCost: settlement.providerCost,
      userPrice: settlement.userPrice,
      billingStatus: settlement.status,
      apiKeyId: held.apiKeyId,
      latencyMs: settlement.latencyMs,
      createdAt: held.createdAt,
      flags: settlement.flags,
    };
  }

  /**
   * Applies a settlement; on failure keeps it for the loop. Never throws. `record`: the record as this
   * process's hold wrote it (absent for records read back from the database).
   */
  async function settle(usageId: string, settlement: Settlement, record?: HeldRecord): Promise<void> {
    const attempt = (attempts.get(usageId) ?? 0) + 1;
    attempts.set(usageId, attempt);
    try {
      await options.faults?.beforeSettlement?.(usageId, attempt);
      const result =
        settlement.userPrice > 0n && attempt === 1
          ? await settleInBatch({ usageId, settlement, record })
          : await applySettlement(sql, usageId, settlement);
      retryQueue.delete(usageId);
      attempts.delete(usageId);
      owned.delete(usageId);
      if (result.settled && result.ledgerEntryId) options.faults?.afterSettlement?.(usageId);
      if (!result.settled) logger.debug({ usageId }, 'usage already settled');
      else if (result.ledgerEntryId) {
        options.onCharged?.({ accountId: result.accountId, ledgerEntryId: result.ledgerEntryId });
      }
      if (settlement.status === 'NEEDS_REVIEW') {
        logger.warn({ usageId, flags: settlement.flags }, 'usage needs review');
      }
    } catch (error) {
      logger.error({ err: error, usageId, attempt }, 'settlement failed; it will be retried');
      try {
        if (await markUnsettled(sql, usageId, settlement, String((error as Error).message))) {
          retryQueue.delete(usageId);
          owned.delete(usageId);
          return;
        }
      } catch (markError) {
        logger.error(
          { err: markError, usageId },
          'could not record the unsettled usage; retrying from memory',
        );
      }
      retryQueue.set(usageId, settlement);
    }
  }

  /**
   * Group commit: charged settlements queue here and go to the database together, one transaction per
   * batch. When idle a settlement leaves at once (no added delay); under load, those that arrive while a
   * batch is in flight form the next one. A failed batch fails its members, which retry one by one.
   */
  const batchQueue: {
    item: PendingSettlement;
    resolve: (r: SettleResult) => void;
    reject: (e: unknown) => void;
  }[] = [];
  let batching = false;

  function settleInBatch(item: PendingSettlement): Promise<SettleResult> {
    return new Promise((resolve, reject) => {
      batchQueue.push({ item, resolve, reject });
      if (!batching) void runBatches();
    });
  }

  async function runBatches(): Promise<void> {
    batching = true;
    try {
      while (batchQueue.length > 0) {
        const batch = batchQueue.splice(0, MAX_SETTLEMENT_BATCH);
        try {
          const results = await applyChargedSettlements(
            sql,
            batch.map((entry) => entry.item),
            heads,
          );
          for (const entry of batch) {
            entry.resolve(results.get(entry.item.usageId) ?? { settled: false, reason: 'already settled' });
          }
        } catch (error) {
          if (batch.length === 1) {
            batch[0]?.reject(error);
            continue;
          }
          // One bad member must not hold back the others: each goes again on its own.
          logger.warn(
            { err: error, size: batch.length },
            'settlement batch failed; settling its members one by one',
          );
          await Promise.all(
            batch.map((entry) =>
              applySettlement(sql, entry.item.usageId, entry.item.settlement).then(
                entry.resolve,
                entry.reject,
              ),
            ),
          );
        }
      }
    } finally {
      batching = false;
    }
  }

  function finish(held: Hold, result: CallResult, mode: CallOptions['settle']): Promise<UsageView | null> {
    if (result.kind !== 'failed') options.faults?.afterAnswer?.(held.usageId);
    const settlement = decideSettlement({ price: held.price, markup, hold: held.hold, result });
    if (settlement.completionTokens > 0) {
      options.rateLimits
        ?.record(held.viewer, { tokens: settlement.completionTokens })
        .catch((error: unknown) => logger.warn({ err: error }, 'could not record tokens for rate limits'));
    }
    const record = { accountId: held.accountId, apiKeyId: held.apiKeyId, hold: held.hold };
    const done = track(settle(held.usageId, settlement, record)).then(() => view(held, settlement));
    if (mode === 'background') return Promise.resolve(view(held, settlement));
    return done;
  }

  /** Calls the upstream for a held call; when it fails, settles the call charging nothing, then throws. */
  async function callUpstream<T>(held: Hold, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await call();
    } catch (error) {
      const failure =
        error instanceof UpstreamError ? error : new UpstreamError('bad_response', String(error));
      await finish(
        held,
        { kind: 'failed', latencyMs: performance.now() - started, error: failure.message },
        'await',
      );
      throw new CompletionFailedError(failure, held.requestId);
    }
  }

  async function complete(
    viewer: Viewer,
    request: ChatRequest,
    callOptions: CallOptions = {},
  ): Promise<MeteredCompletion> {
    const held = await reserve(viewer, request, false, callOptions.keyCheck);
    const answer = await callUpstream(held, () =>
      upstream.complete(request.upstream, { signal: callOptions.signal }),
    );
    const { completion } = answer;
    const reported = completion.usage
      ? { promptTokens: completion.usage.prompt_tokens, completionTokens: completion.usage.completion_tokens }
      : null;
    const content = completion.choices[0]?.message?.content ?? '';
    const result: CallResult =
      content.length === 0 || reported?.completionTokens === 0
        ? { kind: 'empty', latencyMs: answer.latencyMs, usage: reported }
        : {
            kind: 'answered',
            usage: reported,
            generatedBytes: Buffer.byteLength(content),
            promptTokensBound: held.promptBound,
            costHeader: answer.costHeader,
            latencyMs: answer.latencyMs,
          };
    const usage = await finish(held, result, callOptions.settle ?? 'await');
    return { requestId: held.requestId, completion, usage };
  }

  async function stream(
    viewer: Viewer,
    request: ChatRequest,
    callOptions: CallOptions = {},
  ): Promise<MeteredStream> {
    const held = await reserve(viewer, request, true, callOptions.keyCheck);
    const opened = await callUpstream(held, () =>
      upstream.stream(request.upstream, { signal: callOptions.signal }),
    );
    const settled = track(
      opened.outcome.then((outcome) => {
        let result: CallResult;
        if (outcome.status === 'failed') {
          result = {
            kind: 'failed',
            latencyMs: outcome.latencyMs,
            error: outcome.error?.message ?? 'stream failed',
          };
        } else {
          const usage = outcome.usage
            ? { promptTokens: outcome.usage.prompt_tokens, completionTokens: outcome.usage.completion_tokens }
            : null;
          const generatedBytes = Buffer.byteLength(outcome.content);
          result =
            outcome.status === 'complete' && (generatedBytes === 0 || usage?.completionTokens === 0)
              ? { kind: 'empty', latencyMs: outcome.latencyMs, usage }
              : {
                  kind: 'answered',
                  usage,
                  generatedBytes,
                  promptTokensBound: held.promptBound,
                  costHeader: outcome.status === 'complete' ? opened.costHeader : null,
                  latencyMs: outcome.latencyMs,
                  flags: outcome.status === 'aborted' ? ['CLIENT_DISCONNECTED'] : [],
                };
        }
        return finish(held, result, 'await');
      }),
    );
    return { requestId: held.requestId, chunks: opened.chunks, settled };
  }

  async function settleOutstanding(now = new Date()): Promise<number> {
    let closed = 0;
    for (const [usageId, settlement] of [...retryQueue]) {
      await settle(usageId, settlement);
      if (!retryQueue.has(usageId)) closed++;
    }
    for (const { id, settlement } of await findUnsettled(sql, 100)) {
      const result = await applySettlement(sql, id, settlement).catch((error: unknown) => {
        logger.error({ err: error, usageId: id }, 'retrying an unsettled usage failed');
        return null;
      });
      if (result?.settled) {
        closed++;
        if (result.ledgerEntryId) {
          options.onCharged?.({ accountId: result.accountId, ledgerEntryId: result.ledgerEntryId });
        }
      }
    }
    for (const id of await findExpiredHolds(sql, now, 100, [...owned])) {
      const result = await applySettlement(sql, id, {
        status: 'RELEASED',
        promptTokens: 0,
        completionTokens: 0,
        providerCost: null,
        userPrice: 0n as MicroUsd,
        latencyMs: null,
        flags: ['HOLD_EXPIRED'],
        error: 'the call never finished (process stopped mid-call?): hold released',
      });
      if (result.settled) {
        closed++;
        logger.warn({ usageId: id }, 'released an expired hold');
      }
    }
    return closed;
  }

  /** One heartbeat: pushes the expiry of every record this process still holds open. */
  function beat(): void {
    if (beating || owned.size === 0) return;
    beating = extendHolds(sql, [...owned], new Date(Date.now() + options.holdTtlMs))
      .then(
        () => {},
        (error: unknown) => logger.warn({ err: error }, 'could not extend the holds of in-flight calls'),
      )
      .finally(() => {
        beating = null;
      });
  }

  function runLoop(): void {
    if (loopRunning) return;
    loopRunning = settleOutstanding()
      .catch((error: unknown) => {
        logger.error({ err: error }, 'settlement loop round failed');
        return 0;
      })
      .finally(() => {
        loopRunning = null;
      });
  }

  return {
    complete,
    stream,
    listModels: () => upstream.listModels(),
    settleOutstanding,
    whenIdle: async () => {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    queuedSettlements: () => retryQueue.size,
    settlementBatches: () => ({ ...heads.outcomes }),
    start() {
      if (timer) return;
      runLoop(); // at start-up: whatever a previous process left behind
      timer = setInterval(runLoop, options.settlementRetryMs);
      timer.unref();
      // A third of the TTL: two beats can fail (a database hiccup) before another replica may expire a hold.
      heartbeat = setInterval(beat, Math.max(10, Math.floor(options.holdTtlMs / 3)));
      heartbeat.unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      clearInterval(heartbeat);
      heartbeat = undefined;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      await loopRunning;
      await beating;
    },
  };
}
