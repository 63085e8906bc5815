import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  type CloudEvent,
  ConfigError,
  ContractViolationError,
  consoleLogger,
  decodeEvent,
  type EventInput,
  InvalidEventError,
  type Logger,
  MessageTooLargeError,
  NonRetryableError,
} from '@wharf/core';
import type { Pool, PoolClient } from 'pg';
import { type Lease, Leases } from './leases.js';
import { intOption, table } from './options.js';

/** What the relay needs of a bus: `publish`, resolving once the broker confirmed the event. */
export interface PublishingBus {
  publish<T>(channel: string, input: EventInput<T>): Promise<unknown>;
}

/** Options of {@link Outbox.startRelay}. */
export interface RelayOptions {
  /** This relay's name in the lease table. Default `<hostname>:<pid>:<random>`. */
  owner?: string;
  /** Lease time to live, ms; renewed every third of it. A dead relay's partitions move after it. Default 10 000. */
  leaseTtlMs?: number;
  /** Poll when nothing woke the relay, ms (250–1000). Default 500. */
  pollIntervalMs?: number;
  /** Rows fetched per round. Default 500. */
  batchSize?: number;
  /** Keys published in parallel (each key's events one after another). Default 64. */
  concurrency?: number;
  /** Attempts of a row before it is parked. Default 10. */
  maxAttempts?: number;
  /** Per-key backoff after a failed publish: `initialMs` doubling up to `maxMs`. Default 500 ms to 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * What happens to a row that failed `maxAttempts` times or cannot be published at all
   * (too large, invalid): `'block'` (default) parks it and holds back its key's later events until an
   * operator acts; `'dead-letter'` moves it to `outbox_dead_letters` and lets the key go on.
   */
  onPoison?: 'block' | 'dead-letter';
  /** LISTEN for the writers' `pg_notify` (needs `notify: true` on the writers' outbox). Default false. */
  listen?: boolean;
  logger?: Logger;
}

/** Counters of a running relay. */
export interface RelayStats {
  /** Events confirmed by the broker and deleted under a valid lease. */
  readonly published: number;
  /** Events confirmed by the broker whose delete the lease fence refused (they will be sent again). */
  readonly fenced: number;
  /** Publish failures. */
  readonly failures: number;
  /** Rows this relay parked or dead-lettered. */
  readonly parked: number;
  /** `pg_notify` wake-ups received (with `listen: true`). */
  readonly notifications: number;
  /** Rounds that failed on the database (down, connection lost); each is retried after a backoff. */
  readonly databaseErrors: number;
  /** Partitions held now. */
  readonly partitions: readonly number[];
}

/** @internal An outbox row as the relays read it. */
export interface Row {
  id: string;
  partition: number;
  key: string;
  channel: string;
  event_id: string;
  source: string;
  type: string;
  time: string | null;
  datacontenttype: string | null;
  subject: string | null;
  headers: Record<string, string>;
  payload: Buffer;
  attempts: number;
}

const DB_RETRY_MAX_MS = 5_000;

/**
 * Publishes an outbox's rows. Holds partition leases, fetches its partitions' rows in id order,
 * publishes each key's events one after another (different keys in parallel) waiting for the broker's
 * confirm, and deletes the sent rows only while still holding the lease it fetched them under.
 * Created by {@link Outbox.startRelay}.
 */
export class Relay {
  readonly #pool: Pool;
  readonly #bus: PublishingBus;
  readonly #leases: Leases;
  readonly #logger: Logger;
  readonly #outbox: string;
  readonly #dead: string;
  readonly #leaseTable: string;
  readonly #poll: number;
  readonly #batch: number;
  readonly #concurrency: number;
  readonly #maxAttempts: number;
  readonly #backoffInitial: number;
  readonly #backoffMax: number;
  readonly #onPoison: 'block' | 'dead-letter';
  readonly #notifyChannel: string | undefined;
  readonly #onStop: () => void;
  /** Keys in backoff, until performance.now() reaches the value. */
  readonly #backoff = new Map<string, number>();
  #published = 0;
  #fenced = 0;
  #failures = 0;
  #parked = 0;
  #notifications = 0;
  #databaseErrors = 0;
  #error: Error | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #leaseRun: Promise<void> | undefined;
  /** Partitions to give back before the next round. */
  #release: number[] = [];
  #woken = false;
  #wake: (() => void) | undefined;
  #listener: PoolClient | undefined;
  #listenTimer: NodeJS.Timeout | undefined;

