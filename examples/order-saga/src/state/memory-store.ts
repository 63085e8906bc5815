import type { PublishedRecord, Store, Stores } from './store.js';

/** A store in this process's memory. */
export class MemoryStore<T> implements Store<T> {
  readonly #records = new Map<string, T>();

  async get(key: string): Promise<T | undefined> {
    return this.#records.get(key);
  }

  async update<R>(key: string, change: (current: T | undefined) => { value?: T; result: R }): Promise<R> {
    const { value, result } = change(this.#records.get(key));
    if (value !== undefined) this.#records.set(key, value);
    return result;
  }

  async keys(prefix = ''): Promise<string[]> {
    const out: string[] = [];
    for (const key of this.#records.keys()) if (key.startsWith(prefix)) out.push(key);
    return out;
  }

  async list(prefix = ''): Promise<[string, T][]> {
    const out: [string, T][] = [];
    for (const entry of this.#records) if (entry[0].startsWith(prefix)) out.push(entry);
    return out;
  }
}

export function memoryStores(): Stores {
  return {
    orders: new MemoryStore(),
    inventory: new MemoryStore(),
    payments: new MemoryStore(),
    notifications: new MemoryStore(),
    audit: new MemoryStore(),
    published: new MemoryStore<PublishedRecord>(),
  };
}
