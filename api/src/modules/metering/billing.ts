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
 *   can bill): completion tokens = UTF-8 bytes of the generated output (every token of a byte-level
 *   tokenizer is at least one byte), prompt tokens = the hold's upper bound for the messages; flagged
 *   `USAGE_ESTIMATED`. It stays within the hold, because the hold is computed from the same bounds.
 * - A call whose process died (its hold expired): released, unless it was a stream whose heartbeat had
 *   recorded generated output; that is billed like a cut stream for what was recorded, flagged
 *   `STREAM_INTERRUPTED` (output generated after the last beat is not billed).
 */
import type { MicroUsd, Ratio } from '@chainmeter/schema';
import type { ExpiredHold } from './hold.store.ts';
import { costFromHeader, costFromUsage, type ModelPrice, userPrice } from './pricing.ts';
import type { Settlement } from './settlement.ts';

export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
}

export type CallResult =
  | {
      /** The upstream answered, or a stream produced something before it ended, broke off or was left. */
      kind: 'answered';
      /** The upstream's reported usage, or null when it never arrived (see `generatedBytes`). */
      usage: TokenCounts | null;
      /** UTF-8 bytes of everything generated: content, reasoning, refusal, tool calls. */
      generatedBytes: number;
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

export function decideSettlement({ price, markup, hold, result }: DecideSettlementParameters): Settlement {
  if (result.kind === 'failed') {
    return released(0, 0, result.latencyMs, [], result.error);
  }
  const flags = [...(result.flags ?? [])];
  const error = result.error ?? null;
  const reported = result.usage;
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
  let tokens = reported;
  if (!tokens) {
    tokens = { promptTokens: result.promptTokensBound, completionTokens: result.generatedBytes };
    flags.push('USAGE_ESTIMATED');
  }
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
