import { sqlFor } from '../../db/sql.ts';
import { builder } from '../../schema/builder.ts';
import { PaymentConfigRef } from '../deposits/deposits.schema.ts';
import { type RelayedPayment, relayPayment } from './relay-payment.service.ts';

/** A signed EIP-3009 TransferWithAuthorization of the configured USDC (also what auto top-up holds). */
export const TransferAuthorizationInputRef = builder.inputType('TransferAuthorizationInput', {
  description:
    "A signed EIP-3009 TransferWithAuthorization of the configured USDC on this chain, in the token's own EIP-712 domain (its name() and version()). `to` must be the treasury.",
  fields: (t) => ({
    from: t.field({ type: 'Address', required: true, description: 'The payer: the wallet that signed.' }),
    to: t.field({ type: 'Address', required: true, description: 'The treasury.' }),
    value: t.field({ type: 'BigInt', required: true, description: 'Token base units (micro-USD).' }),
    validAfter: t.field({ type: 'BigInt', required: true, description: 'Unix seconds.' }),
    validBefore: t.field({ type: 'BigInt', required: true, description: 'Unix seconds.' }),
    nonce: t.field({ type: 'Hash', required: true, description: 'A random 32-byte authorization nonce.' }),
    signature: t.string({
      required: true,
      description: "The 65-byte ECDSA signature, or a contract wallet's EIP-1271 signature bytes (hex).",
    }),
  }),
});

const RelayedPaymentRef = builder.objectRef<RelayedPayment>('RelayedPayment').implement({
  description:
    'A submitted gasless top-up. It is credited like any payment: follow depositUpdated (PENDING, then CREDITED).',
  fields: (t) => ({
    txHash: t.field({ type: 'Hash', resolve: (payment) => payment.txHash }),
    amountToken: t.field({ type: 'BigInt', resolve: (payment) => payment.amountToken }),
  }),
});

builder.mutationField('relayPayment', (t) =>
  t.field({
    type: RelayedPaymentRef,
    description:
      'Gasless top-up: the relayer submits a signed USDC authorization to the treasury and pays the gas. Resolves once submitted. Refusals are BAD_USER_INPUT with `extensions.reason` (WRONG_RECIPIENT, BELOW_MINIMUM, NOT_YET_VALID, EXPIRED, INVALID_SIGNATURE, AUTHORIZATION_USED, INSUFFICIENT_FUNDS, SIMULATION_FAILED, ...), RATE_LIMITED, or FORBIDDEN when relaying is off; nothing is submitted then.',
    args: { input: t.arg({ type: TransferAuthorizationInputRef, required: true }) },
    resolve: (_root, { input }, ctx) =>
      relayPayment(
        {
          config: ctx.services.config,
          relayer: ctx.services.relayer,
          sql: sqlFor(ctx.services.orm),
          rateLimits: ctx.services.rateLimits,
          logger: ctx.log,
        },
        input,
        ctx.clientIp,
      ),
  }),
);

builder.objectField(PaymentConfigRef, 'gaslessMinAmount', (t) =>
  t.field({
    type: 'BigInt',
    nullable: true,
    description:
      'The smallest gasless top-up (relayPayment), in token base units; null when gasless top-ups are off.',
    resolve: (_config, _args, ctx) => (ctx.services.relayer ? ctx.services.config.relay.minAmount : null),
  }),
);
