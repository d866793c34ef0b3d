/**
 * What a finished call costs: a pure decision from the call's result, the price and the hold.
 *
 * - Free or billed (OpenRouter's rule, README "Metered LLM calls"): a call is free only when nothing
 *   was generated and the finish reason is missing or an error, and the upstream reported neither usage
 *   nor a cost: an upstream error or a timeout before any output, a stream left before its first token.
 *   Everything generated counts, in streams too: content, reasoning (`reasoning_content`, `reasoning`),
 *   refusals and tool calls. A prompt-only answer that finished normally is billed (the provider bills
 *   the prompt), and so is any call whose usage or cost the upstream reported.
 * - Provider cost: the `x-litellm-response-cost` header when the upstream sent one that describes the whole
 *   answer (non-streaming, or a stream that completed), else the price x the reported usage, else the
 *   price x a bound of the usage (below). A header of 0 for a call the price says cost something is not
 *   believed (LiteLLM writes 0 when it failed to price the call): the price is used, flag `ZERO_COST_HEADER`.
 * - Unknown provider cost (no header and no price: only possible for a call whose model lost its price
 *   after its hold, e.g. a stream recovered after its process died): NEEDS_REVIEW, charged its hold (the
 *   most it could have cost), flag `UNPRICED`; an operator settles it. Never given away.
 * - User price = provider cost x markup rounded up (`userPrice`). The hold bounds it: a price above the
 *   hold (only possible when a header cost exceeds the price's estimate) is capped at the hold and flagged
 *   `PRICE_CAPPED_AT_HOLD`; a provider cost above the hold itself is NEEDS_REVIEW at the hold, flagged
 *   `COST_EXCEEDS_HOLD` (BILLED always means user price >= provider cost).
 * - A call whose usage never arrived (a stream the client left or the upstream cut, or an answer without
 *   a usage block) is billed for what was generated, counted conservatively (never below what the provider
 *   can bill): completion tokens = UTF-8 bytes of the generated output of every choice (every token of a
 *   byte-level tokenizer is at least one byte), each choice at most max_tokens and a choice cut at that
 *   limit (finish_reason `length`) max_tokens, prompt tokens = the hold's upper bound for the messages;
 *   flagged `USAGE_ESTIMATED`. It stays within the hold, because the hold is computed from the same bounds.
 * - Reported usage that cannot be true (a count that is not a non-negative integer, or above the request's
 *   output limit) is not believed: billed as if none had come, flagged `USAGE_INVALID` too. Usage that
 *   contradicts itself or the answer is made whole (`billedTokens`), flagged `USAGE_INCONSISTENT`.
 * - A call whose process died (its hold expired): released, unless it was a stream whose heartbeat had
 *   recorded generated output; that is billed like a cut stream for what was recorded, flagged
 *   `STREAM_INTERRUPTED` (output generated after the last beat is not billed).
 */
import type { MicroUsd, Ratio } from '@chainmeter/schema';
import type { ExpiredHold } from './hold.store.ts';
import { costFromHeader, costFromUsage, type ModelPrice, userPrice } from './pricing.ts';
import type { TokenCounts } from './reported-usage.ts';
import type { Settlement } from './settlement.ts';

export type CallResult =
  | {
      /** The upstream answered, or a stream produced something before it ended, broke off or was left. */
      kind: 'answered';
      /**
       * The upstream's reported usage, or null when it never arrived or cannot be believed (`usageInvalid`):
       * see `generatedBytes`.
       */
      usage: TokenCounts | null;
      /** The upstream reported a usage block that is not valid counts (reported-usage.ts). */
      usageInvalid?: boolean;
      /** The `total_tokens` the upstream reported beside `usage`, if any. */
      totalTokens?: number | null;
      /** UTF-8 bytes of everything generated: content, reasoning, refusal, tool calls. */
      generatedBytes: number;
      /**
       * The most completion tokens the output can be, when the choices are known: per choice its bytes capped
       * at max_tokens, or max_tokens for a choice cut at that limit (finish_reason `length`). Default
       * `generatedBytes`.
       */
      completionTokensBound?: number;
      /** The most completion tokens any answer to the request can have: max_tokens x its choices. */
      maxCompletionTokens?: number;
      /** The answer's finish reason; null when none arrived (a stream cut or left early). */
      finishReason: string | null;
      /** Used only when `usage` is null. */
      promptTokensBound: number;
      /** Only when it describes the whole answer (not for a stream that did not complete). */
      costHeader: string | null;
      latencyMs: number;
      flags?: string[];
      /** Why a stream ended early, if the upstream failed mid-answer. */
      error?: string | null;
    }
  /** The upstream failed before answering anything (an error status, a timeout, no connection). */
  | { kind: 'failed'; latencyMs: number; error: string };

export interface DecideSettlementParameters {
  /** The price the call was held at; undefined only when it cannot be priced any more. */
  price: ModelPrice | undefined;
  markup: Ratio;
  hold: MicroUsd;
  result: CallResult;
}

/** Finish reasons that mean the upstream failed rather than finished (OpenRouter's "error"). */
const FAILED_FINISH_REASONS = new Set(['', 'error']);

