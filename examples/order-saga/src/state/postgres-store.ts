import { AsyncLocalStorage } from 'node:async_hooks';
import type { CloudEvent } from '@wharf/core';
import type pg from 'pg';
import { MemoryStore } from './memory-store.js';
import type { Change, PublishedRecord, Store, Stores } from './store.js';

/**
 * The transaction a service's work runs in (`--store postgres`): the inbox's transaction for a
 * handler, the order's own for `POST /orders`. Every store read and write, and every event the
 * service sends (appended to the outbox), happens on its client, so they commit together or not at all.
 */
export interface Transaction {
  readonly client: pg.ClientBase;
  /** Events appended to the outbox in this transaction, by `source` NUL `id`. */
  readonly appended: Map<string, CloudEvent>;
  /** Work to do once the transaction committed (the scenario's deliberate second copies). */
  readonly afterCommit: (() => Promise<void>)[];
}

/** The transaction of the work running now, if any (see {@link Transaction}). */
export const ambient = new AsyncLocalStorage<Transaction>();

/** The table every PostgreSQL store keeps its records in: one JSON document per store and key. */
export const STATE_TABLE = 'saga_state';

/**
 * Creates the state table in `schema` (idempotent). `json`, not `jsonb`: a record comes back with
 * its keys in the order it was written, as from the other stores (`sameLines` compares JSON text).
 * `key` is in the C collation so a `LIKE 'prefix%'` scan uses the primary key.
 */
export async function createStateTable(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(
    `CREATE TABLE IF NOT EXISTS "${schema}".${STATE_TABLE} (
       store text NOT NULL,
       key   text COLLATE "C" NOT NULL,
       value json,
       PRIMARY KEY (store, key))`,
  );
}

/**
 * A store in PostgreSQL. Inside a {@link Transaction} it works on that transaction's client: an
 * update locks the record's row until the transaction ends (not only while `change` runs), so the
 * records a handler changed, its inbox row and its outbox rows commit at once. Outside one, an
 * update is a transaction of its own. A record that does not exist yet is locked through a row
 * with a NULL value, which reads as absent.
 */
export class PostgresStore<T> implements Store<T> {
  readonly #pool: pg.Pool;
  readonly #name: string;
  readonly #table: string;

  constructor(pool: pg.Pool, schema: string, name: string) {
    this.#pool = pool;
    this.#name = name;
    this.#table = `"${schema}".${STATE_TABLE}`;
  }

  /** The ambient transaction's client, so work inside one never waits for a second pooled connection. */
  #db(): pg.ClientBase | pg.Pool {
    return ambient.getStore()?.client ?? this.#pool;
  }

  async get(key: string): Promise<T | undefined> {
    const { rows } = await this.#db().query<{ value: T | null }>(
      `SELECT value FROM ${this.#table} WHERE store = $1 AND key = $2`,
      [this.#name, key],
    );
    return rows[0]?.value ?? undefined;
  }

  async update<R>(key: string, change: (current: T | undefined) => Change<T, R> | Promise<Change<T, R>>): Promise<R> {
    const tx = ambient.getStore();
    if (tx) return this.#update(tx.client, key, change);
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      try {
        // `change` may update other stores (the inventory's stock, then a reservation): same transaction.
        const own: Transaction = { client, appended: new Map(), afterCommit: [] };
        const result = await ambient.run(own, () => this.#update(client, key, change));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw error;
      }
    } finally {
      client.release(broken);
    }
  }

  async #update<R>(
    client: pg.ClientBase,
    key: string,
    change: (current: T | undefined) => Change<T, R> | Promise<Change<T, R>>,
  ): Promise<R> {
    // One round trip that creates the row if needed and locks it either way; the no-op SET makes
    // ON CONFLICT lock and return the existing row.
    const { rows } = await client.query<{ value: T | null }>(
      `INSERT INTO ${this.#table} (store, key) VALUES ($1, $2)
       ON CONFLICT (store, key) DO UPDATE SET store = EXCLUDED.store
       RETURNING value`,
      [this.#name, key],
    );
    const { value, result } = await change(rows[0]?.value ?? undefined);
    if (value !== undefined) {
      await client.query(`UPDATE ${this.#table} SET value = $3 WHERE store = $1 AND key = $2`, [
        this.#name,
        key,
        JSON.stringify(value),
      ]);
    }
    return result;
  }

  async keys(prefix = ''): Promise<string[]> {
    const { rows } = await this.#db().query<{ key: string }>(
      `SELECT key FROM ${this.#table} WHERE store = $1 AND key LIKE $2 AND value IS NOT NULL`,
      [this.#name, likePrefix(prefix)],
    );
    return rows.map((row) => row.key);
  }

  async list(prefix = ''): Promise<[string, T][]> {
    const { rows } = await this.#db().query<{ key: string; value: T }>(
      `SELECT key, value FROM ${this.#table} WHERE store = $1 AND key LIKE $2 AND value IS NOT NULL`,
      [this.#name, likePrefix(prefix)],
    );
    return rows.map((row) => [row.key, row.value]);
  }
}

function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The saga's stores with `--store postgres`: the order, inventory and payment services' state and
 * the ledger of published events in PostgreSQL; notification and audit, which keep no state the
 * saga's invariants need committed with an event, in memory.
 */
export function postgresStores(pool: pg.Pool, schema: string): Stores {
  return {
    orders: new PostgresStore(pool, schema, 'orders'),
    stock: new PostgresStore(pool, schema, 'stock'),
    reservations: new PostgresStore(pool, schema, 'reservations'),
    payments: new PostgresStore(pool, schema, 'payments'),
    notifications: new MemoryStore(),
    audit: new MemoryStore(),
    published: new PostgresStore<PublishedRecord>(pool, schema, 'published'),
  };
}
