/** The HTTP headers the gateway sends to, and reads from, the LLM upstream. */

/** LiteLLM's header with the provider cost of the call, in USD (parsed by `costFromHeader`). */
export const COST_HEADER = 'x-litellm-response-cost';
export const REQUEST_ID_HEADER = 'x-request-id';

/** `Authorization: Bearer <key>` when the upstream has a key; nothing otherwise. */
export function authorizationHeader(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/**
 * A response header as node:http gives it (a list for a repeated header) reduced to its first value,
 * or null when absent.
 */
export function firstHeaderValue(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}
