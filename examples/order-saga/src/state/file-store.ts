import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { FileStoreLockError } from '../errors.js';
import type { Change, PublishedRecord, Store, Stores } from './store.js';

/** A lock file still empty after this long was left by a process killed between creating and writing it. */
const EMPTY_LOCK_MS = 1_000;
/** A lock whose owner is alive but has held it this long is broken anyway (a wedged process). */
const STALE_LOCK_MS = 10_000;
const LOCK_TIMEOUT_MS = 30_000;

/**
 * A store shared by processes through a directory: one JSON file per key, updated under a lock
 * file created exclusively (`wx` is atomic) and holding its owner's pid, written by rename so
 * readers never see half a file. A lock whose owner died (a replica killed with SIGKILL in the
 * middle of an update) is taken over at once, not after a timeout, so the replicas that take over
 * its redelivered events do not wait on it.
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

  async update<R>(key: string, change: (current: T | undefined) => Change<T, R> | Promise<Change<T, R>>): Promise<R> {
    const file = this.#file(key);
    const lock = `${file}.lock`;
    await acquire(lock);
    try {
      const { value, result } = await change(read<T>(file));
      if (value !== undefined) {
        const temp = `${file}.${process.pid}.tmp`;
        writeFileSync(temp, JSON.stringify(value));
        renameSync(temp, file);
      }
      return result;
    } finally {
      unlinkSync(lock);
    }
  }

  async keys(prefix = ''): Promise<string[]> {
    const out: string[] = [];
    for (const name of readdirSync(this.#dir)) {
      if (!name.endsWith('.json')) continue;
      const key = decodeURIComponent(name.slice(0, -5));
      if (key.startsWith(prefix)) out.push(key);
    }
    return out;
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
      const fd = openSync(lock, 'wx');
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    breakIfAbandoned(lock);
    if (Date.now() - started > LOCK_TIMEOUT_MS) {
      throw new FileStoreLockError(`timed out after ${LOCK_TIMEOUT_MS} ms waiting for the lock ${lock}`);
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** Removes a lock whose owner is gone (or that nobody finished creating), so a killed process never blocks the others. */
function breakIfAbandoned(lock: string): void {
  let owner: string;
  let age: number;
  try {
    owner = readFileSync(lock, 'utf8');
    age = Date.now() - statSync(lock).mtimeMs;
  } catch {
    return; // released meanwhile
  }
  const pid = Number(owner);
  const abandoned = owner === '' ? age > EMPTY_LOCK_MS : !Number.isInteger(pid) || !alive(pid) || age > STALE_LOCK_MS;
  if (!abandoned) return;
  // Move it aside first and check it is still the lock we judged: two waiters may judge the same
  // dead lock, and the slower one must not remove the lock the faster one has taken since.
  const aside = `${lock}.${process.pid}.abandoned`;
  try {
    renameSync(lock, aside);
  } catch {
    return;
  }
  try {
    if (readFileSync(aside, 'utf8') !== owner) renameSync(aside, lock);
    else unlinkSync(aside);
  } catch {}
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The services' stores in a directory shared by every process of a run. */
export function fileStores(dir: string): Stores {
  return {
    orders: new FileStore(join(dir, 'orders')),
    stock: new FileStore(join(dir, 'stock')),
    reservations: new FileStore(join(dir, 'reservations')),
    payments: new FileStore(join(dir, 'payments')),
    notifications: new FileStore(join(dir, 'notifications')),
    audit: new FileStore(join(dir, 'audit')),
    published: new FileStore<PublishedRecord>(join(dir, 'published')),
  };
}
