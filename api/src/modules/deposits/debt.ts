import type { OwedDeposit } from './crediting.store.ts';

/**
 * How `available` micro-USD pays an account's debt: the owed deposits in order (oldest first), each paid at
 * most what it owes, never more than the whole `debt`. Lowers each paid deposit's `owed` in place, so a
 * list shared by several credits of one batch stays current. The caller writes one ADJUSTMENT per payment,
 * referencing its deposit.
 */
export function payDebt(
  owed: OwedDeposit[],
  available: bigint,
  debt: bigint,
): { depositId: string; paid: bigint }[] {
  const payments: { depositId: string; paid: bigint }[] = [];
  let left = available;
  if (debt < left) left = debt;
  for (const debtor of owed) {
    if (left === 0n) break;
    let paid = debtor.owed;
    if (left < paid) paid = left;
    if (paid === 0n) continue;
    debtor.owed -= paid;
    left -= paid;
    payments.push({ depositId: debtor.depositId, paid });
  }
  return payments;
}
