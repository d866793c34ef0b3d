/**
 * The usage block an upstream reports (`usage` of an answer, or of a stream's last chunk), read as billing
 * may believe it. The upstream's JSON is not trusted to be what OpenAI's types say: a count that is not a
 * non-negative integer that fits the usage row (negative, fractional, NaN, a string, 1e300) makes the whole
 * block invalid, and billing then bills from its own bound instead (flag `USAGE_INVALID`, billing.ts).
 */

/** Token counts as billing takes them. */
export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
}

/** What an upstream reported: valid counts (with `total_tokens` when it sent one), invalid, or nothing. */
export type ReportedUsage =
  | { kind: 'valid'; counts: TokenCounts; totalTokens: number | null }
  | { kind: 'invalid' }
  | null;

/** The most tokens a count may be: the usage row's integer column. No real call comes near it. */
export const MAX_REPORTED_TOKENS = 2_147_483_647;

function count(value: unknown): number | null {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) return null;
  return value >= 0 && value <= MAX_REPORTED_TOKENS ? value : null;
}

/**
 * @example parseReportedUsage({ prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 })
 * // { kind: 'valid', counts: { promptTokens: 10, completionTokens: 2 }, totalTokens: 12 }
 */
export function parseReportedUsage(usage: unknown): ReportedUsage {
  if (usage === undefined || usage === null) return null;
  if (typeof usage !== 'object' || Array.isArray(usage)) return { kind: 'invalid' };
  const fields = usage as Record<string, unknown>;
  const promptTokens = count(fields.prompt_tokens);
  const completionTokens = count(fields.completion_tokens);
  const totalTokens = fields.total_tokens == null ? null : count(fields.total_tokens);
  if (promptTokens === null || completionTokens === null) return { kind: 'invalid' };
  if (fields.total_tokens != null && totalTokens === null) return { kind: 'invalid' };
  return { kind: 'valid', counts: { promptTokens, completionTokens }, totalTokens };
}
