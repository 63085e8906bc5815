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
 * Bounded in-memory store: at most `maxEntries` keys per group, each kept at most `ttlMs`; the least
 * recently used go first.
 *
 * Two generations of maps instead of one ordered map: evicting from the front of a JS `Map` one
 * entry at a time leaves deleted slots that every `keys().next()` walks again, which cost ~40 µs per
 * event at 100k entries. A full young generation becomes the old one and the old one is dropped whole.
 * Each group has its own maps, so the key the bus gives is used as it is (no string is built per
 * lookup) and one busy group cannot evict another's keys.
 */
export class MemoryDedupStore implements DedupStore {
  readonly #groups = new Map<string, Generations>();
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
    const maps = this.#groups.get(group);
    if (maps === undefined) return false;
    let expires = maps.young.get(key);
    if (expires === undefined) {
      expires = maps.old.get(key);
      if (expires === undefined) return false;
      // Used again: promote it so it survives the next generation change.
      maps.old.delete(key);
      if (expires > this.#now()) this.#set(maps, key, expires);
    }
    if (expires > this.#now()) return true;
    maps.young.delete(key);
    return false;
  }

  add(group: string, key: string): void {
    let maps = this.#groups.get(group);
    if (maps === undefined) {
      maps = { young: new Map(), old: new Map() };
      this.#groups.set(group, maps);
    }
    // An older entry of the key in the old generation may stay: `has` reads the young one first,
    // and the old generation is dropped whole.
    this.#set(maps, key, this.#now() + this.#ttlMs);
  }

  #set(maps: Generations, key: string, expires: number): void {
    // Size first: the lookup is only needed when the young generation is full.
    if (maps.young.size >= this.#generation && !maps.young.has(key)) {
      maps.old = maps.young;
      maps.young = new Map();
    }
    maps.young.set(key, expires);
  }

  /** Keys held over all groups (some may have expired and not yet been dropped). */
  get size(): number {
    let size = 0;
    for (const maps of this.#groups.values()) size += maps.young.size + maps.old.size;
    return size;
  }
}

interface Generations {
  young: Map<string, number>;
  old: Map<string, number>;
}
