/** The deposits read path's SQL: plain rows, no entity hydration. */
import { z } from 'zod';
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

/** The columns of {@link DepositView} as a JSON object, for a statement that reads deposits with other rows. */
export function depositViewJsonSql(alias: string): string {
  return `json_build_object('id', ${alias}.id, 'chain_id', ${alias}.chain_id, 'tx_hash', ${alias}.tx_hash,
     'log_index', ${alias}.log_index, 'block_number', ${alias}.block_number::text, 'from_address', ${alias}.from_address,
     'amount_token', ${alias}.amount_token::text, 'amount', ${alias}.amount::text, 'status', ${alias}.status,
     'confirmations', ${alias}.confirmations, 'credited_at', ${alias}.credited_at)`;
}

const DEPOSITS_BY_IDS: Statement = {
  name: 'cm_deposits_by_ids',
  text: `select id, chain_id, tx_hash, log_index, block_number::text as block_number, from_address,
     amount_token::text as amount_token, amount::text as amount, status, confirmations, credited_at
   from deposits where id = any($1::uuid[])`,
};

const depositRow = z
  .object({
    id: z.string(),
    chain_id: z.number(),
    tx_hash: z.string(),
    log_index: z.number(),
    block_number: z.string(),
    from_address: z.string(),
    amount_token: z.string(),
    amount: z.string(),
    status: z.enum(DEPOSIT_STATUSES),
    confirmations: z.number(),
    credited_at: z.coerce.date().nullable(),
  })
  .transform(
    (row): DepositView => ({
      id: row.id,
      chainId: row.chain_id,
      txHash: row.tx_hash,
      logIndex: row.log_index,
      blockNumber: BigInt(row.block_number),
      fromAddress: row.from_address,
      amountToken: BigInt(row.amount_token),
      amount: BigInt(row.amount),
      status: row.status,
      confirmations: row.confirmations,
      creditedAt: row.credited_at,
    }),
  );

/** A deposit read by {@link depositViewJsonSql} (or a row of the same columns). */
export function parseDepositView(row: unknown): DepositView {
  return depositRow.parse(row);
}

export async function readDepositsByIds(query: Query, ids: readonly string[]): Promise<DepositView[]> {
  return (await query(DEPOSITS_BY_IDS, [ids])).map((row) => depositRow.parse(row));
}
