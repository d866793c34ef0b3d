import {
  type AccountProof,
  type AuditAccount,
  type AuditLedgerEntry,
  type AuditPaidCall,
  type AuditReport,
  accountProofToJson,
  type DepositReference,
  DISCREPANCY_KINDS,
  type Discrepancy,
  formatAuditMarkdown,
  type ReversedCredit,
} from '@chainmeter/schema';
import { viewerOf } from '../../context.ts';
import { badInput, forbidden, notFound } from '../../errors.ts';
import { builder } from '../../schema/builder.ts';
import { toConnection } from '../../schema/pagination.ts';
import {
  auditAccountCursor,
  auditEntryCursor,
  auditPaidCallCursor,
  buildAccountProof,
  listAuditAccounts,
  listAuditEntries,
  listAuditPaidCalls,
  runAuditReport,
} from './audit.service.ts';

const AuditAccountRef = builder.objectRef<AuditAccount>('AuditAccount').implement({
  description: 'An account as stored, for auditors: its balance and the head of its hash chain.',
  fields: (t) => ({
    accountId: t.exposeID('accountId'),
    walletAddress: t.field({ type: 'Address', resolve: (a) => a.walletAddress }),
    balanceMicroUsd: t.field({ type: 'BigInt', resolve: (a) => a.balance }),
    heldMicroUsd: t.field({
      type: 'BigInt',
      nullable: true,
      description: 'What calls in flight hold (part of the balance).',
      resolve: (a) => a.held ?? null,
    }),
    debtMicroUsd: t.field({
      type: 'BigInt',
      description:
        'What reorgs deeper than CONFIRMATIONS took back and the account could not pay: the sum, over its deposits that are not CREDITED, of their DEPOSIT entry and the ADJUSTMENTs referencing them.',
      resolve: (a) => a.debt,
    }),
    ledgerSeq: t.exposeInt('ledgerSeq', { description: 'Number of ledger entries (the newest seq).' }),
    ledgerHead: t.exposeString('ledgerHead', {
      nullable: true,
      description: 'Hash of the newest entry; null before the first.',
    }),
  }),
});

const DepositReferenceRef = builder.objectRef<DepositReference>('AuditDepositReference').implement({
  description: 'The on-chain log a DEPOSIT entry credits, as the platform recorded it.',
  fields: (t) => ({
    chainId: t.exposeInt('chainId'),
    txHash: t.field({ type: 'Hash', resolve: (d) => d.txHash }),
    logIndex: t.exposeInt('logIndex'),
    blockNumber: t.field({ type: 'BigInt', resolve: (d) => d.blockNumber }),
    from: t.field({ type: 'Address', resolve: (d) => d.from }),
    amountToken: t.field({ type: 'BigInt', resolve: (d) => d.amountToken }),
    amountMicroUsd: t.field({ type: 'BigInt', resolve: (d) => d.amount }),
    status: t.exposeString('status', {
      description:
        'CREDITED, or REORGED (PENDING once mined again) after a reorg deeper than CONFIRMATIONS took the credit back.',
    }),
  }),
});

const AuditLedgerEntryRef = builder.objectRef<AuditLedgerEntry>('AuditLedgerEntry').implement({
  description:
    'A ledger entry with every field its hash covers (see ledgerEntryHash in @chainmeter/schema): hash = sha256 of ["chainmeter-ledger-v1", prevHash, accountId, seq, amountMicroUsd, balanceAfterMicroUsd, reason, referenceId, createdAt], followed by "operator", operator, reasonText on entries an operator wrote.',
  fields: (t) => ({
    accountId: t.exposeID('accountId'),
    seq: t.exposeInt('seq'),
    amountMicroUsd: t.field({ type: 'BigInt', resolve: (e) => e.amount }),
    balanceAfterMicroUsd: t.field({ type: 'BigInt', resolve: (e) => e.balanceAfter }),
    reason: t.exposeString('reason'),
    referenceId: t.exposeString('referenceId'),
    createdAt: t.field({ type: 'DateTime', resolve: (e) => e.createdAt }),
    prevHash: t.string({ nullable: true, resolve: (e) => e.prevHash ?? null }),
    hash: t.exposeString('hash'),
    operator: t.string({
      nullable: true,
      description: 'The operator who wrote the entry (adjustBalance, resolveUsage); hashed with it when set.',
      resolve: (e) => e.operator ?? null,
    }),
    reasonText: t.string({
      nullable: true,
      description: "The operator's reason.",
      resolve: (e) => e.reasonText ?? null,
    }),
    deposit: t.field({ type: DepositReferenceRef, nullable: true, resolve: (e) => e.deposit }),
  }),
});

