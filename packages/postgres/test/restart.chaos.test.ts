import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { type CloudEvent, createBus, type EventInput, type Logger, NonRetryableError, silentLogger } from '@wharf/core';
import { conformanceHarness as natsHarness } from '@wharf/nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CdcRelay, createOutbox, migrate, PostgresUnavailableError, type PublishingBus } from '../src/index.js';
import { LOCK_KEY } from '../src/options.js';
import { PG_URL, recordingBus, sleep, testDb, uniqueSchema, until } from './harness.js';
import { cluster, ensurePostgresRunning, restartPostgres, startPostgres, stopPostgres } from './pgctl.js';

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

// The CDC relay needs wal_level = logical, which only a restart changes: these tests set it, restart,
// and put it back (then restart again) even when they fail. A logical slot left behind would keep
// WAL forever and would stop PostgreSQL from starting with wal_level below logical, so every slot
// and publication a test made is dropped before wal_level goes back.
const NATS_URL = process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222';
const natsUnavailable = await probeBroker('NATS', '127.0.0.1', 4222);

async function adminQuery<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function walLevel(): Promise<string> {
  return (await adminQuery<{ wal_level: string }>('SHOW wal_level'))[0]?.wal_level ?? '';
}

/** Drops slots (ending the walsenders that hold them) and publications; tolerates their absence. */
async function dropReplication(slots: readonly string[], publications: readonly string[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (const slot of slots) {
    for (;;) {
      try {
        await adminQuery(
          'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
          [slot],
        );
        await adminQuery('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
          slot,
        ]);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(100);
      }
    }
  }
  for (const publication of publications) await adminQuery(`DROP PUBLICATION IF EXISTS "${publication}"`);
}

/**
 * Runs `work` with wal_level = logical, then drops the slots and publications it names and puts
 * wal_level back as it was in postgresql.auto.conf (RESET when it was not set there), restarting
 * PostgreSQL both times.
 */
async function withLogicalWal(
  replication: { slots: string[]; publications: string[] },
  work: () => Promise<void>,
): Promise<void> {
  const auto = await adminQuery<{ setting: string }>(
    "SELECT setting FROM pg_file_settings WHERE name = 'wal_level' AND sourcefile LIKE '%postgresql.auto.conf'",
  );
  const before = await walLevel();
  try {
    await adminQuery('ALTER SYSTEM SET wal_level = logical');
    await restartPostgres();
    expect(await walLevel()).toBe('logical');
    await work();
  } finally {
    await ensurePostgresRunning();
    try {
      await dropReplication(replication.slots, replication.publications);
    } finally {
      const previous = auto[0]?.setting;
      await adminQuery(
        previous === undefined ? 'ALTER SYSTEM RESET wal_level' : `ALTER SYSTEM SET wal_level = '${previous}'`,
      );
      await restartPostgres();
    }
    expect(await walLevel()).toBe(before);
  }
}

function cdcChild(schema: string, slot: string): { proc: ChildProcess; waitFor: (prefix: string) => Promise<string> } {
  const script = fileURLToPath(new URL('./fixtures/cdc-relay-child.ts', import.meta.url));
  const proc = spawn(
    process.execPath,
    ['--conditions=wharf-source', '--import', 'tsx', script, PG_URL, schema, NATS_URL, slot],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: string[] = [];
  let buffer = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  const waitFor = async (prefix: string): Promise<string> => {
    await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`CDC relay child exited (${proc.exitCode}) before "${prefix}"`);
        return lines.some((l) => l.startsWith(prefix));
      },
      30_000,
      `the CDC relay child to print "${prefix}"`,
    );
    return (lines.find((l) => l.startsWith(prefix)) ?? '').slice(prefix.length).trim();
  };
  return { proc, waitFor };
}

/** A logger that keeps the warnings, to check what the relay said. */
function warnings(): { logger: Logger; seen: string[] } {
  const seen: string[] = [];
  const keep = (message: string): void => {
    seen.push(message);
  };
  return { logger: { ...silentLogger, warn: keep, error: keep }, seen };
}

