/**
 * What a finished call costs: a pure decision from the call's result, the price table and the hold.
 *
 * - Provider cost: the `x-litellm-response-cost` header when the upstream sent one (non-streaming, or a
 *   stream that completed), else the price table x the reported usage, else unknown.
 * - Unknown provider cost (the model has no price and no header): NEEDS_REVIEW, user price 0, flag
 *   `UNPRICED`. We do not guess a price the user never saw; the row is recorded with its tokens, counted
 *   in `usageSummary.needsReview`, logged, and an operator prices it (a later ADJUSTMENT entry).
 * - User price = provider cost x markup rounded up (`userPrice`). The hold bounds it: a price above the
 *   hold (only possible when a header cost exceeds the table's estimate) is capped at the hold and flagged
 *   `PRICE_CAPPED_AT_HOLD`; a provider cost above the hold itself is NEEDS_REVIEW at the hold, flagged
 *   `COST_EXCEEDS_HOLD` (BILLED always means user price >= provider cost).
 * - Upstream error, timeout, broken stream, empty completion: RELEASED, nothing charged.
 * - A stream whose usage never arrived (the client disconnected, or it ended without a usage chunk) is
 *   billed for what was generated, counted conservatively (never below what the provider can bill):
 *   completion tokens = UTF-8 bytes of the generated text (every token of a byte-level tokenizer is at
 *   least one byte), prompt tokens = the hold's upper bound for the messages; flagged `USAGE_ESTIMATED`.
 *   It stays within the hold, because the hold is computed from the same bounds. Nothing generated: nothing
 *   charged.
 * - A call whose process died (its hold expired): released, unless it was a stream whose heartbeat had
 *   recorded generated text; that is billed like a cut stream for what was recorded, flagged
 *   `STREAM_INTERRUPTED` (text generated after the last beat is not billed).
 */
import type { MicroUsd, Ratio } from '@chainmeter/schema';
import type { ExpiredHold, Settlement } from './metering.store.ts';
import { costFromHeader, costFromUsage, type ModelPrice, userPrice } from './pricing.ts';

export type CallResult =
  | {
      kind: 'answered';
      /** The upstream's reported usage, or null when it never arrived (see `generatedBytes`). */
      usage: { promptTokens: number; completionTokens: number } | null;
      /** Bytes of generated text, for a stream without usage. */
      generatedBytes: number;
      /** Used only when `usage` is null. */
      promptTokensBound: number;
      costHeader: string | null;
      latencyMs: number;
      flags?: string[];
    }
  | { kind: 'empty'; latencyMs: number; usage: { promptTokens: number; completionTokens: number } | null }
  | { kind: 'failed'; latencyMs: number; error: string };

export interface DecideSettlementParameters {
  price: ModelPrice | undefined;
  markup: Ratio;
  hold: MicroUsd;
  result: CallResult;
}

export function decideSettlement({ price, markup, hold, result }: DecideSettlementParameters): Settlement {
  if (result.kind === 'failed') {
    return released(0, 0, result.latencyMs, [], result.error);
  }
  if (result.kind === 'empty') {
    return released(
      result.usage?.promptTokens ?? 0,
      result.usage?.completionTokens ?? 0,
      result.latencyMs,
      ['EMPTY_COMPLETION'],
      null,
    );
  }
  const flags = [...(result.flags ?? [])];
  let tokens = result.usage;
  if (!tokens) {
    if (result.generatedBytes === 0)
      return released(0, 0, result.latencyMs, [...flags, 'NOTHING_GENERATED'], null);
    tokens = { promptTokens: result.promptTokensBound, completionTokens: result.generatedBytes };
    flags.push('USAGE_ESTIMATED');
  }
  // A header describes the whole answer; with estimated usage the answer was cut, so price the part.
  const headerCost = result.usage ? costFromHeader(result.costHeader) : null;
  const providerCost = headerCost ?? (price ? costFromUsage(price, tokens) : null);
  const base = {
    promptTokens: tokens.promptTokens,
    completionTokens: tokens.completionTokens,
    latencyMs: result.latencyMs,
    error: null,
  };
  if (providerCost === null) {
    return {
      ...base,
      status: 'NEEDS_REVIEW',
      providerCost: null,
      userPrice: 0n as MicroUsd,
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
      promptTokensBound: expired.promptTokensBound,
      costHeader: null,
      latencyMs,
      flags: ['STREAM_INTERRUPTED'],
    },
  });
}