const AuditAccountConnection = builder.connectionObject({
  type: AuditAccountRef,
  name: 'AuditAccountConnection',
});
const AuditLedgerEntryConnection = builder.connectionObject({
  type: AuditLedgerEntryRef,
  name: 'AuditLedgerEntryConnection',
});

const AuditPaidCallRef = builder.objectRef<AuditPaidCall>('AuditPaidCall').implement({
  description:
    'A call paid per request (x402) as recorded, with its settlement (the transfer to the treasury that pays it).',
  fields: (t) => ({
    usageId: t.exposeID('usageId'),
    accountId: t.exposeID('accountId'),
    payer: t.field({ type: 'Address', resolve: (c) => c.payer }),
    scheme: t.exposeString('scheme'),
    status: t.exposeString('status', {
      description: 'HELD, AWAITING_PAYMENT, BILLED, NEEDS_REVIEW, RELEASED or UNPAID.',
    }),
    holdAmountMicroUsd: t.field({ type: 'BigInt', resolve: (c) => c.holdAmount }),
    userPriceMicroUsd: t.field({ type: 'BigInt', resolve: (c) => c.userPrice }),
    txHash: t.field({ type: 'Hash', nullable: true, resolve: (c) => c.txHash }),
    settlementBlock: t.field({ type: 'BigInt', nullable: true, resolve: (c) => c.settlementBlock }),
    settlementCredited: t.exposeBoolean('settlementCredited'),
  }),
});
const AuditPaidCallConnection = builder.connectionObject({
  type: AuditPaidCallRef,
  name: 'AuditPaidCallConnection',
});

// biome-ignore lint/complexity/noBannedTypes: the `audit` namespace object carries no data.
const AuditRef = builder.objectRef<{}>('Audit').implement({
  description:
    'Read-only views of every record, for auditors (pages of up to 1,000). Read `accounts` before `ledgerEntries`: entries newer than an account snapshot are then recognisable by seq.',
  fields: (t) => ({
    accounts: t.field({
      type: AuditAccountConnection,
      args: { first: t.arg.int(), after: t.arg.string() },
      resolve: async (_root, args, ctx) =>
        toConnection(await listAuditAccounts(ctx.em, args), auditAccountCursor),
    }),
    ledgerEntries: t.field({
      type: AuditLedgerEntryConnection,
      description: 'Every ledger entry of every account, ordered by (accountId, seq).',
      args: { first: t.arg.int(), after: t.arg.string() },
      resolve: async (_root, args, ctx) =>
        toConnection(await listAuditEntries(ctx.em, args), auditEntryCursor),
    }),
    paidCalls: t.field({
      type: AuditPaidCallConnection,
      description: 'Every call paid per request (x402), ordered by usage id.',
      args: { first: t.arg.int(), after: t.arg.string() },
      resolve: async (_root, args, ctx) =>
        toConnection(await listAuditPaidCalls(ctx.em, args), auditPaidCallCursor),
    }),
  }),
});

builder.queryField('audit', (t) =>
  t.field({
    type: AuditRef,
    description: "Every account's records, for the audit CLI. Auditor role only.",
    authScopes: { auditor: true },
    resolve: () => ({}),
  }),
);

const DiscrepancyKindRef = builder.enumType('AuditDiscrepancyKind', { values: DISCREPANCY_KINDS });

