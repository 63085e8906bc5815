import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PublishedRecord, Store, Stores } from './store.js';

const STALE_LOCK_MS = 10_000;
const LOCK_TIMEOUT_MS = 30_000;

/**
 * A store shared by processes through a directory: one JSON file per key, updated under a lock
 * directory (`mkdir` is atomic), written by rename so readers never see half a file.
 */
export class FileStore<T> implements Store<T> {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  #file(key: string): string {
    return join(this.#dir, `${encodeURIComponent(key)}.json`);
  }

  async get(key: string): Promise<T | undefined> {
    return read<T>(this.#file(key));
  }

  async update<R>(key: string, change: (current: T | undefined) => { value?: T; result: R }): Promise<R> {
    const file = this.#file(key);
    const lock = `${file}.lock`;
    await acquire(lock);
    try {
      const { value, result } = change(read<T>(file));
      if (value !== undefined) {
        const temp = `${file}.${process.pid}.tmp`;
        writeFileSync(temp, JSON.stringify(value));
        renameSync(temp, file);
      }
      return result;
    } finally {
      rmdirSync(lock);
    }
  }

  async list(prefix = ''): Promise<[string, T][]> {
    const out: [string, T][] = [];
    for (const name of readdirSync(this.#dir)) {
      if (!name.endsWith('.json')) continue;
      const key = decodeURIComponent(name.slice(0, -5));
      if (!key.startsWith(prefix)) continue;
      const value = read<T>(join(this.#dir, name));
      if (value !== undefined) out.push([key, value]);
    }
    return out;
  }
}

function read<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function acquire(lock: string): Promise<void> {
  const started = Date.now();
  for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
    try {
      mkdirSync(lock);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    // A process killed while holding the lock must not block the others for ever.
    try {
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmdirSync(lock);
    } catch {}
    if (Date.now() - started > LOCK_TIMEOUT_MS)
      throw new Error(`[wharf] [saga] timed out waiting for the lock ${lock}`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** The services' stores in a directory shared by every process of a run. */
export function fileStores(dir: string): Stores {
  return {
    orders: new FileStore(join(dir, 'orders')),
    inventory: new FileStore(join(dir, 'inventory')),
    payments: new FileStore(join(dir, 'payments')),
    notifications: new FileStore(join(dir, 'notifications')),
    audit: new FileStore(join(dir, 'audit')),
    published: new FileStore<PublishedRecord>(join(dir, 'published')),
  };
}
