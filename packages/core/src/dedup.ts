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

/**
 * Bounded in-memory store: at most `maxEntries` keys, each kept at most `ttlMs`; the least recently
 * used go first.
 *
 * Two generations of maps instead of one ordered map: evicting from the front of a JS `Map` one
 * entry at a time leaves deleted slots that every `keys().next()` walks again, which cost ~40 µs per
 * event at 100k entries. A full young generation becomes the old one and the old one is dropped whole.
 */
export class MemoryDedupStore implements DedupStore {
  #young = new Map<string, number>();
  #old = new Map<string, number>();
  readonly #generation: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: { maxEntries?: number; ttlMs?: number; now?: () => number } = {}) {
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isInteger(maxEntries) || maxEntries < 2) {
      throw new RangeError(`[wharf] [dedup] maxEntries must be an integer >= 2, got ${String(maxEntries)}`);
    }
    this.#generation = Math.floor(maxEntries / 2);
    this.#ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
    this.#now = options.now ?? Date.now;
  }

  has(group: string, key: string): boolean {
    const id = group + '\u0000' + key;
    let expires = this.#young.get(id);
    if (expires === undefined) {
      expires = this.#old.get(id);
      if (expires === undefined) return false;
      // Used again: promote it so it survives the next generation change.
      this.#old.delete(id);
      if (expires > this.#now()) this.#set(id, expires);
    }
    if (expires > this.#now()) return true;
    this.#young.delete(id);
    return false;
  }

  add(group: string, key: string): void {
    const id = group + '\u0000' + key;
    this.#old.delete(id);
    this.#set(id, this.#now() + this.#ttlMs);
  }

  #set(id: string, expires: number): void {
    // Size first: the lookup is only needed when the young generation is full.
    if (this.#young.size >= this.#generation && !this.#young.has(id)) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(id, expires);
  }

  /** Keys held (some may have expired and not yet been dropped). */
  get size(): number {
    return this.#young.size + this.#old.size;
  }
}
