import { ConfigError, consoleLogger, type EventInput, type Logger } from '@wharf/core';
import type { ClientConfig, Pool } from 'pg';
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import { intOption, LOCK_KEY, table } from './options.js';
import { isPermanent, type PublishingBus, type Relay, type RelayStats, type Row, toInput } from './relay.js';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const RETRY_MAX_MS = 5_000;

/** Options of the CDC relay: `outbox.startRelay(bus, { mode: 'cdc', … })`. */
export interface CdcRelayOptions {
  mode: 'cdc';
  /**
   * The logical replication slot: one per relay group. Only one relay streams from a slot at a time
   * (PostgreSQL refuses a second), so the others of the group wait and take over when it dies.
   * Default `wharf_<schema>`.
   */
  slot?: string;
  /** The publication on the outbox table, created when missing. Default `wharf_outbox_<schema>`. */
  publication?: string;
  /** Connection of the replication stream. Default: the pool's own settings. */
  replication?: ClientConfig;
  /** Keys of one transaction published in parallel (each key's events one after another). Default 64. */
  concurrency?: number;
  /** Rows read per round of the start-up catch-up (rows already in the table). Default 500. */
  batchSize?: number;
  /**
   * When no outbox transaction was acknowledged for this long, ms, the relay writes an empty
   * logical message (`pg_logical_emit_message`) and acknowledges it when it streams back, so the
   * slot's `restart_lsn` moves on while the outbox is quiet and other tables fill the WAL. Default 10 000.
   */
  heartbeatMs?: number;
  logger?: Logger;
}

/** Counters of a CDC relay. */
export interface CdcRelayStats {
  /** `starting` until the slot streams or the relay fell back; `polling` after a fallback. */
  readonly mode: 'starting' | 'cdc' | 'polling';
  /** Why it fell back to polling, if it did. */
  readonly fallback: string | undefined;
  /** Events confirmed by the broker and deleted (the polling fallback's are in `polling`). */
  readonly published: number;
  /** Committed outbox transactions published and acknowledged to the slot (heartbeats not counted). */
  readonly transactions: number;
  /** Streamed rows that were no longer in the table (sent before a crash, or by the start-up catch-up). */
  readonly alreadySent: number;
  /** Failed publishes or database rounds (each retried after a backoff). */
  readonly failures: number;
  /** The last commit LSN acknowledged to the slot (its `confirmed_flush_lsn`). */
  readonly confirmedLsn: string | undefined;
  /** The polling relay's counters after a fallback. */
  readonly polling: RelayStats | undefined;
}

/**
 * The opt-in CDC relay: streams the outbox table's inserts from a logical replication slot
 * (pgoutput), publishes each committed transaction's rows (per key in order, waiting for the
 * broker's confirms), deletes them, and only then acknowledges the transaction's commit LSN. A
 * crash before the acknowledgement makes the slot send the transaction again; its rows that were
 * already deleted are skipped, the others are published again (at-least-once; the id dedups).
 *
 * The rows stay the source of truth: what is in the table is what was not confirmed. So the relay
 * falls back to the polling relay, with a warning, whenever CDC cannot run (`wal_level` is not
 * `logical`, the slot was invalidated, a row can never be published), and the polling relay sends
 * whatever is left. Created by {@link Outbox.startRelay} with `mode: 'cdc'`.
 */
export class CdcRelay {
  readonly #pool: Pool;
  readonly #bus: PublishingBus;
  readonly #logger: Logger;
  readonly #schema: string;
  readonly #outbox: string;
  readonly #slot: string;
  readonly #publication: string;
  readonly #replication: ClientConfig;
  readonly #concurrency: number;
  readonly #batch: number;
  readonly #heartbeatMs: number;
  #lastAck = 0;
  readonly #startPolling: () => Relay;
  #mode: 'starting' | 'cdc' | 'polling' = 'starting';
  #fallbackReason: string | undefined;
  #polling: Relay | undefined;
  #service: LogicalReplicationService | undefined;
  #confirmed: string | undefined;
  #published = 0;
  #transactions = 0;
  #alreadySent = 0;
  #failures = 0;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  /** The transaction or catch-up in progress; stop() waits for it. */
  #work: Promise<void> = Promise.resolve();
  #wake: (() => void) | undefined;
  #resolveReady!: (mode: 'cdc' | 'polling') => void;
  /** Resolves once the relay streams from its slot, or fell back to polling. */
  readonly ready: Promise<'cdc' | 'polling'>;

