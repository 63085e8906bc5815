import { hostname } from 'node:os';
import { type CloudEvent, createEvent, type EventInput, encodeEvent } from '@wharf/core';
import type { ClientBase, Pool, PoolClient } from 'pg';
import { CdcRelay, type CdcRelayOptions } from './cdc.js';
import { postgresError } from './errors.js';
import { intOption, LOCK_KEY, type SchemaOptions, schemaName, table } from './options.js';
import { type PublishingBus, Relay, type RelayOptions } from './relay.js';
import { inTransaction } from './transaction.js';

/** Options of {@link createOutbox}. */
export interface OutboxOptions extends SchemaOptions {
  /**
   * Partitions of the outbox (`hash(key) % partitions`): the unit a relay leases. Writers and relays
   * of one schema must use the same number. Default 16.
   */
  partitions?: number;
  /** Also `pg_notify` the relays on commit (not through PgBouncer transaction pooling). Default false. */
  notify?: boolean;
  /** CloudEvents `source` of appended events that have none. Default `urn:wharf:<hostname>`. */
  source?: string;
}

/** Metrics of an outbox, for dashboards and alerts. */
export interface OutboxStats {
  /** Age of the oldest row not yet sent (parked rows excluded), ms; 0 when none. */
  readonly oldestUnsentAgeMs: number;
  /** Rows not yet sent (parked rows excluded). */
  readonly unsent: number;
  /** Rows parked after too many failures (their keys are blocked). */
  readonly parked: number;
  /** Rows moved to the dead-letter table. */
  readonly deadLettered: number;
}

/** The channel `pg_notify` uses for a schema. */
export function notifyChannel(schema: string): string {
  return `wharf_outbox_${schema}`;
}

/** Relays running in this process, by schema: `append`'s commit nudges them (see {@link Outbox.transaction}). */
const localRelays = new Map<string, Set<Relay>>();

/**
 * A transactional outbox: events are written to a table in the caller's own transaction and a relay
 * publishes them after commit, so the database and the broker never disagree.
 *
 * @example
 * ```ts
 * const outbox = createOutbox(pool, { schema: 'shop' });
 * await outbox.transaction(async (client) => {
 *   await client.query('INSERT INTO orders (id) VALUES ($1)', ['o-1']);
 *   await outbox.append(client, 'orders', { type: 'OrderPlaced', partitionkey: 'o-1', data: { id: 'o-1' } });
 * });
 * const relay = outbox.startRelay(bus);
 * ```
 */
export class Outbox {
  readonly schema: string;
  readonly partitions: number;
  /** CloudEvents `source` given to appended events that have none. */
  readonly source: string;
  readonly #pool: Pool;
  readonly #notify: boolean;
  readonly #insert: string;
  readonly #insertMany: string;

