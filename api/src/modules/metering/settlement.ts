/**
 * How a call ends for billing, as the stores take it and as a failed settlement keeps it on its usage
 * record (JSON in `outcome`) until a retry applies it.
 */
import type { MicroUsd } from '@chainmeter/schema';
import type { BillingStatus } from './metering.entity.ts';

/** How a call ends for billing: computed once (see `billing.ts`), stored if settling fails, re-applied as is. */
export interface Settlement {
  status: BillingStatus | 'RELEASED';
  promptTokens: number;
  completionTokens: number;
  providerCost: MicroUsd | null;
  userPrice: MicroUsd;
  latencyMs: number | null;
  flags: string[];
  error: string | null;
}

export type SettleResult =
  | { settled: true; ledgerEntryId: string | null; accountId: string }
  | { settled: false; reason: 'already settled' };

export interface SettleOptions {
  /**
   * Settle only a hold still HELD and expired at this time (the expiry sweep), checked in the statement that
   * locks or writes the record: a hold whose heartbeat (a live replica's) extended it after the sweep read
   * it is left alone, never released or billed under its running call.
   */
  expiredAt?: Date;
}

export function settlementToJson(s: Settlement): Record<string, unknown> {
  return {
    status: s.status,
    promptTokens: s.promptTokens,
    completionTokens: s.completionTokens,
    providerCost: s.providerCost === null ? null : s.providerCost.toString(),
    userPrice: s.userPrice.toString(),
    latencyMs: s.latencyMs,
    flags: s.flags,
    error: s.error,
  };
}

export function settlementFromJson(json: Record<string, unknown>): Settlement {
  return {
    status: json.status as Settlement['status'],
    promptTokens: Number(json.promptTokens),
    completionTokens: Number(json.completionTokens),
    providerCost: json.providerCost == null ? null : (BigInt(json.providerCost as string) as MicroUsd),
    userPrice: BigInt(json.userPrice as string) as MicroUsd,
    latencyMs: json.latencyMs == null ? null : Number(json.latencyMs),
    flags: Array.isArray(json.flags) ? (json.flags as string[]) : [],
    error: typeof json.error === 'string' ? json.error : null,
  };
}

/** A call closed with nothing charged and nothing known of its answer (a paid call refused or abandoned). */
export function releasedUnanswered(flag: string, error: string | null): Settlement {
  return {
    status: 'RELEASED',
    promptTokens: 0,
    completionTokens: 0,
    providerCost: null,
    userPrice: 0n as MicroUsd,
    latencyMs: null,
    flags: [flag],
    error,
  };
}