const DiscrepancyRef = builder.objectRef<Discrepancy>('AuditDiscrepancy').implement({
  fields: (t) => ({
    kind: t.field({ type: DiscrepancyKindRef, resolve: (d) => d.kind }),
    accountId: t.exposeID('accountId', { nullable: true }),
    walletAddress: t.field({ type: 'Address', nullable: true, resolve: (d) => d.walletAddress }),
    txHash: t.field({ type: 'Hash', nullable: true, resolve: (d) => d.txHash }),
    logIndex: t.exposeInt('logIndex', { nullable: true }),
    blockNumber: t.field({ type: 'BigInt', nullable: true, resolve: (d) => d.blockNumber }),
    seq: t.exposeInt('seq', { nullable: true, description: 'The ledger entry concerned.' }),
    expected: t.exposeString('expected', { nullable: true }),
    actual: t.exposeString('actual', { nullable: true }),
    message: t.exposeString('message'),
  }),
});

const DiscrepancyCountRef = builder
  .objectRef<{ kind: (typeof DISCREPANCY_KINDS)[number]; count: number }>('AuditDiscrepancyCount')
  .implement({
    fields: (t) => ({
      kind: t.field({ type: DiscrepancyKindRef, resolve: (c) => c.kind }),
      count: t.exposeInt('count'),
    }),
  });

const AuditSummaryRef = builder.objectRef<AuditReport['summary']>('AuditSummary').implement({
  fields: (t) => ({
    transfersOnChain: t.exposeInt('transfersOnChain'),
    transfersNotCreditable: t.exposeInt('transfersNotCreditable'),
    transfersDue: t.exposeInt('transfersDue'),
    transfersNotYetDue: t.exposeInt('transfersNotYetDue'),
    transfersCredited: t.exposeInt('transfersCredited'),
    accounts: t.exposeInt('accounts'),
    ledgerEntries: t.exposeInt('ledgerEntries'),
    depositCredits: t.exposeInt('depositCredits'),
    creditsBeforeFromBlock: t.exposeInt('creditsBeforeFromBlock'),
    creditsAfterHead: t.exposeInt('creditsAfterHead'),
    creditsReversed: t.exposeInt('creditsReversed', {
      description:
        'Credits whose transfer a reorg deeper than CONFIRMATIONS removed, reversed by ADJUSTMENTs in full or down to a debt.',
    }),
    totalDue: t.field({ type: 'Credits', resolve: (s) => s.totalDue }),
    totalCredited: t.field({ type: 'Credits', resolve: (s) => s.totalCredited }),
    totalBalance: t.field({ type: 'Credits', resolve: (s) => s.totalBalance }),
    operatorAdjustments: t.exposeInt('operatorAdjustments', {
      description:
        'ADJUSTMENTs written by operators (adjustBalance): each carries the operator and a reason.',
    }),
    totalOperatorAdjusted: t.field({ type: 'Credits', resolve: (s) => s.totalOperatorAdjusted }),
    totalDebt: t.field({
      type: 'Credits',
      description: 'What the accounts owe after reorgs deeper than CONFIRMATIONS (their stored debts).',
      resolve: (s) => s.totalDebt,
    }),
  }),
});

const ReversedCreditRef = builder.objectRef<ReversedCredit>('AuditReversedCredit').implement({
  description:
    'A credit whose transfer a reorg deeper than CONFIRMATIONS removed, reversed in full or down to what the account still owes for it.',
  fields: (t) => ({
    accountId: t.exposeID('accountId'),
    walletAddress: t.field({ type: 'Address', nullable: true, resolve: (r) => r.walletAddress }),
    txHash: t.field({ type: 'Hash', resolve: (r) => r.txHash }),
    logIndex: t.exposeInt('logIndex'),
    blockNumber: t.field({ type: 'BigInt', resolve: (r) => r.blockNumber }),
    seq: t.exposeInt('seq'),
    amount: t.field({ type: 'Credits', resolve: (r) => r.amount }),
    owed: t.field({
      type: 'Credits',
      description: 'What the account still owes of it (part of its debt); 0 when reversed in full.',
      resolve: (r) => r.owed,
    }),
  }),
});

