import type { CloudEvent, DedupStore } from '@wharf/core';
import type { Pool, PoolClient } from 'pg';
import { postgresError } from './errors.js';
import { inboxKey, intOption, type SchemaOptions, schemaName, table } from './options.js';
import { inTransaction } from './transaction.js';

/** Options of {@link createInbox}. */
export interface InboxOptions extends SchemaOptions {
  /**
   * How long a processed row is kept, ms: longer than the longest retry and replay window, or a late
   * redelivery runs the handler again. Default 7 days.
   */
  retentionMs?: number;
  /** Called after a handler's transaction committed (e.g. `outbox.nudge`, so emitted events go out at once). */
  afterCommit?: () => void;
}

/** What {@link Inbox.handle} did. */
export type InboxOutcome<R> = { readonly duplicate: false; readonly result: R } | { readonly duplicate: true };

/**
 * Exactly-once effects for consumers: the "processed" row and the handler's own database effect
 * commit in one transaction. Also a {@link DedupStore} for the bus (`createBus({ dedup: inbox })`).
 *
 * @example
 * ```ts
 * const inbox = createInbox(pool, { schema: 'shop', afterCommit: () => outbox.nudge() });
 * await bus.subscribe('orders', { group: 'billing', dedup: false }, async (event) => {
 *   await inbox.handle(event, 'billing', async (client) => {
 *     await client.query('INSERT INTO invoices (order_id) VALUES ($1)', [event.data.id]);
 *     await outbox.append(client, 'invoices', { type: 'InvoiceCreated', data: { id: event.data.id } });
 *   });
 * });
 * ```
 */
export class Inbox implements DedupStore {
  readonly schema: string;
  readonly retentionMs: number;
  readonly #pool: Pool;
  readonly #table: string;
  readonly #afterCommit: (() => void) | undefined;

  constructor(pool: Pool, options: InboxOptions = {}) {
    this.#pool = pool;
    this.schema = schemaName(options);
    this.#table = table(this.schema, 'inbox');
    this.retentionMs = intOption(options.retentionMs, 'retentionMs', 7 * 24 * 3_600_000, 1_000, 2 ** 40);
    this.#afterCommit = options.afterCommit;
  }

  /**
   * Runs `work` once per event and group. In one transaction: inserts the processed row first
   * (`ON CONFLICT DO NOTHING`, so a concurrent duplicate waits for the first and then does nothing),
   * runs `work` on the same client, commits. A duplicate resolves `{ duplicate: true }` without running
   * `work`; a throwing `work` rolls everything back (the row too) and rethrows, so a redelivery runs it
   * again. Events appended to an outbox on `client` are published only if this commits.
   */
  async handle<R>(
    event: Pick<CloudEvent, 'source' | 'id'>,
    group: string,
    work: (client: PoolClient) => Promise<R>,
  ): Promise<InboxOutcome<R>> {
    const doing = `handling ${event.id} for group ${group} in the inbox of "${this.schema}"`;
    const finished = await inTransaction(this.#pool, doing, async (client) => {
      const inserted = await client.query(
        `INSERT INTO ${this.#table} (group_name, event_key) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [group, inboxKey(event.source, event.id)],
      );
      if (inserted.rowCount === 0) return { commit: false, value: { duplicate: true } as InboxOutcome<R> };
      return { commit: true, value: { duplicate: false, result: await work(client) } };
    });
    if (finished.commit) this.#afterCommit?.();
    return finished.value;
  }

  /** DedupStore: true when the bus key (`source` NUL `id`) was processed by `group`. */
  async has(group: string, key: string): Promise<boolean> {
    const { rowCount } = await this.#query(
      `SELECT 1 FROM ${this.#table} WHERE group_name = $1 AND event_key = $2 AND processed_at > clock_timestamp() - $3::interval`,
      [group, fromBusKey(key), `${this.retentionMs} milliseconds`],
    );
    return (rowCount ?? 0) > 0;
  }

  /** DedupStore: marks the bus key processed by `group`. */
  async add(group: string, key: string): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#table} (group_name, event_key) VALUES ($1, $2)
       ON CONFLICT (group_name, event_key) DO UPDATE SET processed_at = EXCLUDED.processed_at`,
      [group, fromBusKey(key)],
    );
  }

  /**
   * Deletes rows older than the retention, `batchSize` at a time (short transactions, no long lock),
   * until none is left. Resolves with the number deleted.
   */
  async cleanup(options: { batchSize?: number } = {}): Promise<number> {
    const batch = intOption(options.batchSize, 'batchSize', 1_000, 1, 1_000_000);
    let total = 0;
    for (;;) {
      const { rowCount } = await this.#query(
        `DELETE FROM ${this.#table} WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM ${this.#table} WHERE processed_at < clock_timestamp() - $1::interval LIMIT $2))`,
        [`${this.retentionMs} milliseconds`, batch],
      );
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < batch) return total;
    }
  }

  /** Runs {@link cleanup} every `intervalMs` (default 1 h) until the returned function is called. */
  startCleanup(options: { intervalMs?: number; batchSize?: number } = {}): () => void {
    const every = intOption(options.intervalMs, 'intervalMs', 3_600_000, 1_000, 2 ** 31 - 1);
    const timer = setInterval(() => {
      this.cleanup(options).catch(() => undefined);
    }, every);
    timer.unref();
    return () => clearInterval(timer);
  }

  async #query(sql: string, values: unknown[]) {
    try {
      return await this.#pool.query(sql, values);
    } catch (cause) {
      throw postgresError(`an inbox query on "${this.schema}"`, cause);
    }
  }
}

/** The bus joins source and id with NUL, which PostgreSQL text cannot hold. */
function fromBusKey(key: string): string {
  const at = key.indexOf('\u0000');
  return at < 0 ? inboxKey('', key) : inboxKey(key.slice(0, at), key.slice(at + 1));
}

/** Creates an {@link Inbox} over `pool` (run {@link migrate} on the schema first). */
export function createInbox(pool: Pool, options: InboxOptions = {}): Inbox {
  return new Inbox(pool, options);
}
