/** Background work started so far and not yet finished, so shutdown (and tests) can wait for it. */
export class InFlightWork {
  readonly #running = new Set<Promise<unknown>>();

  /** Tracks `promise` until it settles; returns it. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#running.add(promise);
    const untrack = () => this.#running.delete(promise);
    promise.then(untrack, untrack);
    return promise;
  }

  /** Resolves once everything tracked so far (and whatever that started meanwhile) has finished. */
  async whenIdle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