  constructor(
    pool: Pool,
    bus: PublishingBus,
    outbox: { schema: string; partitions: number },
    options: RelayOptions,
    internal: { notifyChannel: string | undefined; onStop: () => void },
  ) {
    this.#pool = pool;
    this.#bus = bus;
    this.#logger = options.logger ?? consoleLogger(process.env.WHARF_LOG === 'debug' ? 'debug' : 'warn');
    const ttl = intOption(options.leaseTtlMs, 'leaseTtlMs', 10_000, 300, 3_600_000);
    const owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#leases = new Leases(pool, outbox.schema, owner, outbox.partitions, ttl);
    this.#outbox = table(outbox.schema, 'outbox');
    this.#dead = table(outbox.schema, 'outbox_dead_letters');
    this.#leaseTable = table(outbox.schema, 'outbox_leases');
    this.#poll = intOption(options.pollIntervalMs, 'pollIntervalMs', 500, 250, 1_000);
    this.#batch = intOption(options.batchSize, 'batchSize', 500, 1, 100_000);
    this.#concurrency = intOption(options.concurrency, 'concurrency', 64, 1, 10_000);
    this.#maxAttempts = intOption(options.maxAttempts, 'maxAttempts', 10, 1, 1_000_000);
    this.#backoffInitial = intOption(options.backoff?.initialMs, 'backoff.initialMs', 500, 1, 3_600_000);
    this.#backoffMax = intOption(options.backoff?.maxMs, 'backoff.maxMs', 30_000, 1, 86_400_000);
    this.#onPoison = options.onPoison ?? 'block';
    this.#notifyChannel = internal.notifyChannel;
    this.#onStop = internal.onStop;
  }

  /** Why the relay could not start (it then leases nothing), e.g. a partition count that differs from the table's. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** This relay's name in the lease table. */
  get owner(): string {
    return this.#leases.owner;
  }