  constructor(pool: Pool, bus: PublishingBus, schema: string, options: CdcRelayOptions, startPolling: () => Relay) {
    this.#pool = pool;
    this.#bus = bus;
    this.#logger = options.logger ?? consoleLogger(process.env.WHARF_LOG === 'debug' ? 'debug' : 'warn');
    this.#schema = schema;
    this.#outbox = table(schema, 'outbox');
    this.#slot = identifier(options.slot ?? `wharf_${schema}`, 'slot');
    this.#publication = identifier(options.publication ?? `wharf_outbox_${schema}`, 'publication');
    this.#replication = options.replication ?? (pool as unknown as { options: ClientConfig }).options;
    this.#concurrency = intOption(options.concurrency, 'concurrency', 64, 1, 10_000);
    this.#batch = intOption(options.batchSize, 'batchSize', 500, 1, 100_000);
    this.#heartbeatMs = intOption(options.heartbeatMs, 'heartbeatMs', 10_000, 100, 86_400_000);
    this.#startPolling = startPolling;
    this.ready = new Promise((resolve) => {
      this.#resolveReady = resolve;
    });
  }

  /** The slot this relay streams from. */
  get slot(): string {
    return this.#slot;
  }

  /** The publication on the outbox table. */
  get publication(): string {
    return this.#publication;
  }

  /** `starting`, `cdc`, or `polling` after a fallback. */
  get mode(): 'starting' | 'cdc' | 'polling' {
    return this.#mode;
  }

  /** @internal Checks the server, then streams (or falls back to polling). */
  start(): void {
    this.#loop = this.#run();
  }

  /** Wakes the polling fallback (a CDC stream needs no nudge: the server pushes each commit). */
  nudge(): void {
    this.#polling?.nudge();
  }

  stats(): CdcRelayStats {
    return {
      mode: this.#mode,
      fallback: this.#fallbackReason,
      published: this.#published,
      transactions: this.#transactions,
      alreadySent: this.#alreadySent,
      failures: this.#failures,
      confirmedLsn: this.#confirmed,
      polling: this.#polling?.stats(),
    };
  }

