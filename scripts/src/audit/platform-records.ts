/**
 * Where the audit reads the platform's side: through the API with an auditor-role key (GraphQL, paged),
 * or straight from the API's PostgreSQL (operators). Both return the same records for `checkAudit`.
 */
import {
  type AuditAccount,
  type AuditLedgerEntry,
  type AuditPaidCall,
  accountFromJson,
  ledgerEntryFromJson,
  paidCallFromJson,
} from '@chainmeter/schema';
import pg from 'pg';
import { readAuditSnapshot } from './audit-database.store.ts';

/** The audit could not run (exit code 2): the message says why, for a person. */
export class AuditRunError extends Error {
  override name = 'AuditRunError';
}

export interface PlatformRecords {
  accounts: AuditAccount[];
  entries: AuditLedgerEntry[];
  /** Calls paid per request (x402), checked against their settlements. */
  paidCalls: AuditPaidCall[];
}

export interface PaymentConfig {
  chainId: number;
  tokenAddress: string;
  treasuryAddress: string;
  confirmations: number;
}

/**
 * Page sizes that keep each query under the API's cost limit (25,000, which counts `first` whether it is a
 * literal or a variable): an accounts page costs about 51 per account (400: 20,327), an entries page with
 * its deposit about 134 per entry (150: 20,152).
 */
const PAGE = { accounts: 400, ledgerEntries: 150, paidCalls: 300 } as const;

interface GraphQLAnswer<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function graphql<T>(origin: string, query: string, variables: object, key?: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (error) {
    throw new AuditRunError(`cannot reach the API at ${origin}: ${causeOf(error)}`);
  }
  let answer: GraphQLAnswer<T>;
  try {
    answer = (await response.json()) as GraphQLAnswer<T>;
  } catch {
    throw new AuditRunError(`the API at ${origin} answered HTTP ${response.status} without GraphQL`);
  }
  const error = answer.errors?.[0];
  if (error) {
    const code = error.extensions?.code;
    if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') {
      throw new AuditRunError(
        `the API at ${origin} refused the key (${code}: ${error.message}). Use an API key created by a wallet listed in the API's AUDITOR_ADDRESSES.`,
      );
    }
    throw new AuditRunError(
      `the API at ${origin} answered an error: ${code ? `${code}: ` : ''}${error.message}`,
    );
  }
  if (!answer.data)
    throw new AuditRunError(`the API at ${origin} answered HTTP ${response.status} without data`);
  return answer.data;
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** The API's public payment configuration (no key needed). */
export async function fetchPaymentConfig(origin: string): Promise<PaymentConfig> {
  const data = await graphql<{ paymentConfig: PaymentConfig }>(
    origin,
    '{ paymentConfig { chainId tokenAddress treasuryAddress confirmations } }',
    {},
  );
  return data.paymentConfig;
}

const ACCOUNTS_QUERY = `query AuditAccounts($first: Int, $after: String) { audit { accounts(first: $first, after: $after) {
  pageInfo { hasNextPage endCursor } edges { node { accountId walletAddress balanceMicroUsd heldMicroUsd debtMicroUsd ledgerSeq ledgerHead } } } } }`;

const ENTRIES_QUERY = `query AuditLedger($first: Int, $after: String) { audit { ledgerEntries(first: $first, after: $after) {
  pageInfo { hasNextPage endCursor } edges { node { accountId seq amountMicroUsd balanceAfterMicroUsd reason referenceId
  createdAt prevHash hash operator reasonText deposit { chainId txHash logIndex blockNumber from amountToken amountMicroUsd status } } } } } }`;

const PAID_CALLS_QUERY = `query AuditPaidCalls($first: Int, $after: String) { audit { paidCalls(first: $first, after: $after) {
  pageInfo { hasNextPage endCursor } edges { node { usageId accountId payer scheme status holdAmountMicroUsd
  userPriceMicroUsd txHash settlementBlock settlementCredited } } } } }`;

interface Connection {
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { node: unknown }[];
}

async function readAll(
  origin: string,
  key: string,
  query: string,
  field: 'accounts' | 'ledgerEntries' | 'paidCalls',
  onPage: (count: number) => void,
): Promise<unknown[]> {
  const nodes: unknown[] = [];
  let after: string | null = null;
  for (;;) {
    const data: { audit: Record<string, Connection> } = await graphql(
      origin,
      query,
      { first: PAGE[field], after },
      key,
    );
    const connection = data.audit[field] as Connection;
    for (const edge of connection.edges) nodes.push(edge.node);
    onPage(nodes.length);
    if (!connection.pageInfo.hasNextPage || !connection.pageInfo.endCursor) return nodes;
    after = connection.pageInfo.endCursor;
  }
}

/**
 * Every account, then every ledger entry, then every call paid per request, through the auditor queries. Accounts are read first, so an
 * entry appended meanwhile has a seq past its account's snapshot and is not summed (see `checkAudit`).
 */
export async function readRecordsFromApi(
  origin: string,
  key: string,
  onProgress: (message: string) => void = () => {},
): Promise<PlatformRecords> {
  const accounts = (
    await readAll(origin, key, ACCOUNTS_QUERY, 'accounts', (n) => onProgress(`read ${n} accounts`))
  ).map((node, i) => accountFromJson(node, `accounts[${i}]`));
  const entries = (
    await readAll(origin, key, ENTRIES_QUERY, 'ledgerEntries', (n) => onProgress(`read ${n} ledger entries`))
  ).map((node, i) => ledgerEntryFromJson(node, `ledgerEntries[${i}]`));
  const paidCalls = (
    await readAll(origin, key, PAID_CALLS_QUERY, 'paidCalls', (n) => onProgress(`read ${n} paid calls`))
  ).map((node, i) => paidCallFromJson(node, `paidCalls[${i}]`));
  return { accounts, entries, paidCalls };
}

/** Every account and entry from PostgreSQL, in one read-only REPEATABLE READ snapshot. */
export async function readRecordsFromDatabase(url: string): Promise<PlatformRecords> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (error) {
    throw new AuditRunError(`cannot connect to the database: ${(error as Error).message}`);
  }
  try {
    return await readAuditSnapshot(client);
  } catch (error) {
    throw new AuditRunError(`cannot read the ledger from the database: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}
