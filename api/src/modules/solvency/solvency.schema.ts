import { builder } from '../../schema/builder.ts';
import type { SolvencyFigures } from './solvency.store.ts';

const fields = (name: string) =>
  builder.objectRef<SolvencyFigures>(name).implement({
    description:
      'What the treasury holds on chain against what the platform owes. outstandingCredits = creditedDeposits - chargedUsage + operatorAdjustments (the ledger, exactly).',
    fields: (t) => ({
      treasuryBalance: t.field({
        type: 'Credits',
        description: "The token's balanceOf(treasury) at asOfBlock, read from the chain.",
        resolve: (s) => s.treasuryBalance,
      }),
      outstandingCredits: t.field({
        type: 'Credits',
        description:
          'The sum of every balance: what accounts can still spend, what calls in flight hold included.',
        resolve: (s) => s.outstandingCredits,
      }),
      heldCredits: t.field({
        type: 'Credits',
        description: 'The part of outstandingCredits that calls in flight hold.',
        resolve: (s) => s.heldCredits,
      }),
      creditedDeposits: t.field({
        type: 'Credits',
        description: 'Credits of on-chain payments: DEPOSIT entries net of the corrections of deep reorgs.',
        resolve: (s) => s.creditedDeposits,
      }),
      chargedUsage: t.field({
        type: 'Credits',
        description: "What calls were charged (USAGE entries, operators' refunds deducted).",
        resolve: (s) => s.chargedUsage,
      }),
      operatorAdjustments: t.field({
        type: 'Credits',
        description: "Operators' ADJUSTMENTs (adjustBalance), signed.",
        resolve: (s) => s.operatorAdjustments,
      }),
      accountDebt: t.field({
        type: 'Credits',
        description:
          'What deep reorgs left accounts owing the platform (not subtracted from outstandingCredits).',
        resolve: (s) => s.accountDebt,
      }),
      asOfBlock: t.field({ type: 'BigInt', resolve: (s) => s.asOfBlock }),
      takenAt: t.field({
        type: 'DateTime',
        description: 'When the figures were read.',
        resolve: (s) => s.takenAt,
      }),
    }),
  });

const SolvencyRef = fields('Solvency');
const SolvencySnapshotRef = fields('SolvencySnapshot');

builder.queryField('solvency', (t) =>
  t.field({
    type: SolvencyRef,
    description:
      'Public (no sign-in): the figures now, the treasury read from the chain at its newest block.',
    resolve: (_root, _args, ctx) => ctx.services.solvency.current(),
  }),
);

builder.queryField('solvencyHistory', (t) =>
  t.field({
    type: [SolvencySnapshotRef],
    description:
      'Public: the figures as recorded every SOLVENCY_SNAPSHOT_MS, taken in [from, to), oldest first (the newest 2,000 of them).',
    args: {
      from: t.arg({ type: 'DateTime', required: true }),
      to: t.arg({ type: 'DateTime', required: true }),
    },
    resolve: (_root, args, ctx) => ctx.services.solvency.history({ from: args.from, to: args.to }),
  }),
);
