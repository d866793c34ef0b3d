/** The deposits read path: an account's deposits, paged, and deposits by id for the ledger page. */
import {
  cursorBigint,
  cursorInteger,
  cursorUuid,
  decodeCursor,
  encodeCursor,
  type Page,
  type PageArgs,
  pageSize,
} from '../../db/cursor.ts';
import type { Em } from '../../db/orm.ts';
import { sqlOf } from '../../db/sql.ts';
import { Deposit, type IDeposit } from './deposits.entity.ts';
import { type DepositView, readDepositsByIds } from './deposits.store.ts';

const DEPOSIT_CURSOR = 'deposit';

export function depositCursor(deposit: Pick<IDeposit, 'blockNumber' | 'logIndex' | 'id'>): string {
  return encodeCursor(DEPOSIT_CURSOR, [deposit.blockNumber, deposit.logIndex, deposit.id]);
}

/**
 * An account's deposits, newest on chain first: keyset on (blockNumber, logIndex, id), so a page does
 * not shift when a new deposit arrives.
 */
export async function listDeposits(em: Em, accountId: string, args: PageArgs = {}): Promise<Page<IDeposit>> {
  const first = pageSize(args.first);
  let where: object = { account: accountId };
  if (args.after) {
    const [block, logIndex, rawId] = decodeCursor(DEPOSIT_CURSOR, args.after, 3);
    const b = cursorBigint(DEPOSIT_CURSOR, block);
    const l = cursorInteger(DEPOSIT_CURSOR, logIndex);
    const id = cursorUuid(DEPOSIT_CURSOR, rawId);
    where = {
      account: accountId,
      $or: [
        { blockNumber: { $lt: b } },
        { blockNumber: b, logIndex: { $lt: l } },
        { blockNumber: b, logIndex: l, id: { $lt: id } },
      ],
    };
  }
  const rows = await em.find(Deposit, where, {
    orderBy: [{ blockNumber: 'desc' }, { logIndex: 'desc' }, { id: 'desc' }],
    limit: first + 1,
  });
  const entries = rows.slice(0, first);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? depositCursor(last) : null };
}

/** Deposits by id in one statement, as plain rows (the ledger page's `deposit` field loads 100 at once). */
export async function getDepositsByIds(em: Em, ids: readonly string[]): Promise<DepositView[]> {
  if (ids.length === 0) return [];
  return readDepositsByIds(sqlOf(em).query, ids);
}
