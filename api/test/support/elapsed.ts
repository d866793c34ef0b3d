import { expect } from 'vitest';

/**
 * Asserts that at least `ms` milliseconds passed since `started` (a `performance.now()` reading), e.g. that
 * a timeout did not fire early. That is all a test may say about time: a loaded machine is slower, never
 * faster, so there is no upper bound. Node's timer clock counts whole milliseconds, so a timer can fire up
 * to 1 ms before `performance.now()` says its delay is over.
 */
export function expectElapsedAtLeast(started: number, ms: number): void {
  expect(performance.now() - started).toBeGreaterThan(ms - 1);
}