  constructor(pool: Pool, options: OutboxOptions = {}) {
    this.#pool = pool;
    this.schema = schemaName(options);
    this.partitions = intOption(options.partitions, 'partitions', 16, 1, 4096);
    this.#notify = options.notify ?? false;
    this.source = options.source ?? `urn:wharf:${hostname()}`;
    // The key's lock is taken before the row gets its id (the CTE is read before the insert runs), and
    // a commit is visible before its locks are released: for one key, id order is commit order.
    const notify = this.#notify ? `, (SELECT pg_notify('${notifyChannel(this.schema)}', '')) AS n` : '';
    this.#insert = `WITH l AS (SELECT pg_advisory_xact_lock(${LOCK_KEY}, hashtext($1)))
      INSERT INTO ${table(this.schema, 'outbox')}
        (partition, key, channel, event_id, source, type, time, datacontenttype, subject, headers, payload)
      SELECT mod(abs(hashtext($1)::bigint), ${this.partitions}), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
      FROM l${notify}`;
    // Several rows in one statement: the keys' locks are taken in one sorted order (so two batch
    // appenders never wait on each other in a cycle), all of them before any row takes its id; the
    // rows then take ids in the given order.
    this.#insertMany = `WITH l AS (
        SELECT pg_advisory_xact_lock(${LOCK_KEY}, h) FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) k) s ORDER BY h),
      locked AS (SELECT count(*) FROM l)
      INSERT INTO ${table(this.schema, 'outbox')}
        (partition, key, channel, event_id, source, type, time, datacontenttype, subject, headers, payload)
      SELECT mod(abs(hashtext(r.key)::bigint), ${this.partitions}), r.key, $2, r.event_id, r.source, r.type, r.time,
        r.datacontenttype, r.subject, r.headers, r.payload
      FROM locked, unnest($1::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::bytea[])
        WITH ORDINALITY AS r(key, event_id, source, type, time, datacontenttype, subject, headers, payload, n)${notify}
      ORDER BY r.n`;
  }

  /**
   * Writes an event to the outbox on `client`, inside the caller's transaction: it is published only if
   * that transaction commits. Events with the same `partitionkey` are published in commit order; an
   * event without one is keyed by its id. Resolves with the complete CloudEvent (id, time, source).
   * Throws `InvalidEventError` for a malformed event, `PostgresError` when the insert fails (the
   * transaction is then aborted, as for any failed statement).
   *
   * The key stays locked until the transaction ends, so a second append of the same key elsewhere
   * waits for it. Like row locks: two transactions that append several shared keys in different
   * orders can deadlock (PostgreSQL aborts one of them); append the keys in a consistent order.
   */
  async append<T>(client: ClientBase, channel: string, input: EventInput<T>): Promise<CloudEvent<T>> {
    const event = createEvent<T>(input, this.source);
    const [key, ...rest] = rowOf(event as CloudEvent);
    try {
      await client.query(this.#insert, [key, channel, ...rest]);
    } catch (cause) {
      throw postgresError(`appending ${event.type} ${event.id} to the outbox of "${this.schema}"`, cause);
    }
    return event;
  }

  /**
   * Appends several events to one channel in one statement (one round trip), in the given order; same
   * rules as {@link append}. The keys are locked in a fixed order, so concurrent `appendMany` calls
   * never deadlock on each other.
   */
  async appendMany<T>(client: ClientBase, channel: string, inputs: readonly EventInput<T>[]): Promise<CloudEvent<T>[]> {
    const events = inputs.map((input) => createEvent<T>(input, this.source));
    if (events.length === 0) return events;
    const columns: unknown[][] = [[], [], [], [], [], [], [], [], []];
    for (const event of events) {
      const row = rowOf(event as CloudEvent);
      for (let i = 0; i < row.length; i++) columns[i]?.push(row[i]);
    }
    const [keys, ...rest] = columns;
    try {
      await client.query(this.#insertMany, [keys, channel, ...rest]);
    } catch (cause) {
      throw postgresError(`appending ${events.length} events to the outbox of "${this.schema}"`, cause);
    }
    return events;
  }

  /**
   * Runs `work` in a transaction on a pooled client, commits, then wakes this process's relays so the
   * events go out at once rather than at the next poll. Rolls back (and rethrows) if `work` throws.
   * When the database is unreachable or the connection breaks, throws `PostgresUnavailableError`
   * (a `PostgresError`): nothing of the transaction is kept, unless the connection broke while its
   * COMMIT was in flight.
   */
  async transaction<R>(work: (client: PoolClient) => Promise<R>): Promise<R> {
    const doing = `an outbox transaction on "${this.schema}"`;
    const { value } = await inTransaction(this.#pool, doing, async (client) => ({
      commit: true,
      value: await work(client),
    }));
    this.nudge();
    return value;
  }

  /** Wakes this process's relays of this schema; call it after committing a transaction that appended. */
  nudge(): void {
    for (const relay of localRelays.get(this.schema) ?? []) relay.nudge();
  }

  /**
   * Starts a relay that publishes this outbox's rows through `bus` (anything with the bus's
   * `publish`, which resolves once the broker confirmed). Stop it with `relay.stop()`.
   *
   * With `{ mode: 'cdc' }` the relay streams the outbox's inserts from a logical replication slot
   * instead of polling (see {@link CdcRelay}); it falls back to polling, with a warning, where CDC
   * cannot run. Run either CDC relays (one slot per group) or polling relays on a schema, not both.
   */
  startRelay(bus: PublishingBus, options: CdcRelayOptions & RelayOptions): CdcRelay;
  startRelay(bus: PublishingBus, options?: RelayOptions & { mode?: 'polling' }): Relay;
  startRelay(
    bus: PublishingBus,
    options: (RelayOptions & { mode?: 'polling' }) | (CdcRelayOptions & RelayOptions) = {},
  ): Relay | CdcRelay {
    if (options.mode === 'cdc') {
      const { mode: _, slot: __, publication: ___, replication: ____, ...polling } = options;
      // Only its polling fallback (registered below) needs the commits' nudges.
      const relay = new CdcRelay(this.#pool, bus, this.schema, options, () => this.startRelay(bus, polling));
      relay.start();
      return relay;
    }
    const relay = new Relay(this.#pool, bus, { schema: this.schema, partitions: this.partitions }, options, {
      notifyChannel: options.listen ? notifyChannel(this.schema) : undefined,
      onStop: () => localRelays.get(this.schema)?.delete(relay),
    });
    let set = localRelays.get(this.schema);
    if (set === undefined) {
      set = new Set();
      localRelays.set(this.schema, set);
    }
    set.add(relay);
    relay.start();
    return relay;
  }

  /** The oldest unsent row's age and the parked count, for metrics. */
  async stats(): Promise<OutboxStats> {
    const { rows } = await this.#pool.query<{ age: string | null; unsent: string; parked: string; dead: string }>(
      `SELECT extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE parked_at IS NULL)) * 1000 AS age,
              count(*) FILTER (WHERE parked_at IS NULL) AS unsent,
              count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
              (SELECT count(*) FROM ${table(this.schema, 'outbox_dead_letters')}) AS dead
       FROM ${table(this.schema, 'outbox')}`,
    );
    const row = rows[0];
    return {
      oldestUnsentAgeMs: row?.age == null ? 0 : Math.max(0, Math.round(Number(row.age))),
      unsent: Number(row?.unsent ?? 0),
      parked: Number(row?.parked ?? 0),
      deadLettered: Number(row?.dead ?? 0),
    };
  }
}

/** An event's column values: key, event_id, source, type, time, datacontenttype, subject, headers, payload. */
function rowOf(event: CloudEvent): unknown[] {
  const wire = encodeEvent(event);
  const { id, source, type, time, datacontenttype, subject, specversion: _, ...extensions } = wire.attributes;
  return [
    event.partitionkey ?? event.id,
    id,
    source,
    type,
    time ?? null,
    datacontenttype ?? null,
    subject ?? null,
    extensions,
    Buffer.from(wire.body.buffer, wire.body.byteOffset, wire.body.byteLength),
  ];
}

/** Creates an {@link Outbox} over `pool` (run {@link migrate} on the schema first). */
export function createOutbox(pool: Pool, options: OutboxOptions = {}): Outbox {
  return new Outbox(pool, options);
}
