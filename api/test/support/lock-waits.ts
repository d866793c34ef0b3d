import type { Orm } from '../../src/db/orm.ts';

/**
 * Resolves once a session of `orm`'s database waits for a lock (a statement a test started behind a
 * transaction it holds open), or once `stopLooking()` is true (that statement ended without waiting).
 * Throws after 10 s of neither.
 */
export async function untilALockIsWaitedFor(
  orm: Orm,
  stopLooking: () => boolean = () => false,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [row] = await orm.em.fork().execute<{ waiting: number }[]>(
      `select count(*)::int as waiting from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'`,
    );
    if (stopLooking() || (row && row.waiting > 0)) return;
    if (Date.now() > deadline) throw new Error('nothing waited for a lock in 10 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
