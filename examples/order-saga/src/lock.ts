/**
 * Runs work for one key at a time in this process. Brokers without per-key order may hand two
 * copies of an event to one service at once; serialising them per order lets the second see what
 * the first did, so it is recognised as a duplicate instead of racing it.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const current = previous.then(work, work);
    const tail = current.catch(() => {});
    this.#tails.set(key, tail);
    try {
      return await current;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
