import type { Em } from './orm.ts';

/**
 * Runs `fn` in the caller's transaction when `em` already has one, else in a new transaction on `em`.
 * Unlike `em.transactional` inside a transaction, no savepoint is created: a failure rolls back the
 * whole unit of work, which is what money code wants.
 */
export async function inTransaction<T>(em: Em, fn: (tx: Em) => Promise<T>): Promise<T> {
  if (em.isInTransaction()) return fn(em);
  return em.transactional((tx) => fn(tx as Em));
}
