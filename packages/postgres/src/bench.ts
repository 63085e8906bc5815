import { randomBytes } from 'node:crypto';
import { type BenchResult, createBus, type EventInput, silentLogger, startMeasurement } from '@wharf/core';
import pg from 'pg';
import { migrate } from './migrate.js';
import { createOutbox } from './outbox.js';
import type { Relay } from './relay.js';

/** Options of {@link benchOutbox}. */
export interface OutboxBenchOptions {
  /** PostgreSQL URL; a fresh schema is created there and dropped afterwards. */
  readonly postgresUrl: string;
  /** Broker URL the relays publish to. */
  readonly brokerUrl: string;
  /** Relays running (each with its own bus), sharing the partitions. */
  readonly relays: number;
  readonly events: number;
  /** Concurrent writer transactions. */
  readonly writers: number;
  /** Events appended per transaction. */
  readonly batch: number;
  /** Distinct partition keys, used round-robin. */
  readonly keys: number;
  /** Payload bytes per event (JSON string). */
  readonly size: number;
  /** Events per second the writers commit at most; 0 = as fast as they can. */
  readonly rate: number;
  /** Deletes what the run declared on the broker (the adapter's conformance harness cleanup). */
  readonly cleanup?: (channel: string, groups: readonly string[]) => Promise<void>;
}

const GROUP = 'bench';

/**
 * Measures the outbox from commit to broker confirm: writers append and commit, the relays publish;
 * writers append a batch per transaction with `appendMany`; each event's latency runs from just before its transaction's COMMIT to the confirm of its publish.
 * Throughput is events over the time from the first commit to the last confirm.
 */
export async function benchOutbox(options: OutboxBenchOptions): Promise<BenchResult> {
  const schema = `wharf_bench_${randomBytes(4).toString('hex')}`;
  const channel = `bench-outbox-${randomBytes(4).toString('hex')}`;
  const pool = new pg.Pool({ connectionString: options.postgresUrl, max: options.writers + 6 * options.relays });
  pool.on('error', () => undefined);
  const buses = Array.from({ length: options.relays }, () =>
    createBus({ url: options.brokerUrl, logger: silentLogger }),
  );
  const relays: Relay[] = [];
  try {
    await migrate(pool, { schema });
    // A declared group keeps the events (and RabbitMQ does not refuse them as unroutable).
    await buses[0]?.declare(channel, { groups: [GROUP] });
    const outbox = createOutbox(pool, { schema });
    const committedAt = new Map<string, number>();
    const measure = { current: undefined as ReturnType<typeof startMeasurement> | undefined };
    let confirmed = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    for (const bus of buses) {
      const timed = {
        async publish<T>(target: string, input: EventInput<T>): Promise<void> {
          await bus.publish(target, input);
          const at = input.id === undefined ? undefined : committedAt.get(input.id);
          // A republish after a lease change counts once.
          if (at === undefined || input.id === undefined) return;
          committedAt.delete(input.id);
          measure.current?.record(performance.now() - at);
          if (++confirmed === options.events) done();
        },
      };
      relays.push(outbox.startRelay(timed, { leaseTtlMs: 5_000, logger: silentLogger }));
    }
    await buses[0]?.connect();
    // Wait for the partitions to be shared out, so two relays are measured as two.
    const deadline = Date.now() + 20_000;
    while (relays.some((r) => r.stats().partitions.length !== Math.ceil(outbox.partitions / relays.length))) {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const payload = 'x'.repeat(options.size);
    let next = 0;
    // Each writer has keys of its own: two transactions locking shared keys in different orders
    // would deadlock (PostgreSQL aborts one), as with row locks.
    const keysPerWriter = Math.max(1, Math.floor(options.keys / options.writers));
    measure.current = startMeasurement(options.events);
    const started = performance.now();
    const writer = async (_: unknown, w: number): Promise<void> => {
      let key = 0;
      const client = await pool.connect();
      try {
        while (next < options.events) {
          const count = Math.min(options.batch, options.events - next);
          const first = next;
          next += count;
          if (options.rate > 0) {
            const due = started + (first / options.rate) * 1000;
            const wait = due - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
          await client.query('BEGIN');
          const inputs: EventInput<string>[] = [];
          for (let i = 0; i < count; i++) {
            inputs.push({ type: 'BenchEvent', partitionkey: `w${w}-k${key++ % keysPerWriter}`, data: payload });
          }
          const ids = (await outbox.appendMany(client, channel, inputs)).map((event) => event.id);
          const now = performance.now();
          for (const id of ids) committedAt.set(id, now);
          await client.query('COMMIT');
          outbox.nudge();
        }
      } finally {
        client.release();
      }
    };
    await Promise.all(Array.from({ length: options.writers }, writer));
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`only ${confirmed} of ${options.events} events confirmed within 120 s`)),
        120_000,
      ).unref(),
    );
    await Promise.race([finished, timeout]);
    return measure.current.finish();
  } finally {
    await Promise.all(relays.map((r) => r.stop()));
    await Promise.all(buses.map((b) => b.close()));
    await options.cleanup?.(channel, [GROUP]).catch(() => undefined);
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await pool.end();
  }
}
