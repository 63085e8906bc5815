/**
 * Remembers which events a group has already handled, so a redelivered or republished event
 * (same `source` + `id`) is acknowledged without running the handler again.
 * Implement it over Redis or SQL to share it between replicas.
 */
export interface DedupStore {
  /** True when `key` was marked done in `group` and has not expired. */
  has(group: string, key: string): Promise<boolean> | boolean;
  /** Marks `key` done in `group`. */
  add(group: string, key: string): Promise<void> | void;
}

/** Bounded in-memory store: least recently used entries go first, each lives at most `ttlMs`. */
export class MemoryDedupStore implements DedupStore {
  readonly #entries = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: { maxEntries?: number; ttlMs?: number; now?: () => number } = {}) {
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
    this.#now = options.now ?? Date.now;
  }

  has(group: string, key: string): boolean {
    const id = group + '\u0000' + key;
    const expires = this.#entries.get(id);
    if (expires === undefined) return false;
    if (expires <= this.#now()) {
      this.#entries.delete(id);
      return false;
    }
    // Re-insert so Map order stays least-recently-used first.
    this.#entries.delete(id);
    this.#entries.set(id, expires);
    return true;
  }

  add(group: string, key: string): void {
    const id = `${group}\u0000${key}`;
    this.#entries.delete(id);
    this.#entries.set(id, this.#now() + this.#ttlMs);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}
