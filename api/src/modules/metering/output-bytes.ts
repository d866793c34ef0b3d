/**
 * UTF-8 bytes of everything a message (or a stream's delta) generated: content, reasoning
 * (`reasoning_content` as DeepSeek and LiteLLM name it, `reasoning` as OpenRouter and vLLM do), refusal,
 * tool and function calls (names and arguments) and audio transcripts. Billing counts all of it as
 * generated output (billing.ts): a reasoning model's answer with empty `content` is not empty.
 * @example outputBytes({ content: '', reasoning_content: 'hmm' }) // 3
 */
export function outputBytes(part: unknown): number {
  if (!part || typeof part !== 'object') return 0;
  const fields = part as Record<string, unknown>;
  let bytes = 0;
  for (const field of ['content', 'reasoning_content', 'reasoning', 'refusal'])
    bytes += textBytes(fields[field]);
  if (Array.isArray(fields.tool_calls)) {
    for (const call of fields.tool_calls)
      bytes += functionBytes((call as { function?: unknown } | null)?.function);
  }
  bytes += functionBytes(fields.function_call);
  bytes += textBytes((fields.audio as { transcript?: unknown } | null | undefined)?.transcript);
  return bytes;
}

function textBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (Array.isArray(value)) {
    return value.reduce<number>((sum, part) => sum + textBytes((part as { text?: unknown } | null)?.text), 0);
  }
  return 0;
}

function functionBytes(call: unknown): number {
  if (!call || typeof call !== 'object') return 0;
  const { name, arguments: args } = call as { name?: unknown; arguments?: unknown };
  return textBytes(name) + textBytes(args);
}

/** What one choice of an answer generated: its output's bytes ({@link outputBytes}) and how it finished. */
export interface ChoiceOutput {
  bytes: number;
  finishReason: string | null;
}

/**
 * The most completion tokens the choices' output can be: per choice its bytes (a token is at least a byte),
 * at most `maxTokens`, and `maxTokens` for a choice the upstream says it cut at that limit (output it did not
 * show, hidden reasoning say, counts too).
 * @example completionTokensBound([{ bytes: 3, finishReason: 'length' }, { bytes: 900, finishReason: 'stop' }], 50) // 100
 */
export function completionTokensBound(choices: readonly ChoiceOutput[], maxTokens: number): number {
  let tokens = 0;
  for (const choice of choices) {
    tokens += choice.finishReason === 'length' ? maxTokens : Math.min(choice.bytes, maxTokens);
  }
  return tokens;
}
