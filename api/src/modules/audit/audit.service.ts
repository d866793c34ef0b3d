/**
 * The auditor's side of the API: read-only, paginated views of every account and ledger entry (with each
 * deposit's chain reference) for the audit CLI, the same audit run server-side (`runAuditReport`: the
 * shared `checkAudit` over the chain read through the configured RPC and the database), and per-account
 * proofs. The checker itself lives in @chainmeter/schema, shared with the CLI.
 */
import {
  type AccountProof,
  type AuditAccount,
  type AuditLedgerEntry,
  type AuditPaidCall,
  type AuditReport,
  checkAudit,
  fetchTreasuryTransfers,
  readTreasuryBalance,
} from '@chainmeter/schema';
import type { Address, PublicClient } from 'viem';
import {
  cursorInteger,
  decodeCursor,
  encodeCursor,
  InvalidCursorError,
  type Page,
  type PageArgs,
} from '../../db/cursor.ts';
import type { Em } from '../../db/orm.ts';
import type { ApiConfig } from '../../env.ts';
import {
  findAuditAccounts,
  findAuditEntries,
  findAuditPaidCalls,
  readAccountLedger,
  readAuditSnapshot,
} from './audit.store.ts';

/** Auditors page through everything: larger pages than the user-facing 100. */
const MAX_AUDIT_PAGE_SIZE = 1_000;
const DEFAULT_AUDIT_PAGE_SIZE = 500;

function auditPageSize(first: number | null | undefined): number {
  const size = first ?? DEFAULT_AUDIT_PAGE_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > MAX_AUDIT_PAGE_SIZE) {
    throw new InvalidCursorError(`first must be an integer between 0 and ${MAX_AUDIT_PAGE_SIZE}`);
  }
  return size;
}

const ACCOUNT_CURSOR = 'audit-account';
const ENTRY_CURSOR = 'audit-entry';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const auditAccountCursor = (account: AuditAccount) =>
  encodeCursor(ACCOUNT_CURSOR, [account.accountId]);
export const auditEntryCursor = (entry: AuditLedgerEntry) =>
  encodeCursor(ENTRY_CURSOR, [entry.accountId, entry.seq]);

function decodeUuid(kind: string, cursor: string, arity: number): string[] {
  const parts = decodeCursor(kind, cursor, arity);
  if (!UUID.test(parts[0] ?? '')) throw new InvalidCursorError(`invalid ${kind} cursor`);
  return parts;
}

/** Every account, by id (keyset). */
export async function listAuditAccounts(em: Em, args: PageArgs = {}): Promise<Page<AuditAccount>> {
  const first = auditPageSize(args.first);
  const [after] = args.after ? decodeUuid(ACCOUNT_CURSOR, args.after, 1) : [];
  const rows = await findAuditAccounts(em, after ?? null, first + 1);
  const entries = rows.slice(0, first);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? auditAccountCursor(last) : null };
}

/** Every ledger entry of every account, by (account id, seq): the order `listAuditAccounts` uses. */
export async function listAuditEntries(em: Em, args: PageArgs = {}): Promise<Page<AuditLedgerEntry>> {
  const first = auditPageSize(args.first);
  let after: { accountId: string; seq: number } | null = null;
  if (args.after) {
    const [accountId = '', seq] = decodeUuid(ENTRY_CURSOR, args.after, 2);
    after = { accountId, seq: cursorInteger(ENTRY_CURSOR, seq) };
  }
  const rows = await findAuditEntries(em, after, first + 1);
  const entries = rows.slice(0, first);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? auditEntryCursor(last) : null };
}

const PAID_CALL_CURSOR = 'audit-paid-call';

export const auditPaidCallCursor = (call: AuditPaidCall) => encodeCursor(PAID_CALL_CURSOR, [call.usageId]);

/** Every call paid per request (x402), by usage id (keyset). */
export async function listAuditPaidCalls(em: Em, args: PageArgs = {}): Promise<Page<AuditPaidCall>> {
  const first = auditPageSize(args.first);
  const [after] = args.after ? decodeUuid(PAID_CALL_CURSOR, args.after, 1) : [];
  const rows = await findAuditPaidCalls(em, after ?? null, first + 1);
  const calls = rows.slice(0, first);
  const last = calls.at(-1);
  return {
    entries: calls,
    hasNextPage: rows.length > first,
    endCursor: last ? auditPaidCallCursor(last) : null,
  };
}

/** Every account, entry and paid call, read in one REPEATABLE READ transaction (one consistent snapshot). */
export async function readAuditRecords(
  em: Em,
): Promise<{ accounts: AuditAccount[]; entries: AuditLedgerEntry[]; paidCalls: AuditPaidCall[] }> {
  return readAuditSnapshot(em);
}

export interface RunAuditParameters {
  chain: PublicClient;
  config: Pick<ApiConfig, 'chainId' | 'usdcAddress' | 'treasuryAddress' | 'confirmations'>;
  fromBlock?: bigint;
}

/**
 * The audit, server-side: the chain head first, then the records, then the treasury's Transfer logs read
 * straight from the RPC (not the indexer) up to that head, all checked by the shared `checkAudit`.
 */
export async function runAuditReport(em: Em, params: RunAuditParameters): Promise<AuditReport> {
  const { chain, config } = params;
  const head = await chain.getBlockNumber();
  const fromBlock = params.fromBlock ?? 0n;
  const records = await readAuditRecords(em);
  const transfers =
    fromBlock > head
      ? []
      : await fetchTreasuryTransfers(chain, {
          chainId: config.chainId,
          token: config.usdcAddress,
          treasury: config.treasuryAddress,
          fromBlock,
          toBlock: head,
        });
  const treasuryBalance = await readTreasuryBalance(chain, {
    token: config.usdcAddress,
    treasury: config.treasuryAddress,
    blockNumber: head,
  });
  return checkAudit({
    chainId: config.chainId,
    tokenAddress: config.usdcAddress,
    treasuryAddress: config.treasuryAddress,
    confirmations: config.confirmations,
    fromBlock,
    head,
    transfers,
    treasuryBalance,
    ...records,
  });
}

/** One account's whole ledger with its chain references, or null when the wallet has no account. */
export async function buildAccountProof(
  em: Em,
  config: Pick<ApiConfig, 'chainId' | 'usdcAddress' | 'treasuryAddress' | 'confirmations'>,
  walletAddress: Address,
): Promise<AccountProof | null> {
  const ledger = await readAccountLedger(em, walletAddress);
  if (!ledger) return null;
  return {
    chainId: config.chainId,
    tokenAddress: config.usdcAddress,
    treasuryAddress: config.treasuryAddress,
    confirmations: config.confirmations,
    generatedAt: new Date(),
    ...ledger,
  };
}