const AuditReportRef = builder.objectRef<AuditReport>('AuditReport').implement({
  description: 'Every credit re-derived from the chain (read through the RPC, not the indexer).',
  fields: (t) => ({
    consistent: t.exposeBoolean('consistent'),
    chainId: t.exposeInt('chainId'),
    tokenAddress: t.field({ type: 'Address', resolve: (r) => r.tokenAddress }),
    treasuryAddress: t.field({ type: 'Address', resolve: (r) => r.treasuryAddress }),
    confirmations: t.exposeInt('confirmations'),
    fromBlock: t.field({ type: 'BigInt', resolve: (r) => r.fromBlock }),
    head: t.field({
      type: 'BigInt',
      description: 'The chain head the logs were read up to.',
      resolve: (r) => r.head,
    }),
    summary: t.field({ type: AuditSummaryRef, resolve: (r) => r.summary }),
    counts: t.field({
      type: [DiscrepancyCountRef],
      resolve: (r) => DISCREPANCY_KINDS.map((kind) => ({ kind, count: r.counts[kind] })),
    }),
    discrepancies: t.field({ type: [DiscrepancyRef], resolve: (r) => r.discrepancies }),
    reversedCredits: t.field({ type: [ReversedCreditRef], resolve: (r) => r.reversedCredits }),
    markdown: t.string({ description: 'The report as Markdown.', resolve: (r) => formatAuditMarkdown(r) }),
  }),
});

builder.queryField('auditReport', (t) =>
  t.field({
    type: AuditReportRef,
    description:
      "The audit CLI's report, run server-side against the API's chain RPC and database. Auditor role only.",
    authScopes: { auditor: true },
    args: { fromBlock: t.arg({ type: 'BigInt', required: false }) },
    resolve: async (_root, args, ctx) => {
      if (args.fromBlock != null && args.fromBlock < 0n)
        throw badInput('fromBlock must be >= 0', 'fromBlock');
      const report = await runAuditReport(ctx.em, {
        chain: ctx.services.chain,
        config: ctx.services.config,
        fromBlock: args.fromBlock ?? undefined,
      });
      // Feeds the audit-discrepancy alert: the latest report's counts, by kind.
      ctx.services.metrics.recordAudit(report.counts);
      return report;
    },
  }),
);

const AccountProofRef = builder.objectRef<AccountProof>('AccountProof').implement({
  description:
    "An account's whole ledger with its hash chain and each deposit's chain reference. Save `document` to a file and check it with `npm run audit -- --proof <file> --rpc <url>`.",
  fields: (t) => ({
    walletAddress: t.field({ type: 'Address', resolve: (p) => p.account.walletAddress }),
    balance: t.field({ type: 'Credits', resolve: (p) => p.account.balance }),
    entryCount: t.int({ resolve: (p) => p.entries.length }),
    ledgerHead: t.string({ nullable: true, resolve: (p) => p.account.ledgerHead }),
    document: t.string({
      description: 'The proof as a JSON document (format chainmeter-account-proof-v1).',
      resolve: (p) => JSON.stringify(accountProofToJson(p), null, 2),
    }),
  }),
});

builder.queryField('accountProof', (t) =>
  t.field({
    type: AccountProofRef,
    description:
      "A verifiable proof of an account's ledger. Without walletAddress, the caller's own; auditors may ask for any account.",
    authScopes: { authenticated: true },
    args: { walletAddress: t.arg({ type: 'Address', required: false }) },
    resolve: async (_root, args, ctx) => {
      const viewer = viewerOf(ctx);
      const wallet = args.walletAddress ?? viewer.walletAddress;
      if (wallet !== viewer.walletAddress && viewer.role !== 'auditor') {
        throw forbidden("Only an auditor may read another account's proof");
      }
      const proof = await buildAccountProof(ctx.em, ctx.services.config, wallet);
      if (!proof) throw notFound(`No account for ${wallet}`);
      return proof;
    },
  }),
);
