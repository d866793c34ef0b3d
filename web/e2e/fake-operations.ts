/**
 * The operators' part of the fake API (see fake-api.ts): solvency now and its history, the NEEDS_REVIEW
 * queue, revenue, and the two operator mutations with the refusals the real API gives (CONFLICT for a call
 * resolved already, INSUFFICIENT_CREDITS saying what the account can spend).
 */
import { GraphQLError } from 'graphql';
import type { ExtraResolvers } from './fake-api.ts';

export interface FakeOperations {
  resolvers: ExtraResolvers;
  /** Mutations the page sent, in order. */
  actions: { kind: string; input: Record<string, unknown> }[];
}

const HOUR = 3_600_000;

/** `operator`: whether the signed-in wallet is an operator (else `operations` is null, as on the real API). */
export function fakeOperations(operator: boolean): FakeOperations {
  const actions: FakeOperations['actions'] = [];
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString();
  const queue = [
    {
      id: '0f8d2a44-1111-4c55-9d0e-2b1f7a3c9e11',
      requestId: 'req_review_1',
      model: 'chainmeter-dev-large',
      walletAddress: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC',
      promptTokens: 812,
      completionTokens: 2048,
      providerCost: '33.156',
      userPrice: '30',
      billingStatus: 'NEEDS_REVIEW',
      flags: ['COST_EXCEEDS_HOLD'],
      apiKey: null,
      createdAt: iso(now - 5 * HOUR),
    },
    {
      id: '0f8d2a44-2222-4c55-9d0e-2b1f7a3c9e11',
      requestId: 'req_review_2',
      model: 'retired-model',
      walletAddress: '0x90F79bf6EB2c4f870365E785982E1f101E93b906',
      promptTokens: 40,
      completionTokens: 300,
      providerCost: null,
      userPrice: '5',
      billingStatus: 'NEEDS_REVIEW',
      flags: ['STREAM_INTERRUPTED', 'USAGE_ESTIMATED', 'UNPRICED'],
      apiKey: null,
      createdAt: iso(now - 2 * HOUR),
    },
  ];
  const resolved = new Set<string>();
  // Snapshots every 12 hours over 6 days: the treasury grows with payments, outstanding with credits less use.
  const history = Array.from({ length: 12 }, (_, i) => ({
    takenAt: iso(now - (12 - i) * 12 * HOUR),
    treasuryBalance: String(40_000 + i * 2_500 + (i > 6 ? 4_000 : 0)),
    outstandingCredits: String(31_000 + i * 1_900 - (i > 8 ? 1_200 : 0)),
  }));
  const solvency = {
    treasuryBalance: '74500',
    outstandingCredits: '51876.482',
    heldCredits: '35',
    creditedDeposits: '74500',
    chargedUsage: '22648.518',
    operatorAdjustments: '25',
    accountDebt: '0',
    asOfBlock: '18342',
    takenAt: iso(now),
  };
  const day = (offset: number) => iso(now - offset * 86_400_000).slice(0, 10);
  const byDay = [
    {
      key: day(2),
      userPrice: '5210.4',
      providerCost: '2605.2',
      margin: '2605.2',
      calls: 412,
      needsReview: 0,
    },
    {
      key: day(1),
      userPrice: '7986.118',
      providerCost: '3993.059',
      margin: '3993.059',
      calls: 655,
      needsReview: 0,
    },
    {
      key: day(0),
      userPrice: '9452',
      providerCost: '4750.156',
      margin: '4701.844',
      calls: 771,
      needsReview: 2,
    },
  ];
  const byModel = [
    {
      key: 'chainmeter-dev',
      userPrice: '8120.518',
      providerCost: '4060.259',
      margin: '4060.259',
      calls: 1602,
      needsReview: 0,
    },
    {
      key: 'chainmeter-dev-large',
      userPrice: '14523',
      providerCost: '7288.156',
      margin: '7234.844',
      calls: 235,
      needsReview: 1,
    },
    { key: 'retired-model', userPrice: '5', providerCost: '0', margin: '5', calls: 1, needsReview: 1 },
  ];
  const fail = (code: string, message: string) => new GraphQLError(message, { extensions: { code } });

  const resolvers: ExtraResolvers = (session) => ({
    Query: {
      solvency: () => solvency,
      solvencyHistory: () => history,
      operations: () => (session.signedIn() && operator ? {} : null),
    },
    Operations: {
      needsReview: () => ({
        edges: queue.filter((row) => !resolved.has(row.id)).map((node) => ({ cursor: node.id, node })),
        pageInfo: { hasNextPage: false, hasPreviousPage: false },
      }),
      revenue: (_: unknown, args: { groupBy: string }) => (args.groupBy === 'DAY' ? byDay : byModel),
    },
    Mutation: {
      resolveUsage: (
        _: unknown,
        args: { id: string; input: { action: string; price?: string | null; reason: string } },
      ) => {
        actions.push({ kind: 'resolveUsage', input: { id: args.id, ...args.input } });
        const row = queue.find((r) => r.id === args.id);
        if (!row) throw fail('NOT_FOUND', `No call ${args.id}`);
        if (resolved.has(row.id)) throw fail('CONFLICT', `Call ${row.id} was already resolved`);
        if (args.input.action === 'BILL' && Number(args.input.price) > 1_000) {
          throw fail(
            'INSUFFICIENT_CREDITS',
            'account 7e1c can spend 120500 micro-USD (balance 120500, held by calls in flight 0, debt 0), cannot apply -970000000',
          );
        }
        resolved.add(row.id);
        return {
          ...row,
          billingStatus: 'BILLED',
          userPrice: args.input.action === 'BILL' ? args.input.price : '0',
          resolution: args.input.action,
          resolvedBy: '0x70997970C51812dc3A010C7d50e604F7d7Fa41BA',
        };
      },
      adjustBalance: (_: unknown, args: { input: { wallet: string; amount: string; reason: string } }) => {
        actions.push({ kind: 'adjustBalance', input: args.input });
        if (args.input.amount.startsWith('-') && Number(args.input.amount) < -100) {
          throw fail(
            'INSUFFICIENT_CREDITS',
            'account 7e1c can spend 100000 micro-USD (balance 100000, held by calls in flight 0, debt 0), cannot apply -250000',
          );
        }
        return {
          id: 'entry-1',
          amount: args.input.amount,
          balanceAfter: '125',
          reason: 'ADJUSTMENT',
          createdAt: iso(Date.now()),
          hash: 'f'.repeat(64),
          operator: '0x70997970C51812dc3A010C7d50e604F7d7Fa41BA',
          reasonText: args.input.reason,
        };
      },
    },
  });
  return { resolvers, actions };
}
