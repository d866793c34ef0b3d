import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import { Account } from '../accounts/accounts.entity.ts';
import { ApiKey } from '../apikeys/apikeys.entity.ts';

/** AWAITING_PAYMENT and UNPAID are a paid (x402) call's: see the x402 migration for its lifecycle. */
const USAGE_STATUSES = [
  'HELD',
  'UNSETTLED',
  'BILLED',
  'NEEDS_REVIEW',
  'RELEASED',
  'AWAITING_PAYMENT',
  'UNPAID',
] as const;
export type UsageStatus = (typeof USAGE_STATUSES)[number];
/** The statuses of a settled call: the rows users see as their usage. */
export const BILLING_STATUSES = ['BILLED', 'NEEDS_REVIEW'] as const;
export type BillingStatus = (typeof BILLING_STATUSES)[number];
/** How an operator closes a NEEDS_REVIEW call: charge a stated price, or nothing. */
export const USAGE_RESOLUTIONS = ['BILL', 'WAIVE'] as const;
export type UsageResolution = (typeof USAGE_RESOLUTIONS)[number];

/**
 * One metered LLM call: its hold while in flight, then its usage row (see the metering migration for the
 * lifecycle). Written by raw SQL on the hot path (`hold.store.ts`, `settlement.store.ts`); the ORM only reads it.
 */
export const UsageRecord = defineEntity({
  name: 'UsageRecord',
  tableName: 'usage_records',
  properties: {
    id: p.uuid().primary(),
    requestId: p.string().columnType('text').unique(),
    account: () => p.manyToOne(Account),
    apiKey: () => p.manyToOne(ApiKey).nullable(),
    model: p.string().columnType('text'),
    status: p.enum(USAGE_STATUSES).columnType('text'),
    streamed: p.boolean().default(false),
    holdAmount: p.bigint(),
    promptTokens: p.integer().default(0),
    completionTokens: p.integer().default(0),
    /** Micro-USD; null when unknown (NEEDS_REVIEW, or not settled yet). */
    providerCost: p.bigint().nullable(),
    userPrice: p.bigint().default(0),
    latencyMs: p.integer().nullable(),
    flags: p.array().columnType('text[]').default([]),
    error: p.string().columnType('text').nullable(),
    outcome: p.json<Record<string, unknown>>().nullable(),
    settleAttempts: p.integer().default(0),
    createdAt: p.datetime(),
    holdExpiresAt: p.datetime(),
    /** A stream's generated UTF-8 bytes as of its process's last heartbeat (billed if the process dies). */
    generatedBytes: p.bigint().default(0),
    promptTokensBound: p.integer().nullable(),
    progressAt: p.datetime().nullable(),
    settledAt: p.datetime().nullable(),
    /** An operator's resolution of a NEEDS_REVIEW call (`resolveUsage`): BILL or WAIVE, by whom, why, when. */
    resolution: p.enum(USAGE_RESOLUTIONS).columnType('text').nullable(),
    resolvedBy: p.string().columnType('text').nullable(),
    resolutionReason: p.string().columnType('text').nullable(),
    resolvedAt: p.datetime().nullable(),
    /** What the call had been charged (its hold) before the operator's resolution. */
    chargedBeforeResolution: p.bigint().nullable(),
    /** A paid call's (x402) scheme, `exact` or `upto`; null for a keyed call (so are the four below). */
    paymentScheme: p.string().columnType('text').nullable(),
    payerAddress: p.string().columnType('text').nullable(),
    /** Its settlement's transaction, once broadcast (replaced when a deep reorg made it be submitted again). */
    paymentTxHash: p.string().columnType('text').nullable(),
    /** What the payer signed for (micro-USD). */
    paymentAmount: p.bigint().nullable(),
    /** The signed payment as received, kept to submit it again after a deep reorg. */
    paymentPayload: p.json<Record<string, unknown>>().nullable(),
    /** The signed authorization the payment spends (signer and nonce): it pays for one call. */
    paymentAuthorization: p.string().columnType('text').nullable(),
    /**
     * An UNPAID `upto` call still to be settled again: when it was last tried (first: when it became UNPAID);
     * null once it is not to be tried again (x402 `paid-call-resubmission.ts`).
     */
    paymentRetriedAt: p.datetime().nullable(),
    /** Whether the call's hold is on its account's `held` (always for a keyed call). */
    accountHeld: p.boolean().default(true),
  },
});

export type IUsageRecord = InferEntity<typeof UsageRecord>;
