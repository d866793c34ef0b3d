import type { LedgerHead } from '@chainmeter/schema';
import { LRUCache } from 'lru-cache';

/**
 * The newest ledger head this process has seen per account, from its own holds (which return the
 * account's head) and settlements (which write it). With it a settlement is ONE statement guarded by
 * `ledger_seq = <the seq seen>` instead of a lock and a second round trip: when another writer (a deposit,
 * another replica) moved the ledger in between, the guard fails, nothing is written, and the settlement
 * takes the locking path. So a stale head costs a retry, never a wrong entry. Bounded: the least recently
 * seen accounts are forgotten first.
 */
export class LedgerHeads {
  readonly #heads: LRUCache<string, LedgerHead>;
  /** Batches written in one guarded statement, and batches whose guard failed (a head was stale). */
  readonly outcomes = { guarded: 0, stale: 0 };

  constructor(capacity = 10_000) {
    this.#heads = new LRUCache({ max: capacity });
  }

  get(accountId: string): LedgerHead | undefined {
    return this.#heads.get(accountId);
  }

  /** Keeps `head` unless a newer one (higher seq) is already known. */
  observe(accountId: string, head: LedgerHead): void {
    const known = this.#heads.get(accountId);
    if (!known || known.seq <= head.seq) this.#heads.set(accountId, head);
  }

  forget(accountId: string): void {
    this.#heads.delete(accountId);
  }
}
