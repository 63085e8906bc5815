import { KeyedLock } from '../lock.js';
import type { Change, PublishedRecord, Store, Stores } from './store.js';

/** A store in this process's memory. */
export class MemoryStore<T> implements Store<T> {
  readonly #records = new Map<string, T>();
  /** `change` may await: updates of one key run one after the other. */
  readonly #lock = new KeyedLock();

  async get(key: string): Promise<T | undefined> {
    return this.#records.get(key);
  }

  async update<R>(key: string, change: (current: T | undefined) => Change<T, R> | Promise<Change<T, R>>): Promise<R> {
    return this.#lock.run(key, async () => {
      const { value, result } = await change(this.#records.get(key));
      if (value !== undefined) this.#records.set(key, value);
      return result;
    });
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
    stock: new MemoryStore(),
    reservations: new MemoryStore(),
    payments: new MemoryStore(),
    notifications: new MemoryStore(),
    audit: new MemoryStore(),
    published: new MemoryStore<PublishedRecord>(),
  };
}
