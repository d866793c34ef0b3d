/** What the upstream answered, as billing sees it (`CallResult`, see billing.ts). */
import type { CallResult } from './billing.ts';
import type { UpstreamCompletion } from './llm.upstream.ts';
import { type ChoiceOutput, completionTokensBound, outputBytes } from './output-bytes.ts';
import { parseReportedUsage } from './reported-usage.ts';
import type { StreamOutcome } from './upstream-stream.ts';

/** What billing needs to know of the call's request. */
export interface CallBounds {
  /** The bound of its prompt tokens, for an answer without (believable) usage. */
  promptBound: number;
  /** Its output limit per choice (`max_tokens`). */
  maxTokens: number;
}

/** The reported usage as billing takes it: believed, invalid, or none. */
function reportedUsage(
  raw: unknown,
): Pick<Extract<CallResult, { kind: 'answered' }>, 'usage' | 'usageInvalid' | 'totalTokens'> {
  const reported = parseReportedUsage(raw);
  if (reported === null) return { usage: null };
  if (reported.kind === 'invalid') return { usage: null, usageInvalid: true };
  return { usage: reported.counts, totalTokens: reported.totalTokens };
}

/** Every choice's output, bounded, and the finish reason of the first choice that has one. */
function outputOf(
  choices: readonly ChoiceOutput[],
  bounds: CallBounds,
): Pick<
  Extract<CallResult, { kind: 'answered' }>,
  'generatedBytes' | 'finishReason' | 'completionTokensBound' | 'maxCompletionTokens'
> {
  return {
    generatedBytes: choices.reduce((sum, choice) => sum + choice.bytes, 0),
    finishReason: choices.find((choice) => choice.finishReason !== null)?.finishReason ?? null,
    completionTokensBound: completionTokensBound(choices, bounds.maxTokens),
    maxCompletionTokens: bounds.maxTokens * Math.max(1, choices.length),
  };
}

/** A non-streaming answer: every choice counts (an upstream may answer more than the one asked for). */
export function completionResult(answer: UpstreamCompletion, bounds: CallBounds): CallResult {
  const { completion } = answer;
  const choices = completion.choices.map((choice) => ({
    bytes: outputBytes(choice?.message),
    finishReason: typeof choice?.finish_reason === 'string' ? choice.finish_reason : null,
  }));
  return {
    kind: 'answered',
    ...reportedUsage(completion.usage),
    ...outputOf(choices, bounds),
    promptTokensBound: bounds.promptBound,
    costHeader: answer.costHeader,
    latencyMs: answer.latencyMs,
  };
}

/**
 * How a stream ended, for billing: one that broke off is billed for what it produced. A cost header is never
 * believed on a stream: headers leave before anything is generated, so it cannot be the answer's cost
 * (LiteLLM sends none; one that came would price a long answer at whatever it said).
 */
export function streamResult(outcome: StreamOutcome, bounds: CallBounds): CallResult {
  const failed = outcome.status === 'failed';
  const error = failed ? (outcome.error?.message ?? 'stream failed') : null;
  // Only a stream that produced nothing is free.
  if (failed && outcome.generatedBytes === 0 && !outcome.usage) {
    return { kind: 'failed', latencyMs: outcome.latencyMs, error: error as string };
  }
  return {
    kind: 'answered',
    ...reportedUsage(outcome.usage),
    ...outputOf(outcome.choices, bounds),
    promptTokensBound: bounds.promptBound,
    costHeader: null,
    latencyMs: outcome.latencyMs,
    flags: outcome.status === 'aborted' ? ['CLIENT_DISCONNECTED'] : failed ? ['UPSTREAM_CUT'] : [],
    error,
  };
}