describe('postgres: the CDC relay on the shared PostgreSQL (wal_level = logical set and reset)', () => {
  const startLevel: { value?: string } = {};
  beforeAll(async () => {
    if (typeof unusable !== 'string') startLevel.value = await walLevel().catch(() => undefined);
  });
  // A last resort if a test's own finally could not put wal_level back.
  afterAll(async () => {
    if (typeof unusable === 'string') return;
    await ensurePostgresRunning();
    if (startLevel.value !== undefined && (await walLevel()) !== startLevel.value) {
      await adminQuery('ALTER SYSTEM RESET wal_level');
      await restartPostgres();
    }
  });

  if (typeof unusable === 'string') {
    if (brokersRequired()) {
      it('the local PostgreSQL cluster can be restarted', () => {
        throw new Error(`${unusable} — CI requires it`);
      });
    } else process.stdout.write(`[wharf] postgres CDC tests skipped: ${unusable}\n`);
    return;
  }

  it('falls back to the polling relay, with a warning, when wal_level is not logical', async () => {
    expect(await walLevel()).not.toBe('logical');
    const db = await testDb('cdcfb');
    const ch = `pgcf-${randomBytes(3).toString('hex')}`;
    const { bus, received } = await recordingBus(ch);
    const slot = `wt_cdc_${randomBytes(4).toString('hex')}`;
    const { logger, seen } = warnings();
    const outbox = createOutbox(db.pool, { schema: db.schema });
    const relay = outbox.startRelay(bus, { mode: 'cdc', slot, pollIntervalMs: 250, logger });
    try {
      expect(await relay.ready).toBe('polling');
      expect(seen.join('\n')).toMatch(/falls back to the polling relay: wal_level is "\w+", not "logical"/);
      const event = await outbox.transaction((client) => outbox.append(client, ch, { type: 'E', partitionkey: 'k' }));
      await until(() => received.some((e) => e.id === event.id), 10_000, 'the event through the polling fallback');
      expect(relay.stats().mode).toBe('polling');
      await until(() => relay.stats().polling?.published === 1, 5_000, 'the polling fallback to delete the row');
      // No slot was made: nothing keeps WAL.
      expect(await adminQuery('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toEqual([]);
    } finally {
      await relay.stop();
      await bus.close();
      await db.drop();
    }
  });

  it('publishes each committed transaction once, in commit order per key, acknowledging its commit; a row that can never be published hands over to polling', async () => {
    const slot = `wt_cdc_${randomBytes(4).toString('hex')}`;
    const publication = `wt_cdcpub_${randomBytes(4).toString('hex')}`;
    await withLogicalWal({ slots: [slot], publications: [publication] }, async () => {
      const db = await testDb('cdc');
      const ch = `pgc-${randomBytes(3).toString('hex')}`;
      const { bus, received } = await recordingBus(ch);
      const poisoning: PublishingBus = {
        publish<T>(channel: string, input: EventInput<T>) {
          if (input.type === 'Poison') return Promise.reject(new NonRetryableError('this one can never go out'));
          return bus.publish(channel, input);
        },
      };
      const { logger, seen } = warnings();
      const outbox = createOutbox(db.pool, { schema: db.schema });
      let relay: CdcRelay | undefined;
      try {
        await db.pool.query(`CREATE SEQUENCE "${db.schema}".commit_order`);
        // Appended with the key's own lock held until commit (append takes the same lock again), so
        // for one key the sequence value follows commit order.
        const write = async (client: pg.PoolClient, key: string): Promise<CloudEvent> => {
          await client.query(`SELECT pg_advisory_xact_lock(${LOCK_KEY}, hashtext($1))`, [key]);
          const { rows } = await client.query<{ seq: string }>(
            `SELECT nextval('"${db.schema}".commit_order')::text AS seq`,
          );
          return outbox.append(client, ch, { type: 'E', partitionkey: key, data: { key, seq: Number(rows[0]?.seq) } });
        };
        // Rows committed before the slot exists: the relay's catch-up sends them.
        const early = await outbox.transaction(async (client) => [
          await write(client, 'k0'),
          await write(client, 'k1'),
        ]);

        relay = outbox.startRelay(poisoning, {
          mode: 'cdc',
          slot,
          publication,
          pollIntervalMs: 250,
          logger,
        });
        expect(await relay.ready).toBe('cdc');
        await until(() => early.every((e) => received.some((r) => r.id === e.id)), 10_000, 'the catch-up');

        // Four writers, random keys, several events per transaction.
        const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
        const committed: CloudEvent[] = [...early];
        await Promise.all(
          [0, 1, 2, 3].map(async (w) => {
            for (let t = 0; t < 12; t++) {
              const events = await outbox.transaction(async (client) => {
                const out: CloudEvent[] = [];
                // Keys in one order in every transaction, as append's doc asks: writers never deadlock.
                const picked = [0, 1, 2].map((i) => keys[(w * 7 + t * 3 + i * 5) % keys.length] ?? 'k0').sort();
                for (const key of picked) out.push(await write(client, key));
                return out;
              });
              committed.push(...events);
            }
          }),
        );
        await until(() => received.length >= committed.length, 20_000, 'every committed event');
        await until(async () => (await outbox.stats()).unsent === 0, 10_000, 'the outbox emptied');
        await sleep(300);
        // Once each: no duplicate on the happy path, nothing missing.
        expect(received.map((e) => e.id).sort()).toEqual(committed.map((e) => e.id).sort());
        for (const key of keys) {
          const seqs = received
            .filter((e) => (e.data as { key: string }).key === key)
            .map((e) => (e.data as { seq: number }).seq);
          expect(seqs, `key ${key}`).toEqual([...seqs].sort((a, b) => a - b));
        }
        const stats = relay.stats();
        expect(stats.mode).toBe('cdc');
        expect(stats.published).toBe(committed.length);
        // Every streamed row was read from the table: none counted as sent before (which a read racing
        // the writer's commit visibility would do, losing the row).
        expect(stats.alreadySent).toBe(0);
        expect(stats.transactions).toBeGreaterThanOrEqual(48);
        // The slot's confirmed position is the last published commit, exactly.
        const [slotRow] = await adminQuery<{ confirmed_flush_lsn: string; active: boolean }>(
          'SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        );
        expect(slotRow?.active).toBe(true);
        expect(
          await adminQuery('SELECT $1::pg_lsn = $2::pg_lsn AS same', [
            slotRow?.confirmed_flush_lsn,
            stats.confirmedLsn,
          ]),
        ).toEqual([{ same: true }]);

        // A row no retry can send: CDC ends, the slot is dropped, the polling relay parks the row
        // and goes on with the other keys.
        await outbox.transaction((client) => outbox.append(client, ch, { type: 'Poison', partitionkey: 'kp' }));
        await until(() => relay?.mode === 'polling', 10_000, 'the fallback to polling');
        expect(seen.join('\n')).toMatch(/falls back to the polling relay: an outbox row can never be published/);
        await until(async () => (await outbox.stats()).parked === 1, 10_000, 'the poison row parked');
        expect(await adminQuery('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toEqual([]);
        const after = await outbox.transaction((client) =>
          outbox.append(client, ch, { type: 'E', partitionkey: 'k9' }),
        );
        await until(() => received.some((e) => e.id === after.id), 10_000, 'an event after the fallback');
      } finally {
        await relay?.stop();
        await bus.close();
        await db.drop();
      }
    });
  });

  it('a slot invalidated by max_slot_wal_keep_size (wal_status lost) is dropped and the relay polls', async () => {
    const slot = `wt_cdcl_${randomBytes(4).toString('hex')}`;
    const publication = `wt_cdclpub_${randomBytes(4).toString('hex')}`;
    await withLogicalWal({ slots: [slot], publications: [publication] }, async () => {
      const db = await testDb('cdcl');
      const ch = `pgcl-${randomBytes(3).toString('hex')}`;
      const { bus, received } = await recordingBus(ch);
      const { logger, seen } = warnings();
      const keepSetting = await adminQuery<{ setting: string }>(
        "SELECT setting FROM pg_file_settings WHERE name = 'max_slot_wal_keep_size' AND sourcefile LIKE '%postgresql.auto.conf'",
      );
      const outbox = createOutbox(db.pool, { schema: db.schema });
      let relay: CdcRelay | undefined;
      try {
        // A slot nobody reads, a 1 MB cap, and more WAL than that: the next checkpoint invalidates it.
        await adminQuery("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
        await adminQuery("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
        await adminQuery('SELECT pg_reload_conf()');
        await db.pool.query(`CREATE TABLE "${db.schema}".filler (x text)`);
        await until(
          async () => {
            await db.pool.query(
              `INSERT INTO "${db.schema}".filler SELECT repeat('x', 1000) FROM generate_series(1, 3000)`,
            );
            await adminQuery('SELECT pg_switch_wal()');
            await adminQuery('CHECKPOINT');
            const [row] = await adminQuery<{ wal_status: string }>(
              'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
              [slot],
            );
            return row?.wal_status === 'lost';
          },
          30_000,
          'the slot to be invalidated',
        );
        const event = await outbox.transaction((client) => outbox.append(client, ch, { type: 'E', partitionkey: 'k' }));
        relay = outbox.startRelay(bus, { mode: 'cdc', slot, pollIntervalMs: 250, logger });
        expect(await relay.ready).toBe('polling');
        expect(seen.join('\n')).toMatch(
          /falls back to the polling relay: replication slot "wt_cdcl_\w+" was invalidated/,
        );
        await until(() => received.some((e) => e.id === event.id), 10_000, 'the event through the polling fallback');
        expect(await adminQuery('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toEqual([]);
      } finally {
        await relay?.stop();
        const previous = keepSetting[0]?.setting;
        await adminQuery(
          previous === undefined
            ? 'ALTER SYSTEM RESET max_slot_wal_keep_size'
            : `ALTER SYSTEM SET max_slot_wal_keep_size = '${previous}'`,
        );
        await adminQuery('SELECT pg_reload_conf()');
        await bus.close();
        await db.drop();
      }
    });
  });

  if (natsUnavailable && !brokersRequired()) {
    process.stdout.write(`[wharf] postgres CDC kill test skipped: ${natsUnavailable}\n`);
  }
  it.runIf(!natsUnavailable || brokersRequired())(
    'a relay killed (kill -9) after publishing, before acknowledging: the transaction comes again, nothing is lost',
    async () => {
      const slot = `wt_cdck_${randomBytes(4).toString('hex')}`;
      const db0 = uniqueSchema('cdck');
      const publication = `wharf_outbox_${db0}`;
      await withLogicalWal({ slots: [slot], publications: [publication] }, async () => {
        const pool = new pg.Pool({ connectionString: PG_URL, max: 6 });
        pool.on('error', () => undefined);
        await migrate(pool, { schema: db0 });
        const ch = `pgck-${randomBytes(3).toString('hex')}`;
        const bus = createBus({ url: NATS_URL, logger: silentLogger });
        const received: CloudEvent[] = [];
        await bus.subscribe(ch, { group: 'g', dedup: false }, async (event) => {
          received.push(event);
        });
        const republished: string[] = [];
        const recording: PublishingBus = {
          async publish<T>(channel: string, input: EventInput<T>) {
            const event = await bus.publish(channel, input);
            republished.push(event.id);
            return event;
          },
        };
        const outbox = createOutbox(pool, { schema: db0 });
        const relayChild = cdcChild(db0, slot);
        let survivor: CdcRelay | undefined;
        try {
          await relayChild.waitFor('streaming');
          const [{ lsn: before } = { lsn: '' }] = await adminQuery<{ lsn: string }>(
            'SELECT pg_current_wal_lsn()::text AS lsn',
          );
          const first = await outbox.transaction((client) =>
            outbox.append(client, ch, { type: 'OrderPlaced', partitionkey: 'o-1', data: { id: 'o-1' } }),
          );
          expect(await relayChild.waitFor('published ')).toBe(first.id);
          relayChild.proc.kill('SIGKILL');
          await until(() => received.length === 1, 10_000, 'the first delivery');
          // Confirmed by the broker, but neither deleted nor acknowledged.
          expect((await outbox.stats()).unsent).toBe(1);
          const [held] = await adminQuery<{ behind: boolean }>(
            'SELECT confirmed_flush_lsn <= $2::pg_lsn AS behind FROM pg_replication_slots WHERE slot_name = $1',
            [slot, before],
          );
          expect(held?.behind).toBe(true);

          // While no relay reads the slot, PostgreSQL keeps the WAL written since its restart_lsn.
          await pool.query(`CREATE TABLE "${db0}".filler (x text)`);
          await pool.query(`INSERT INTO "${db0}".filler SELECT repeat('x', 1000) FROM generate_series(1, 20000)`);
          const [kept] = await adminQuery<{ bytes: string; wal_status: string; keep: string }>(
            `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS bytes, wal_status,
                    current_setting('max_slot_wal_keep_size') AS keep
             FROM pg_replication_slots WHERE slot_name = $1`,
            [slot],
          );
          expect(Number(kept?.bytes)).toBeGreaterThan(20_000_000);
          expect(kept?.wal_status).not.toBe('lost');

          const { logger } = warnings();
          survivor = outbox.startRelay(recording, { mode: 'cdc', slot, heartbeatMs: 500, logger });
          expect(await survivor.ready).toBe('cdc');
          const second = await outbox.transaction((client) =>
            outbox.append(client, ch, { type: 'OrderPaid', partitionkey: 'o-1', data: { id: 'o-1' } }),
          );
          await until(() => received.some((e) => e.id === second.id), 15_000, 'an event after the takeover');
          await until(async () => (await outbox.stats()).unsent === 0, 10_000, 'the outbox emptied');
          // The survivor sent the first event again (the duplicate), then the slot gave it the
          // unacknowledged transaction again, whose row was already gone.
          expect(republished).toEqual([first.id, second.id]);
          expect(survivor.stats().alreadySent).toBe(1);
          expect(survivor.stats().transactions).toBeGreaterThanOrEqual(2);
          await sleep(300);
          // JetStream dropped the republished copy by its id; the order of the key held.
          expect(received.map((e) => e.id)).toEqual([first.id, second.id]);
          // Once the relay is back, its acknowledgements let the slot release that WAL: restart_lsn
          // moves at the next running-transactions record (a CHECKPOINT writes one) once a later
          // commit is acknowledged, here the relay's idle heartbeat message.
          await adminQuery('CHECKPOINT');
          const releasedAt = performance.now();
          const keptBytes = async (): Promise<number> =>
            Number(
              (
                await adminQuery<{ kept: string }>(
                  'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS kept FROM pg_replication_slots WHERE slot_name = $1',
                  [slot],
                )
              )[0]?.kept,
            );
          await until(async () => (await keptBytes()) < 1_000_000, 20_000, 'the slot to release the WAL');
          const after = { kept: String(await keptBytes()) };
          const releaseMs = performance.now() - releasedAt;
          process.stdout.write(
            `[wharf] CDC slot while its relay was down: ${(Number(kept?.bytes) / 1e6).toFixed(1)} MB of WAL kept ` +
              `(wal_status ${kept?.wal_status}, max_slot_wal_keep_size ${kept?.keep}); ` +
              `after the takeover, a CHECKPOINT and the relay's next acknowledgement (${Math.round(releaseMs)} ms): ${(Number(after.kept) / 1e6).toFixed(2)} MB\n`,
          );
        } finally {
          if (relayChild.proc.exitCode === null) relayChild.proc.kill('SIGKILL');
          await survivor?.stop();
          await bus.close();
          await natsHarness(NATS_URL)
            .cleanup(ch)
            .catch(() => undefined);
          await pool.query(`DROP SCHEMA IF EXISTS "${db0}" CASCADE`).catch(() => undefined);
          await pool.end();
        }
      });
    },
  );
});
