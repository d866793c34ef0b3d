/** The deposits read path's SQL: plain rows, no entity hydration. */
import { ColumnTypeError, int4, int8Text, oneOf, text, timestampOrNull } from '../../db/columns.ts';
import type { Query, Statement } from '../../db/sql.ts';
import { DEPOSIT_STATUSES, type IDeposit } from './deposits.entity.ts';

/** The deposit fields the read path shows: entities and plain rows alike fit it. */
export type DepositView = Pick<
  IDeposit,
  | 'id'
  | 'chainId'
  | 'txHash'
  | 'logIndex'
  | 'blockNumber'
  | 'fromAddress'
  | 'amountToken'
  | 'amount'
  | 'status'
  | 'confirmations'
  | 'creditedAt'
>;

/**
 * The columns of {@link DepositView} of table (or alias) `d`, each named `d_<column>`: for a statement that
 * reads deposits beside other rows (a left join: all null when it finds none), and the statement below.
 * Plain columns rather than one JSON object: PostgreSQL builds no JSON per row and the API parses none.
 */
export function depositViewColumnsSql(d: string): string {
  return `${d}.id as d_id, ${d}.chain_id as d_chain_id, ${d}.tx_hash as d_tx_hash, ${d}.log_index as d_log_index,
     ${d}.block_number::text as d_block_number, ${d}.from_address as d_from_address,
     ${d}.amount_token::text as d_amount_token, ${d}.amount::text as d_amount, ${d}.status as d_status,
     ${d}.confirmations as d_confirmations, ${d}.credited_at as d_credited_at`;
}

/** A row with the columns of {@link depositViewColumnsSql}. */
export interface DepositViewRow {
  d_id: unknown;
  d_chain_id: unknown;
  d_tx_hash: unknown;
  d_log_index: unknown;
  d_block_number: unknown;
  d_from_address: unknown;
  d_amount_token: unknown;
  d_amount: unknown;
  d_status: unknown;
  d_confirmations: unknown;
  d_credited_at: unknown;
}

/** The deposit of a row of {@link depositViewColumnsSql}, or null when its join found none. */
export function depositViewOf(row: DepositViewRow): DepositView | null {
  if (row.d_id === null) return null;
  return {
    id: text(row.d_id, 'd_id'),
    chainId: int4(row.d_chain_id, 'd_chain_id'),
    txHash: text(row.d_tx_hash, 'd_tx_hash'),
    logIndex: int4(row.d_log_index, 'd_log_index'),
    blockNumber: int8Text(row.d_block_number, 'd_block_number'),
    fromAddress: text(row.d_from_address, 'd_from_address'),
    amountToken: int8Text(row.d_amount_token, 'd_amount_token'),
    amount: int8Text(row.d_amount, 'd_amount'),
    status: oneOf(DEPOSIT_STATUSES, row.d_status, 'd_status'),
    confirmations: int4(row.d_confirmations, 'd_confirmations'),
    creditedAt: timestampOrNull(row.d_credited_at, 'd_credited_at'),
  };
}

const DEPOSITS_BY_IDS: Statement = {
  name: 'cm_deposits_by_ids',
  text: `select ${depositViewColumnsSql('deposits')} from deposits where id = any($1::uuid[])`,
};

export async function readDepositsByIds(query: Query, ids: readonly string[]): Promise<DepositView[]> {
  const rows = await query<DepositViewRow>(DEPOSITS_BY_IDS, [ids]);
  return rows.map((row) => {
    const deposit = depositViewOf(row);
    if (!deposit) throw new ColumnTypeError('d_id', 'uuid', null);
    return deposit;
  });
}
