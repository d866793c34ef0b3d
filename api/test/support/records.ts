/** Reads of the API's records that only tests make: production code reads the ledger a page at a time. */
import type { Em } from '../../src/db/orm.ts';
import { type ILedgerEntry, LedgerEntry } from '../../src/modules/ledger/ledger.entity.ts';

/** Every entry of an account, oldest first. */
export async function listAllLedgerEntries(em: Em, accountId: string): Promise<ILedgerEntry[]> {
  return em.find(LedgerEntry, { account: accountId }, { orderBy: { seq: 'asc' } });
}
