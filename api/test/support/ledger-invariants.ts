import { verifyLedgerChain } from '@chainmeter/schema';
import type { Em } from '../../src/db/orm.ts';

export interface LedgerReport {
  accounts: number;
  entries: number;
  creditedDeposits: number;
  totalBalance: bigint;
  /** Human-readable problems; empty when every invariant holds. */
  problems: string[];
}

/**
 * The money invariants, read straight from the tables: balance = sum of entries, every hash chain
 * verifies, each CREDITED deposit has exactly one DEPOSIT entry of its amount, a PENDING one has
 * none, and a REORGED one at most one (credited before a deep reorg took it back with an ADJUSTMENT,
 * which `deep-reorg.test.ts` checks).
 */
export async function checkLedgerInvariants(em: Em): Promise<LedgerReport> {
  const problems: string[] = [];
  const accounts: { id: string; balance: string; ledger_seq: number; ledger_head: string | null }[] =
    await em.execute('select id, balance::text as balance, ledger_seq, ledger_head from accounts');
  const entries: {
    id: string;
    account_id: string;
    seq: number;
    amount: string;
    balance_after: string;
    reason: string;
    reference_id: string;
    deposit_id: string | null;
    created_at: Date | string;
    prev_hash: string | null;
    hash: string;
  }[] = await em.execute(
    `select id, account_id, seq, amount::text as amount, balance_after::text as balance_after, reason,
       reference_id, deposit_id, created_at, prev_hash, hash from ledger_entries order by account_id, seq`,
  );
  const byAccount = new Map<string, typeof entries>();
  for (const entry of entries) {
    const list = byAccount.get(entry.account_id) ?? [];
    list.push(entry);
    byAccount.set(entry.account_id, list);
  }
  let totalBalance = 0n;
  for (const account of accounts) {
    const list = byAccount.get(account.id) ?? [];
    const sum = list.reduce((total, e) => total + BigInt(e.amount), 0n);
    totalBalance += BigInt(account.balance);
    if (sum !== BigInt(account.balance))
      problems.push(`account ${account.id}: balance ${account.balance} != sum ${sum}`);
    if (list.length !== account.ledger_seq)
      problems.push(`account ${account.id}: ledger_seq ${account.ledger_seq}`);
    if ((list.at(-1)?.hash ?? null) !== account.ledger_head)
      problems.push(`account ${account.id}: ledger_head`);
    const broken = verifyLedgerChain(
      list.map((e) => ({
        accountId: e.account_id,
        seq: e.seq,
        amount: BigInt(e.amount),
        balanceAfter: BigInt(e.balance_after),
        reason: e.reason,
        referenceId: e.reference_id,
        createdAt: new Date(e.created_at),
        prevHash: e.prev_hash,
        hash: e.hash,
      })),
    );
    if (broken !== null) problems.push(`account ${account.id}: hash chain broken at seq ${broken}`);
  }
  const deposits: {
    id: string;
    status: string;
    amount: string;
    credits: string;
    entry_amount: string | null;
  }[] = await em.execute(
    `select d.id, d.status, d.amount::text as amount, count(e.id)::text as credits, sum(e.amount)::text as entry_amount
       from deposits d left join ledger_entries e on e.deposit_id = d.id group by d.id`,
  );
  let creditedDeposits = 0;
  for (const deposit of deposits) {
    const allowed = { CREDITED: ['1'], PENDING: ['0'], REORGED: ['0', '1'] }[deposit.status] ?? ['0'];
    if (!allowed.includes(deposit.credits))
      problems.push(`deposit ${deposit.id} (${deposit.status}): ${deposit.credits} credits`);
    if (deposit.status === 'CREDITED') {
      creditedDeposits++;
      if (deposit.entry_amount !== deposit.amount)
        problems.push(`deposit ${deposit.id}: credited ${deposit.entry_amount}`);
    }
  }
  return { accounts: accounts.length, entries: entries.length, creditedDeposits, totalBalance, problems };
}