  /**
   * Stops streaming after the transaction in progress was published, deleted and acknowledged (or
   * its retry backoff was cut short: then it is sent again by the next relay). Idempotent.
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#wake?.();
      await this.#work;
      await this.#service?.stop().catch(() => undefined);
      await this.#loop;
      await this.#polling?.stop();
      this.#resolveReady(this.#mode === 'polling' ? 'polling' : 'cdc');
    })();
    return this.#stopped;
  }

  async #run(): Promise<void> {
    let delay = 0;
    while (!this.#stopping) {
      let plan: 'stream' | { fallback: string; drop: boolean };
      try {
        plan = await this.#prepare();
      } catch (error) {
        this.#failures++;
        delay = Math.min(RETRY_MAX_MS, delay === 0 ? 250 : delay * 2);
        this.#logger.warn('[wharf] [postgres] CDC relay cannot prepare its slot; retrying', {
          error: String(error),
          delayMs: delay,
        });
        await this.#sleep(delay);
        continue;
      }
      if (plan !== 'stream') {
        await this.#fallBack(plan.fallback, plan.drop);
        return;
      }
      const outcome = await this.#stream();
      if (typeof outcome === 'object') {
        await this.#fallBack(outcome.fallback, true);
        return;
      }
      if (this.#stopping) return;
      // The stream ended (database restarted, slot held by another relay of the group): try again.
      delay = outcome === 'started' ? 250 : Math.min(RETRY_MAX_MS, delay === 0 ? 250 : delay * 2);
      await this.#sleep(delay);
    }
  }

  /** wal_level, the publication and the slot: whether CDC can run here. */
  async #prepare(): Promise<'stream' | { fallback: string; drop: boolean }> {
    const level = (await this.#pool.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
    if (level !== 'logical') {
      return {
        fallback: `wal_level is "${level}", not "logical" (set it with ALTER SYSTEM SET wal_level = logical and restart PostgreSQL)`,
        drop: false,
      };
    }
    const slot = await this.#pool.query<{ wal_status: string | null; confirmed_flush_lsn: string | null }>(
      'SELECT wal_status, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1',
      [this.#slot],
    );
    const found = slot.rows[0];
    if (found?.wal_status === 'lost') {
      return {
        fallback: `replication slot "${this.#slot}" was invalidated (wal_status = 'lost': it kept more WAL than max_slot_wal_keep_size allows); it is dropped, and a later CDC start creates a new one`,
        drop: true,
      };
    }
    const pub = await this.#pool.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [this.#publication]);
    if (pub.rowCount === 0) {
      await this.#pool
        .query(`CREATE PUBLICATION "${this.#publication}" FOR TABLE ${this.#outbox} WITH (publish = 'insert')`)
        .catch(ignoreDuplicate);
    }
    if (found === undefined) {
      const created = await this.#pool
        .query<{ lsn: string }>("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", [
          this.#slot,
        ])
        .catch(ignoreDuplicate);
      this.#confirmed = created?.rows[0]?.lsn;
    } else if (found.confirmed_flush_lsn !== null) {
      this.#confirmed = found.confirmed_flush_lsn;
    }
    return 'stream';
  }