/**
 * The tokens a call is billed for: its reported usage when believable, made whole where it contradicts
 * itself or the answer (flag `USAGE_INCONSISTENT`), else the bounds of its usage (flag `USAGE_ESTIMATED`).
 * - `total_tokens` above prompt + completion: the difference is billed as completion tokens (the dearer
 *   kind; some upstreams leave reasoning tokens out of `completion_tokens` only), at most the request's limit.
 *   Below: the parts are billed, and flagged.
 * - 0 completion tokens for output that came back: the output's bound. 0 prompt tokens: the prompt's bound.
 */
function billedTokens(
  result: Extract<CallResult, { kind: 'answered' }>,
  reported: TokenCounts | null,
  flags: string[],
): TokenCounts {
  const completionBound = result.completionTokensBound ?? result.generatedBytes;
  if (!reported) {
    flags.push('USAGE_ESTIMATED');
    return { promptTokens: result.promptTokensBound, completionTokens: completionBound };
  }
  let { promptTokens, completionTokens } = reported;
  let inconsistent = false;
  const total = result.totalTokens ?? null;
  if (total !== null && total !== promptTokens + completionTokens) {
    inconsistent = true;
    if (total > promptTokens + completionTokens) {
      completionTokens = Math.min(
        total - promptTokens,
        result.maxCompletionTokens ?? Number.MAX_SAFE_INTEGER,
      );
    }
  }
  if (completionTokens === 0 && result.generatedBytes > 0) {
    completionTokens = completionBound;
    inconsistent = true;
  }
  if (promptTokens === 0) {
    promptTokens = result.promptTokensBound;
    inconsistent = true;
  }
  if (inconsistent) flags.push('USAGE_INCONSISTENT');
  return { promptTokens, completionTokens };
}

export function decideSettlement({ price, markup, hold, result }: DecideSettlementParameters): Settlement {
  if (result.kind === 'failed') {
    return released(0, 0, result.latencyMs, [], result.error);
  }
  const flags = [...(result.flags ?? [])];
  const error = result.error ?? null;
  // More completion tokens than the request allowed cannot be true either.
  const impossible =
    result.usage !== null &&
    result.maxCompletionTokens !== undefined &&
    result.usage.completionTokens > result.maxCompletionTokens;
  const reported = impossible ? null : result.usage;
  if (impossible || result.usageInvalid) flags.push('USAGE_INVALID');
  const headerCost = costFromHeader(result.costHeader);
  const finished = result.finishReason !== null && !FAILED_FINISH_REASONS.has(result.finishReason);
  const reportedSomething =
    (reported !== null && (reported.promptTokens > 0 || reported.completionTokens > 0)) ||
    (headerCost !== null && headerCost > 0n);
  if (result.generatedBytes === 0 && !finished && !reportedSomething) {
    return released(
      reported?.promptTokens ?? 0,
      reported?.completionTokens ?? 0,
      result.latencyMs,
      [...flags, 'NOTHING_GENERATED'],
      error,
    );
  }
  const tokens = billedTokens(result, reported, flags);
  const tableCost = price ? costFromUsage(price, tokens) : null;
  let providerCost = headerCost ?? tableCost;
  if (headerCost === 0n && tableCost !== null && tableCost > 0n) {
    providerCost = tableCost;
    flags.push('ZERO_COST_HEADER');
  }
  const base = {
    promptTokens: tokens.promptTokens,
    completionTokens: tokens.completionTokens,
    latencyMs: result.latencyMs,
    error,
  };
  if (providerCost === null) {
    return {
      ...base,
      status: 'NEEDS_REVIEW',
      providerCost: null,
      userPrice: hold,
      flags: [...flags, 'UNPRICED'],
    };
  }
  if (providerCost > hold) {
    return {
      ...base,
      status: 'NEEDS_REVIEW',
      providerCost,
      userPrice: hold,
      flags: [...flags, 'COST_EXCEEDS_HOLD'],
    };
  }
  const price_ = userPrice(providerCost, markup);
  if (price_ > hold) {
    return {
      ...base,
      status: 'BILLED',
      providerCost,
      userPrice: hold,
      flags: [...flags, 'PRICE_CAPPED_AT_HOLD'],
    };
  }
  return { ...base, status: 'BILLED', providerCost, userPrice: price_, flags };
}

function released(
  promptTokens: number,
  completionTokens: number,
  latencyMs: number,
  flags: string[],
  error: string | null,
): Settlement {
  return {
    status: 'RELEASED',
    promptTokens,
    completionTokens,
    providerCost: null,
    userPrice: 0n as MicroUsd,
    latencyMs,
    flags,
    error,
  };
}

/** The settlement of a hold whose process died mid-call (see the module comment). */
export function settlementOfExpiredHold(
  expired: ExpiredHold,
  price: ModelPrice | undefined,
  markup: Ratio,
): Settlement {
  if (!expired.streamed || expired.generatedBytes === 0 || expired.promptTokensBound === null) {
    return {
      ...released(
        0,
        0,
        0,
        ['HOLD_EXPIRED'],
        'the call never finished (process stopped mid-call?): hold released',
      ),
      latencyMs: null,
    };
  }
  const latencyMs = (expired.progressAt ?? expired.createdAt).getTime() - expired.createdAt.getTime();
  return decideSettlement({
    price,
    markup,
    hold: expired.hold,
    result: {
      kind: 'answered',
      usage: null,
      generatedBytes: expired.generatedBytes,
      finishReason: null,
      promptTokensBound: expired.promptTokensBound,
      costHeader: null,
      latencyMs,
      flags: ['STREAM_INTERRUPTED'],
    },
  });
}
