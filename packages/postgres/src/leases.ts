import { ConfigError } from '@wharf/core';
import type { Pool } from 'pg';
import { table } from './options.js';

/** A partition this relay holds, with the fencing token it got when it took it. */
export interface Lease {
  readonly partition: number;
  readonly token: string;
}

/**
 * Partition leases in a table (owner, fencing token, expiry). Time is the database's clock, so
 * relays on hosts with skewed clocks agree. Plain rows rather than session advisory locks: they
 * work through PgBouncer and survive a reconnect of this process.
 */
export class Leases {
  /** Partitions held, by number. */
  readonly held = new Map<number, Lease>();
  /** Local deadline (performance.now()) until which the held leases are surely valid. */
  validUntil = 0;
  readonly #pool: Pool;
  readonly #leases: string;
  readonly #relays: string;

  constructor(
    pool: Pool,
    schema: string,
    readonly owner: string,
    readonly partitions: number,
    readonly ttlMs: number,
  ) {
    this.#pool = pool;
    this.#leases = table(schema, 'outbox_leases');
    this.#relays = table(schema, 'outbox_relays');
  }

  /**
   * Creates the lease rows for every partition (idempotent). Throws `ConfigError` when the table
   * already has another number of partitions: relays (and writers) of one schema must agree, or
   * rows of partitions no relay leases would never be sent.
   */
  async init(): Promise<void> {
    // Checked before inserting: inserting first would add the missing partitions and hide the mismatch.
    const { rows } = await this.#pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.#leases}`);
    const n = rows[0]?.n ?? 0;
    if (n !== 0 && n !== this.partitions) {
      throw new ConfigError(
        'postgres',
        `the outbox's lease table has ${n} partitions but this relay was configured with ${this.partitions}; writers and relays of a schema must use the same "partitions"`,
      );
    }
    await this.#pool.query(
      `INSERT INTO ${this.#leases} (partition) SELECT generate_series(0, $1::int - 1) ON CONFLICT DO NOTHING`,
      [this.partitions],
    );
  }

  /**
   * One heartbeat: renews the leases still held, then takes free or expired ones up to a fair share
   * (partitions / live relays, rounded up). Returns the partitions held beyond the fair share, which
   * the caller releases between rounds (never while their rows are being published).
   */
  async refresh(): Promise<number[]> {
    // Measured before the round trip, so the local deadline errs on the early side.
    const started = performance.now();
    const ttl = `${this.ttlMs} milliseconds`;
    const { rows: live } = await this.#pool.query<{ n: string }>(
      `WITH beat AS (
         INSERT INTO ${this.#relays} (owner, expires_at) VALUES ($1, clock_timestamp() + $2::interval)
         ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at)
       SELECT count(*) + 1 AS n FROM ${this.#relays} WHERE expires_at > clock_timestamp() AND owner <> $1`,
      [this.owner, ttl],
    );
    const relays = Math.max(1, Number(live[0]?.n ?? 1));
    const share = Math.ceil(this.partitions / relays);
    // Only leases that have not expired are renewed: one that lapsed (this process was paused) may
    // have been taken; if not, it is taken again below with a new token.
    const { rows: renewed } = await this.#pool.query<{ partition: number; token: string }>(
      `UPDATE ${this.#leases} SET expires_at = clock_timestamp() + $2::interval
       WHERE owner = $1 AND expires_at > clock_timestamp() RETURNING partition, token`,
      [this.owner, ttl],
    );
    const next = new Map<number, Lease>();
    for (const row of renewed) next.set(row.partition, { partition: row.partition, token: String(row.token) });
    if (next.size < share) {
      const { rows: taken } = await this.#pool.query<{ partition: number; token: string }>(
        `UPDATE ${this.#leases} SET owner = $1, token = token + 1, expires_at = clock_timestamp() + $2::interval
         WHERE partition IN (
           SELECT partition FROM ${this.#leases} WHERE expires_at <= clock_timestamp()
           ORDER BY partition LIMIT $3 FOR UPDATE SKIP LOCKED)
         AND expires_at <= clock_timestamp()
         RETURNING partition, token`,
        [this.owner, ttl, share - next.size],
      );
      for (const row of taken) next.set(row.partition, { partition: row.partition, token: String(row.token) });
    }
    this.held.clear();
    for (const [partition, lease] of next) this.held.set(partition, lease);
    this.validUntil = started + this.ttlMs;
    return [...next.keys()].sort((a, b) => a - b).slice(share);
  }

  /** Gives partitions back at once (their expiry set to the past), so another relay takes them. */
  async release(partitions: readonly number[]): Promise<void> {
    if (partitions.length === 0) return;
    for (const partition of partitions) this.held.delete(partition);
    await this.#pool.query(
      `UPDATE ${this.#leases} SET owner = NULL, expires_at = '-infinity' WHERE owner = $1 AND partition = ANY($2::int[])`,
      [this.owner, partitions],
    );
  }

  /** Releases every lease and removes this relay from the live list (graceful stop). */
  async releaseAll(): Promise<void> {
    this.held.clear();
    this.validUntil = 0;
    await this.#pool.query(`UPDATE ${this.#leases} SET owner = NULL, expires_at = '-infinity' WHERE owner = $1`, [
      this.owner,
    ]);
    await this.#pool.query(
      `DELETE FROM ${this.#relays} WHERE owner = $1 OR expires_at < clock_timestamp() - interval '1 hour'`,
      [this.owner],
    );
  }

  /** True while the held leases are surely still valid by the local clock. */
  get valid(): boolean {
    return performance.now() < this.validUntil;
  }
}