  /**
   * Streams from the slot until the connection ends. `started` when the slot was acquired (so a retry
   * comes soon), `refused` when it never was (another relay holds it, or the database is down).
   */
  async #stream(): Promise<'started' | 'refused' | { fallback: string }> {
    const service = new LogicalReplicationService(
      { ...this.#replication },
      // Never acknowledge by itself: not per message, not on a timer (which reports the last
      // *received* LSN, before its events were published).
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    this.#service = service;
    let started = false;
    let fallback: string | undefined;
    let caughtUp: Promise<void> = Promise.resolve();
    let transaction: { id: string; key: string }[] | undefined;
    const end = (reason: string): void => {
      fallback ??= reason;
      void service.stop().catch(() => undefined);
    };
    let heartbeat: NodeJS.Timeout | undefined;
    service.on('start', () => {
      started = true;
      this.#lastAck = Date.now();
      heartbeat = setInterval(
        () => {
          if (Date.now() - this.#lastAck < this.#heartbeatMs || this.#stopping) return;
          this.#lastAck = Date.now();
          // Only the keepalive's position would be wrong to acknowledge (events received but not yet
          // published may lie before it); a transaction of our own comes back through the stream in
          // order, behind everything before it, and its commit is then safe to acknowledge.
          this.#pool
            .query("SELECT pg_logical_emit_message(true, 'wharf', '')")
            .catch((error) =>
              this.#logger.warn('[wharf] [postgres] CDC heartbeat message failed', { error: String(error) }),
            );
        },
        Math.min(1_000, this.#heartbeatMs),
      );
      this.#mode = 'cdc';
      this.#resolveReady('cdc');
      // The slot is ours now (a second relay's START_REPLICATION fails): first send what the table
      // holds, i.e. rows committed before the slot existed, or left by a polling relay.
      caughtUp = this.#track(this.#catchUp(end));
    });
    service.on('error', (error: Error) => {
      if (!this.#stopping) this.#logger.warn('[wharf] [postgres] CDC stream error', { error: String(error) });
    });
    service.on('heartbeat', (_lsn: string, _time: number, shouldRespond: boolean) => {
      // Report the last *published* commit, never the keepalive's position: that is what keeps
      // wal_sender_timeout from dropping an idle stream without confirming anything unsent.
      if (shouldRespond && this.#confirmed !== undefined) void service.acknowledge(minusOne(this.#confirmed));
    });
    service.on('data', async (_lsn: string, message: Pgoutput.Message) => {
      // With flow control the next message waits for this handler: a transaction is published,
      // deleted and acknowledged before the following one is read.
      await caughtUp;
      if (this.#stopping || fallback !== undefined) return;
      if (message.tag === 'begin') transaction = [];
      else if (message.tag === 'insert') {
        if (message.relation.schema === this.#schema && message.relation.name === 'outbox') {
          transaction?.push({ id: String(message.new.id), key: String(message.new.key) });
        }
      } else if (message.tag === 'commit' && message.commitEndLsn !== null) {
        const ids = transaction ?? [];
        transaction = undefined;
        await this.#track(this.#transaction(service, ids, message.commitEndLsn, end));
      }
    });
    try {
      await service.subscribe(
        new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.#publication], messages: true }),
        this.#slot,
        // From the slot's confirmed position, whatever this process saw before.
        '0/00000000',
      );
    } catch (error) {
      if (!this.#stopping && fallback === undefined) {
        this.#failures++;
        this.#logger.warn(
          started
            ? '[wharf] [postgres] CDC stream ended; reconnecting'
            : '[wharf] [postgres] CDC relay cannot stream from its slot (held by another relay of the group, or PostgreSQL is down); retrying',
          { slot: this.#slot, error: String(error) },
        );
      }
    }
    clearInterval(heartbeat);
    await this.#work;
    await service.stop().catch(() => undefined);
    if (fallback !== undefined) return { fallback };
    return started ? 'started' : 'refused';
  }

  /** Publishes one committed transaction's rows that are still in the table, deletes them, acknowledges it. */
  async #transaction(
    service: LogicalReplicationService,
    inserted: readonly { id: string; key: string }[],
    commitEndLsn: string,
    end: (reason: string) => void,
  ): Promise<void> {
    let first = true;
    const ids = inserted.map((row) => row.id);
    const keys = [...new Set(inserted.map((row) => row.key))];
    const done = await this.#untilSent(end, async () => {
      if (ids.length === 0) return [];
      // The commit record reaches the stream once flushed, a moment *before* the commit is visible
      // to other sessions: reading the rows then would miss them and count them as sent. The writer
      // holds its keys' advisory locks until after its commit is visible, so taking each key's lock
      // (shared, one at a time, released at once: no deadlock with writers) waits for that moment.
      await this.#pool.query(
        `SELECT pg_advisory_lock_shared(${LOCK_KEY}, h), pg_advisory_unlock_shared(${LOCK_KEY}, h)
         FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) k) s`,
        [keys],
      );
      const rows = await this.#rows('id = ANY($1::bigint[])', [ids]);
      if (first) this.#alreadySent += ids.length - rows.length;
      first = false;
      return rows;
    });
    if (!done) return;
    // acknowledge(lsn) reports lsn + 1: the server receives exactly the commit's end, as a pgoutput
    // subscriber reports it (acknowledging the end itself could skip an adjacent commit).
    await service.acknowledge(minusOne(commitEndLsn));
    this.#confirmed = commitEndLsn;
    this.#lastAck = Date.now();
    if (inserted.length > 0) this.#transactions++;
  }

  /** Sends the rows already in the table, in id order, until none is left. */
  async #catchUp(end: (reason: string) => void): Promise<void> {
    for (;;) {
      let more = false;
      const done = await this.#untilSent(end, async () => {
        const rows = await this.#rows('true', [], this.#batch);
        more = rows.length === this.#batch;
        return rows;
      });
      if (!done || !more) return;
    }
  }

  /**
   * Fetches and publishes until it succeeds (true), the relay stops or a row can never be published
   * (false; CDC then ends and the polling relay, which parks such rows, takes over).
   */
  async #untilSent(end: (reason: string) => void, fetch: () => Promise<Row[]>): Promise<boolean> {
    let delay = 0;
    while (!this.#stopping) {
      try {
        await this.#send(await fetch());
        return true;
      } catch (error) {
        this.#failures++;
        if (isPermanent(error)) {
          end(`an outbox row can never be published (${String(error)}); the polling relay parks it`);
          return false;
        }
        delay = Math.min(RETRY_MAX_MS, delay === 0 ? 250 : delay * 2);
        this.#logger.warn('[wharf] [postgres] CDC relay could not send a transaction; retrying it', {
          error: String(error),
          delayMs: delay,
        });
        await this.#sleep(delay);
      }
    }
    return false;
  }

  /** Unsent, unparked rows in id order, of keys without a parked row (those wait for the polling relay). */
  async #rows(filter: string, params: unknown[], limit?: number): Promise<Row[]> {
    const { rows } = await this.#pool.query<Row>(
      `SELECT id, partition, key, channel, event_id, source, type, time, datacontenttype, subject, headers, payload, attempts
       FROM ${this.#outbox} o
       WHERE ${filter} AND parked_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM ${this.#outbox} p WHERE p.key = o.key AND p.parked_at IS NOT NULL)
       ORDER BY id${limit === undefined ? '' : ` LIMIT ${limit}`}`,
      params,
    );
    return rows;
  }

  /** Publishes rows per key in order (keys in parallel), deletes the confirmed ones, then throws the first failure. */
  async #send(rows: readonly Row[]): Promise<void> {
    if (rows.length === 0) return;
    const byKey = new Map<string, Row[]>();
    for (const row of rows) {
      const list = byKey.get(row.key);
      if (list) list.push(row);
      else byKey.set(row.key, [row]);
    }
    const queue = [...byKey.values()];
    const sent: string[] = [];
    let failure: unknown;
    const worker = async (): Promise<void> => {
      for (let list = queue.shift(); list !== undefined; list = queue.shift()) {
        try {
          for (const row of list) {
            const input: EventInput<unknown> = toInput(row);
            await this.#bus.publish(row.channel, input);
            sent.push(row.id);
          }
        } catch (error) {
          failure ??= error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, queue.length) }, worker));
    if (sent.length > 0) {
      const deleted = await this.#pool.query(`DELETE FROM ${this.#outbox} WHERE id = ANY($1::bigint[])`, [sent]);
      this.#published += deleted.rowCount ?? 0;
    }
    if (failure !== undefined) throw failure;
  }

  async #fallBack(reason: string, dropSlot: boolean): Promise<void> {
    if (this.#stopping) return;
    this.#fallbackReason = reason;
    this.#logger.warn(`[wharf] [postgres] CDC relay falls back to the polling relay: ${reason}`, {
      slot: this.#slot,
    });
    if (dropSlot) await this.#dropSlot();
    this.#mode = 'polling';
    this.#polling = this.#startPolling();
    this.#resolveReady('polling');
  }

  /** Drops the slot (an abandoned one keeps WAL forever; the table still holds every unsent row). */
  async #dropSlot(): Promise<void> {
    // The server's walsender may still hold the slot for a moment after the stream closed.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.#pool.query(
          'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
          [this.#slot],
        );
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== '55006' || Date.now() > deadline) {
          this.#logger.warn('[wharf] [postgres] cannot drop the replication slot; drop it by hand', {
            slot: this.#slot,
            error: String(error),
          });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  #track(work: Promise<void>): Promise<void> {
    this.#work = work;
    return work;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.#wake = undefined;
    });
  }
}

/** An LSN (`X/Y`, hexadecimal) less one, for `acknowledge`, which reports its argument + 1. */
export function minusOne(lsn: string): string {
  const [high = '0', low = '0'] = lsn.split('/');
  const value = (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`) - 1n;
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

function identifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new ConfigError(
      'postgres',
      `${what} must be a lower-case SQL identifier (letters, digits, _; at most 63), got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/** Another relay of the group created it first. */
function ignoreDuplicate(error: unknown): undefined {
  if ((error as { code?: string }).code === '42710') return undefined;
  throw error;
}
