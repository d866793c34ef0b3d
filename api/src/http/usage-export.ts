/**
 * The body of `GET /v1/usage/export`: the caller's usage rows as CSV or JSON, streamed page by page
 * (never the whole history in memory).
 */
import { formatCredits, type MicroUsd } from '@chainmeter/schema';
import type { UsageView } from '../modules/metering/metering.service.ts';

type UsageExportFormat = 'csv' | 'json';

const CSV_COLUMNS = [
  'id',
  'created_at',
  'request_id',
  'model',
  'api_key_id',
  'prompt_tokens',
  'completion_tokens',
  'provider_cost_micro_usd',
  'user_price_micro_usd',
  'provider_cost_credits',
  'user_price_credits',
  'billing_status',
  'latency_ms',
  'flags',
] as const;

type UsageExportRecord = Record<(typeof CSV_COLUMNS)[number], string | number | null>;

function usageExportRecord(usage: UsageView): UsageExportRecord {
  return {
    id: usage.id,
    created_at: usage.createdAt.toISOString(),
    request_id: usage.requestId,
    model: usage.model,
    api_key_id: usage.apiKeyId,
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    provider_cost_micro_usd: usage.providerCost === null ? null : usage.providerCost.toString(),
    user_price_micro_usd: usage.userPrice.toString(),
    provider_cost_credits: usage.providerCost === null ? null : formatCredits(usage.providerCost as MicroUsd),
    user_price_credits: formatCredits(usage.userPrice as MicroUsd),
    billing_status: usage.billingStatus,
    latency_ms: usage.latencyMs,
    flags: usage.flags.join(' '),
  };
}

function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  // Quote when needed; a leading = + - @ is neutralised so a spreadsheet never runs it as a formula. Only a
  // whole number is left alone: "-1+cmd|' /C calc'!A0" starts like one and is a formula all the same.
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d+(?:\.\d+)?$/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

const encoder = new TextEncoder();

/** The pages of usage rows as a CSV (with a header line) or JSON array body. */
export function usageExportStream(
  pages: AsyncGenerator<UsageView[]>,
  format: UsageExportFormat,
): ReadableStream<Uint8Array> {
  let started = false;
  let first = true;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(encoder.encode(format === 'csv' ? `${CSV_COLUMNS.join(',')}\n` : '['));
        return;
      }
      const next = await pages.next();
      if (next.done) {
        if (format === 'json') controller.enqueue(encoder.encode(first ? ']\n' : '\n]\n'));
        controller.close();
        return;
      }
      let text = '';
      for (const usage of next.value) {
        const record = usageExportRecord(usage);
        if (format === 'csv') {
          text += `${CSV_COLUMNS.map((column) => csvField(record[column])).join(',')}\n`;
        } else {
          text += `${first ? '\n' : ',\n'}${JSON.stringify(record)}`;
          first = false;
        }
      }
      controller.enqueue(encoder.encode(text));
    },
    async cancel() {
      await pages.return(undefined);
    },
  });
}
