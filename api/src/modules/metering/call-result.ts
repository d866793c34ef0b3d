/** What the upstream answered, as billing sees it (`CallResult`, see billing.ts). */
import type { CallResult } from './billing.ts';
import type { UpstreamCompletion } from './llm.upstream.ts';
import { outputBytes } from './output-bytes.ts';
import type { StreamOutcome } from './upstream-stream.ts';

/** A non-streaming answer; `promptBound`: the bound of its prompt tokens, for an answer without usage. */
export function completionResult(answer: UpstreamCompletion, promptBound: number): CallResult {
  const { completion } = answer;
  const choice = completion.choices[0];
  return {
    kind: 'answered',
    usage: completion.usage
      ? { promptTokens: completion.usage.prompt_tokens, completionTokens: completion.usage.completion_tokens }
      : null,
    generatedBytes: outputBytes(choice?.message),
    finishReason: choice?.finish_reason ?? null,
    promptTokensBound: promptBound,
    costHeader: answer.costHeader,
    latencyMs: answer.latencyMs,
  };
}

/** How a stream ended, for billing: one that broke off is billed for what it produced. */
export function streamResult(
  outcome: StreamOutcome,
  promptBound: number,
  costHeader: string | null,
): CallResult {
  const failed = outcome.status === 'failed';
  const error = failed ? (outcome.error?.message ?? 'stream failed') : null;
  // Only a stream that produced nothing is free.
  if (failed && outcome.generatedBytes === 0 && !outcome.usage) {
    return { kind: 'failed', latencyMs: outcome.latencyMs, error: error as string };
  }
  return {
    kind: 'answered',
    usage: outcome.usage
      ? { promptTokens: outcome.usage.prompt_tokens, completionTokens: outcome.usage.completion_tokens }
      : null,
    generatedBytes: outcome.generatedBytes,
    finishReason: outcome.finishReason,
    promptTokensBound: promptBound,
    // A cost header (LiteLLM sends none on streams) would describe the whole answer only.
    costHeader: outcome.status === 'complete' ? costHeader : null,
    latencyMs: outcome.latencyMs,
    flags: outcome.status === 'aborted' ? ['CLIENT_DISCONNECTED'] : failed ? ['UPSTREAM_CUT'] : [],
    error,
  };
}