  /** @internal Starts the lease heartbeat, the listener and the publish loop. */
  start(): void {
    const every = Math.max(100, Math.floor(this.#leases.ttlMs / 3));
    const beat = (): void => {
      this.#leaseRun = this.#refreshLeases().finally(() => {
        this.#leaseRun = undefined;
        if (!this.#stopping) this.#leaseTimer = setTimeout(beat, every);
      });
    };
    const boot = (): void => {
      this.#leaseRun = this.#leases
        .init()
        .then(
          async () => {
            await this.#refreshLeases();
            if (!this.#stopping) this.#leaseTimer = setTimeout(beat, every);
          },
          (error) => {
            if (error instanceof ConfigError) {
              // A wrong partition count leases nothing, loudly, rather than relay a part of the outbox.
              this.#error = error;
              this.#logger.error('[wharf] [postgres] the relay cannot start; it leases no partition', {
                error: error.message,
              });
              return;
            }
            this.#logger.warn('[wharf] [postgres] cannot reach the lease table; retrying', { error: String(error) });
            if (!this.#stopping) this.#leaseTimer = setTimeout(boot, every);
          },
        )
        .finally(() => {
          this.#leaseRun = undefined;
        });
    };
    boot();
    if (this.#notifyChannel) void this.#listen();
    this.#loop = this.#run();
  }

  async #refreshLeases(): Promise<void> {
    try {
      const extra = await this.#leases.refresh();
      this.#release = extra;
      this.nudge();
    } catch (error) {
      this.#logger.warn('[wharf] [postgres] cannot renew the relay leases; retrying', { error: String(error) });
    }
  }

  /** Wakes the publish loop now (after a commit, a notification or a reconnect). */
  nudge(): void {
    this.#woken = true;
    this.#wake?.();
  }

  /** Counters and the partitions held. */
  stats(): RelayStats {
    return {
      published: this.#published,
      fenced: this.#fenced,
      failures: this.#failures,
      parked: this.#parked,
      notifications: this.#notifications,
      databaseErrors: this.#databaseErrors,
      partitions: [...this.#leases.held.keys()].sort((a, b) => a - b),
    };
  }

  /**
   * Stops fetching, lets the round in progress finish (publishes confirmed, rows deleted), then gives
   * the leases back so another relay takes over at once. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      clearTimeout(this.#leaseTimer);
      clearTimeout(this.#listenTimer);
      this.nudge();
      await this.#loop;
      await this.#leaseRun;
      this.#listener?.release(true);
      this.#listener = undefined;
      await this.#leases
        .releaseAll()
        .catch((error) => this.#logger.warn('[wharf] [postgres] cannot release the leases', { error: String(error) }));
      this.#onStop();
    })();
    return this.#stopped;
  }

  async #run(): Promise<void> {
    let dbDelay = 0;
    while (!this.#stopping) {
      this.#woken = false;
      let busy = false;
      try {
        if (this.#release.length > 0) {
          const release = this.#release;
          this.#release = [];
          await this.#leases.release(release);
        }
        busy = await this.#round();
        dbDelay = 0;
      } catch (error) {
        // The database is down or the connection broke: back off, then poll at once when it answers.
        this.#databaseErrors++;
        dbDelay = Math.min(DB_RETRY_MAX_MS, dbDelay === 0 ? 250 : dbDelay * 2);
        this.#logger.warn('[wharf] [postgres] relay round failed; retrying', {
          error: String(error),
          delayMs: dbDelay,
        });
        await this.#sleep(dbDelay, false);
        continue;
      }
      if (!busy && !this.#woken) await this.#sleep(this.#nextWait(), true);
    }
  }

  /** The poll interval, shortened to the end of the earliest key backoff. */
  #nextWait(): number {
    let wait = this.#poll;
    const now = performance.now();
    for (const until of this.#backoff.values()) wait = Math.min(wait, Math.max(1, until - now));
    return wait;
  }

  #sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      // A database-retry sleep is not cut short by a commit's nudge, only by stop().
      this.#wake = () => {
        if (wakeable || this.#stopping) done();
      };
    }).finally(() => {
      this.#wake = undefined;
    });
  }

  /** One fetch-publish-delete round; true when it found rows (so the next round runs at once). */
  async #round(): Promise<boolean> {
    if (!this.#leases.valid || this.#leases.held.size === 0) return false;
    const leases = new Map<number, Lease>(this.#leases.held);
    const now = performance.now();
    for (const [key, until] of this.#backoff) if (until <= now) this.#backoff.delete(key);
    const { rows } = await this.#pool.query<Row>(
      `SELECT id, partition, key, channel, event_id, source, type, time, datacontenttype, subject, headers, payload, attempts
       FROM ${this.#outbox} o
       WHERE partition = ANY($1::int[]) AND parked_at IS NULL AND NOT (key = ANY($2::text[]))
         AND NOT EXISTS (SELECT 1 FROM ${this.#outbox} p WHERE p.key = o.key AND p.parked_at IS NOT NULL)
       ORDER BY id LIMIT $3`,
      [[...leases.keys()], [...this.#backoff.keys()], this.#batch],
    );
    if (rows.length === 0) return false;
    const byKey = new Map<string, Row[]>();
    for (const row of rows) {
      const list = byKey.get(row.key);
      if (list) list.push(row);
      else byKey.set(row.key, [row]);
    }
    const sent: Row[] = [];
    const queue = [...byKey.values()];
    let failure: unknown;
    // Every worker finishes before the round ends, even when one fails (the database went away while
    // recording a failed attempt): a next round started beside a still-publishing key would reorder it.
    const worker = async (): Promise<void> => {
      for (let list = queue.shift(); list !== undefined; list = queue.shift()) {
        try {
          await this.#publishKey(list, sent);
        } catch (error) {
          failure ??= error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, queue.length) }, worker));
    await this.#deleteSent(sent, leases);
    if (failure !== undefined) throw failure;
    return true;
  }

  /** Publishes one key's rows in order; stops at the first failure so later events wait for it. */
  async #publishKey(rows: readonly Row[], sent: Row[]): Promise<void> {
    for (const row of rows) {
      // A paused process may wake after its leases expired: stop publishing before another relay
      // (which now owns the partition) and this one interleave a key's events.
      if (!this.#leases.valid) return;
      let input: EventInput<unknown>;
      try {
        input = toInput(row);
      } catch (error) {
        await this.#fail(row, error, true);
        return;
      }
      try {
        await this.#bus.publish(row.channel, input);
      } catch (error) {
        await this.#fail(row, error, isPermanent(error));
        return;
      }
      sent.push(row);
    }
  }

  /** Deletes confirmed rows, but only those of partitions whose lease (and token) this relay still holds. */
  async #deleteSent(sent: readonly Row[], leases: ReadonlyMap<number, Lease>): Promise<void> {
    if (sent.length === 0) return;
    const partitions = [...new Set(sent.map((row) => row.partition))];
    const tokens = partitions.map((p) => leases.get(p)?.token ?? '-1');
    // FOR SHARE on the lease rows: a relay taking one over waits until this delete commits, and the
    // expiry is checked with the database's clock.
    const { rows } = await this.#pool.query<{ partition: number }>(
      `WITH mine AS (
         SELECT l.partition FROM ${this.#leaseTable} l
         JOIN unnest($2::int[], $3::bigint[]) AS t(partition, token) ON t.partition = l.partition AND t.token = l.token
         WHERE l.owner = $4 AND l.expires_at > clock_timestamp()
         FOR SHARE OF l)
       DELETE FROM ${this.#outbox} WHERE id = ANY($1::bigint[]) AND partition IN (SELECT partition FROM mine)
       RETURNING partition`,
      [sent.map((row) => row.id), partitions, tokens, this.#leases.owner],
    );
    this.#published += rows.length;
    if (rows.length < sent.length) {
      this.#fenced += sent.length - rows.length;
      // Forget those leases now: publishing on under a stale token would only send duplicates. The
      // heartbeat takes a partition again (with a new token) if nobody else holds it.
      const kept = new Set(rows.map((row) => row.partition));
      const lost = partitions.filter((partition) => !kept.has(partition));
      for (const partition of lost) {
        if (this.#leases.held.get(partition)?.token === leases.get(partition)?.token)
          this.#leases.held.delete(partition);
      }
      this.#logger.warn(
        '[wharf] [postgres] relay lost a lease before marking events sent; the new owner publishes them again',
        { owner: this.#leases.owner, notDeleted: sent.length - rows.length, partitions: lost },
      );
    }
  }

  /** Counts a failed attempt: backs the key off, or parks the row when it failed too often or can never pass. */
  async #fail(row: Row, error: unknown, permanent: boolean): Promise<void> {
    this.#failures++;
    const attempts = row.attempts + 1;
    // The error's name stays with the row: `last_error` is what an operator reads to decide what to do.
    const message = (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(0, 2_000);
    const park = permanent || attempts >= this.#maxAttempts;
    if (!park) {
      const delay = Math.min(this.#backoffMax, this.#backoffInitial * 2 ** Math.min(30, attempts - 1));
      this.#backoff.set(row.key, performance.now() + delay);
      await this.#pool.query(`UPDATE ${this.#outbox} SET attempts = $2, last_error = $3 WHERE id = $1`, [
        row.id,
        attempts,
        message,
      ]);
      return;
    }
    this.#parked++;
    this.#logger.error('[wharf] [postgres] parking an outbox row that cannot be published', {
      id: row.event_id,
      channel: row.channel,
      key: row.key,
      attempts,
      error: message,
      mode: this.#onPoison,
    });
    if (this.#onPoison === 'dead-letter') {
      await this.#pool.query(
        `WITH moved AS (DELETE FROM ${this.#outbox} WHERE id = $1 RETURNING *)
         INSERT INTO ${this.#dead} (id, partition, key, channel, event_id, source, type, time, datacontenttype,
           subject, headers, payload, created_at, attempts, last_error, parked_at)
         SELECT id, partition, key, channel, event_id, source, type, time, datacontenttype, subject, headers,
           payload, created_at, $2, $3, clock_timestamp() FROM moved`,
        [row.id, attempts, message],
      );
    } else {
      await this.#pool.query(
        `UPDATE ${this.#outbox} SET attempts = $2, last_error = $3, parked_at = clock_timestamp() WHERE id = $1`,
        [row.id, attempts, message],
      );
    }
  }

  /** LISTENs on a dedicated connection; after losing it, reconnects and polls at once (notifications were lost). */
  async #listen(): Promise<void> {
    if (this.#stopping || !this.#notifyChannel) return;
    try {
      const client = await this.#pool.connect();
      if (this.#stopping) {
        // stop() ran while this connection was being opened: it must not stay checked out.
        client.release();
        return;
      }
      this.#listener = client;
      client.on('notification', () => {
        this.#notifications++;
        this.nudge();
      });
      client.on('error', (error) => {
        this.#logger.warn('[wharf] [postgres] relay LISTEN connection lost; reconnecting', { error: String(error) });
        if (this.#listener === client) this.#listener = undefined;
        client.release(true);
        this.#listenTimer = setTimeout(() => void this.#listen(), 1_000);
      });
      await client.query(`LISTEN "${this.#notifyChannel}"`);
      this.nudge();
    } catch (error) {
      this.#logger.warn('[wharf] [postgres] relay cannot LISTEN; polling only until it can', { error: String(error) });
      this.#listenTimer = setTimeout(() => void this.#listen(), 1_000);
    }
  }
}

/** The row as the bus's publish input: the stored attributes and the data decoded by content type. */
export function toInput(row: Row): EventInput<unknown> {
  const attributes: Record<string, string> = { ...row.headers, specversion: '1.0', id: row.event_id };
  attributes.source = row.source;
  attributes.type = row.type;
  if (row.time !== null) attributes.time = row.time;
  if (row.datacontenttype !== null) attributes.datacontenttype = row.datacontenttype;
  if (row.subject !== null) attributes.subject = row.subject;
  const event: CloudEvent = decodeEvent({ attributes, body: row.payload });
  return event as unknown as EventInput<unknown>;
}

/** Errors a retry cannot fix: the row parks at once. */
export function isPermanent(error: unknown): boolean {
  return (
    error instanceof MessageTooLargeError ||
    error instanceof InvalidEventError ||
    error instanceof ContractViolationError ||
    error instanceof NonRetryableError
  );
}
