/**
 * Account creation, the one statement that inserts `accounts` rows: race-safe (`on conflict do nothing` on
 * the unique wallet address), so concurrent callers (two requests, two replicas, a sign-in racing a
 * deposit) end with one row per wallet. The ledger columns are written by `ledger.store.ts`, `held` by
 * the metering stores, `debt` by crediting. Also the account's columns as a statement that reads them with
 * another row embeds them (the caller's credential lookups), and their parser.
 */
import { z } from 'zod';
import type { Query, Statement } from '../../db/sql.ts';

const CREATE_ACCOUNTS: Statement = {
  name: 'cm_create_accounts',
  text: `insert into accounts (wallet_address) select w from unnest($1::text[]) as t(w)
   on conflict (wallet_address) do nothing`,
};

/** Creates the accounts of these (checksummed) wallet addresses that do not exist yet. */
export async function createAccounts(query: Query, walletAddresses: readonly string[]): Promise<void> {
  await query(CREATE_ACCOUNTS, [[...new Set(walletAddresses)]]);
}

/** The columns of `accounts`, all of them. */
const ACCOUNT_COLUMNS = [
  'id',
  'wallet_address',
  'balance',
  'held',
  'debt',
  'ledger_seq',
  'ledger_head',
  'created_at',
  'low_balance_threshold',
  'low_balance_below',
  'low_balance_fired_seq',
] as const;

/**
 * Every column of `accounts` of table (or alias) `a`, named as the table names them: a statement that reads
 * the caller's credential reads its account with it (the session and API key lookups), so `me` reads nothing
 * more, and the request's EntityManager can take the same row (`em.map`) for what it reads through the ORM.
 */
export function accountColumnsSql(a: string): string {
  return ACCOUNT_COLUMNS.map((column) => `${a}.${column}`).join(', ');
}

/** An account as GraphQL serves it: the plain columns of a row, no entity (the ORM's `IAccount` fits it too). */
export interface AccountView {
  id: string;
  walletAddress: string;
  balance: bigint;
  held: bigint;
  debt: bigint;
  ledgerSeq: number;
  ledgerHead?: string | null;
  createdAt: Date;
  lowBalanceThreshold?: bigint | null;
  lowBalanceBelow: boolean;
  lowBalanceFiredSeq?: number | null;
}

/** A bigint column as the pool's type parsers return it (text, or a number for small values). */
const int8 = z.union([z.string(), z.number(), z.bigint()]).transform((value) => BigInt(value));

/** The columns of {@link accountColumnsSql}, as {@link AccountView}. */
export const accountRow = z
  .object({
    id: z.string(),
    wallet_address: z.string(),
    balance: int8,
    held: int8,
    debt: int8,
    ledger_seq: z.number(),
    ledger_head: z.string().nullable(),
    created_at: z.coerce.date(),
    low_balance_threshold: int8.nullable(),
    low_balance_below: z.boolean(),
    low_balance_fired_seq: z.number().nullable(),
  })
  .transform(
    (row): AccountView => ({
      id: row.id,
      walletAddress: row.wallet_address,
      balance: row.balance,
      held: row.held,
      debt: row.debt,
      ledgerSeq: row.ledger_seq,
      ledgerHead: row.ledger_head,
      createdAt: row.created_at,
      lowBalanceThreshold: row.low_balance_threshold,
      lowBalanceBelow: row.low_balance_below,
      lowBalanceFiredSeq: row.low_balance_fired_seq,
    }),
  );

/** An account read with another row: the columns as read (what `em.map` takes) and their view. */
export interface AccountRecord {
  row: Record<string, unknown>;
  view: AccountView;
}

/** The record of the columns of {@link accountColumnsSql} (the other row's columns left out). */
export function accountRecordOf(columns: Record<string, unknown>): AccountRecord {
  const view = accountRow.parse(columns);
  const row: Record<string, unknown> = {};
  for (const column of ACCOUNT_COLUMNS) row[column] = columns[column];
  return { row, view };
}

const ACCOUNT_BY_ID: Statement = {
  name: 'cm_account_by_id',
  text: `select ${accountColumnsSql('accounts')} from accounts where id = $1`,
};

/** The account with this id as it is now (every column), or null. */
export async function readAccountRecord(query: Query, accountId: string): Promise<AccountRecord | null> {
  const [row] = await query<Record<string, unknown>>(ACCOUNT_BY_ID, [accountId]);
  return row ? accountRecordOf(row) : null;
}
