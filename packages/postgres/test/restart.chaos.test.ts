import { randomBytes } from 'node:crypto';
import { brokersRequired } from '@wharf/conformance';
import { type CloudEvent, type EventInput, silentLogger } from '@wharf/core';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createOutbox, migrate, PostgresUnavailableError, type PublishingBus } from '../src/index.js';
import { PG_URL, recordingBus, sleep, uniqueSchema, until } from './harness.js';
import { cluster, ensurePostgresRunning, startPostgres, stopPostgres } from './pgctl.js';

// These tests stop and start the machine's shared PostgreSQL. They live in the `chaos` project,
// which vitest runs after every other project, and in this one file, whose tests run one after
// another, so no other PostgreSQL test runs while the database is down. Each one leaves PostgreSQL
// running, also when it fails (finally, and afterAll as a last resort).
const unusable = cluster();

describe('postgres: the shared PostgreSQL stops and starts again', () => {
  afterAll(ensurePostgresRunning);

  if (typeof unusable === 'string') {
    if (brokersRequired()) {
      it('the local PostgreSQL cluster can be restarted', () => {
        throw new Error(`${unusable} — CI requires it`);
      });
    } else process.stdout.write(`[wharf] postgres restart tests skipped: ${unusable}\n`);
    return;
  }

  it('appends fail whole with PostgresUnavailableError; the relay backs off, then delivers every committed event in order', async () => {
    const schema = uniqueSchema('restart');
    const ch = `pgr-${randomBytes(3).toString('hex')}`;
    // connectionTimeoutMillis: a writer facing a stopped database fails fast instead of hanging.
    const writerPool = new pg.Pool({ connectionString: PG_URL, max: 4, connectionTimeoutMillis: 2_000 });
    const relayPool = new pg.Pool({ connectionString: PG_URL, max: 4, connectionTimeoutMillis: 2_000 });
    for (const pool of [writerPool, relayPool]) pool.on('error', () => undefined);
    const { bus, received } = await recordingBus(ch);
    const arrivals: { id: string; at: number }[] = [];
    // The relay's broker, with a gate the test closes so the relay is caught mid-round by the stop.
    let gate: Promise<void> | undefined;
    let publishing = 0;
    const gated: PublishingBus = {
      async publish<T>(channel: string, input: EventInput<T>) {
        publishing++;
        await gate;
        const event = await bus.publish(channel, input);
        arrivals.push({ id: event.id, at: performance.now() });
        return event;
      },
    };
    let relay: ReturnType<ReturnType<typeof createOutbox>['startRelay']> | undefined;
    let open: () => void = () => {};
    try {
      await migrate(writerPool, { schema });
      const writer = createOutbox(writerPool, { schema });
      relay = createOutbox(relayPool, { schema }).startRelay(gated, {
        leaseTtlMs: 3_000,
        pollIntervalMs: 250,
        // Small rounds: most of the backlog is still unread in the table when the database stops.
        batchSize: 8,
        logger: silentLogger,
      });
      await writer.transaction((client) => writer.append(client, ch, { type: 'Warm', partitionkey: 'k0' }));
      await until(() => received.length === 1, 10_000, 'the first event');

      // A backlog the relay is in the middle of when the database stops.
      gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const committed: CloudEvent[] = [];
      for (let seq = 1; seq <= 10; seq++) {
        await writer.transaction(async (client) => {
          for (const key of ['k0', 'k1', 'k2', 'k3']) {
            committed.push(await writer.append(client, ch, { type: 'E', partitionkey: key, data: { key, seq } }));
          }
        });
      }
      await until(() => publishing > 1, 10_000, 'the relay publishing the backlog');

      // A transaction open across the stop: it must leave nothing behind.
      let stopped!: () => void;
      const down = new Promise<void>((resolve) => {
        stopped = resolve;
      });
      let appended!: () => void;
      const inside = new Promise<void>((resolve) => {
        appended = resolve;
      });
      const openTx = writer.transaction(async (client) => {
        await writer.append(client, ch, { type: 'Lost', partitionkey: 'k0' });
        appended();
        await down;
      });
      openTx.catch(() => undefined);
      await inside;

      const stopAt = performance.now();
      stopPostgres();
      stopped();
      const openError = await openTx.then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(openError).toBeInstanceOf(PostgresUnavailableError);
      expect((openError as Error).message).toMatch(/committing an outbox transaction .* PostgreSQL is unreachable/);

      // A new append fails at once, with a typed error that says what to do.
      const failStarted = performance.now();
      const appendError = await writer
        .transaction((client) => writer.append(client, ch, { type: 'Lost', partitionkey: 'k1' }))
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      const failMs = performance.now() - failStarted;
      expect(appendError).toBeInstanceOf(PostgresUnavailableError);
      expect((appendError as Error).message).toMatch(/is it running\? Nothing was committed/);

      // The relay publishes what it holds, cannot mark it sent, and backs off.
      open();
      gate = undefined;
      await until(
        () => relay!.stats().databaseErrors >= 3,
        30_000,
        'the relay failing rounds while the database is down',
      );
      const beforeRestart = new Set(received.map((e) => e.id));
      // Down longer than the lease TTL: the relay's leases lapse and must be taken again.
      await sleep(Math.max(0, 4_000 - (performance.now() - stopAt)));
      const downMs = performance.now() - stopAt;

      const backAt = await startPostgres();
      const errorsAtRestart = relay.stats().databaseErrors;
      const ids = committed.map((e) => e.id);
      await until(() => ids.every((id) => received.some((e) => e.id === id)), 60_000, 'every committed event');
      await until(async () => (await writer.stats()).unsent === 0, 30_000, 'the outbox drained');
      const drainedAt = performance.now();
      const firstNew = arrivals.find((a) => a.at > backAt && !beforeRestart.has(a.id));

      // Writers work again, and their events follow.
      const after = await writer.transaction((client) =>
        writer.append(client, ch, { type: 'After', partitionkey: 'k0', data: { key: 'k0', seq: 11 } }),
      );
      await until(() => received.some((e) => e.id === after.id), 10_000, 'an event appended after the restart');

      // Nothing lost, nothing of the failed transactions published, per-key order of first arrivals.
      expect(received.some((e) => e.type === 'Lost')).toBe(false);
      const seen = new Set<string>();
      const firstArrivals = received.filter((e) => !seen.has(e.id) && seen.add(e.id));
      for (const key of ['k0', 'k1', 'k2', 'k3']) {
        const seqs = firstArrivals
          .filter((e) => (e.data as { key?: string } | undefined)?.key === key)
          .map((e) => (e.data as { seq: number }).seq);
        expect(seqs).toEqual(key === 'k0' ? [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      }
      expect(errorsAtRestart).toBeGreaterThanOrEqual(3);
      const duplicates = received.length - seen.size;
      process.stdout.write(
        `[wharf] postgres down ${(downMs / 1000).toFixed(1)} s: appends failed in ${Math.round(failMs)} ms; ` +
          `${errorsAtRestart} relay rounds failed; after PostgreSQL answered again, the first unsent event ` +
          `arrived in ${firstNew ? Math.round(firstNew.at - backAt) : 'n/a'} ms and the backlog of ${ids.length} ` +
          `drained in ${Math.round(drainedAt - backAt)} ms (${duplicates} republished: published before the stop, not yet marked sent)\n`,
      );
    } finally {
      // A relay held at the gate would never finish its round, and stop() waits for it.
      open();
      gate = undefined;
      await ensurePostgresRunning();
      await relay?.stop();
      await bus.close();
      await writerPool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      await Promise.all([writerPool.end(), relayPool.end()]);
    }
  });
});
