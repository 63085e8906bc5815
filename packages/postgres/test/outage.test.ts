import { randomBytes } from 'node:crypto';
import { startProxy } from '@wharf/chaos';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { conformanceHarness } from '@wharf/rabbitmq';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createOutbox, migrate } from '../src/index.js';
import { PG_URL, recordingBus, sleep, uniqueSchema, until } from './harness.js';

const AMQP_URL = process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const rabbitDown = await probeBroker('RabbitMQ', '127.0.0.1', 5672);

describe('postgres: outages', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("the relay's connections are killed: appends in flight fail whole, the relay backs off and resumes", async () => {
    const schema = uniqueSchema('dbdown');
    const app = `wharf-test-${randomBytes(4).toString('hex')}`;
    // The relay's own pool, named so the test can kill exactly its connections.
    const relayPool = new pg.Pool({ connectionString: PG_URL, application_name: app, max: 4 });
    relayPool.on('error', () => undefined);
    const writerPool = new pg.Pool({ connectionString: PG_URL, application_name: `${app}-w`, max: 4 });
    writerPool.on('error', () => undefined);
    const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
    cleanups.push(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await Promise.all([admin.end(), writerPool.end(), relayPool.end()]);
    });
    await migrate(writerPool, { schema });
    const ch = `pgo-${randomBytes(3).toString('hex')}`;
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const writer = createOutbox(writerPool, { schema });
    const relay = createOutbox(relayPool, { schema }).startRelay(bus, {
      leaseTtlMs: 3_000,
      pollIntervalMs: 250,
      logger: silentLogger,
    });
    cleanups.push(() => relay.stop());
    await writer.transaction((client) => writer.append(client, ch, { type: 'Before', partitionkey: 'k' }));
    await until(() => received.length === 1, 10_000, 'the first event');
    await until(async () => (await writer.stats()).unsent === 0, 5_000, 'its row deleted');

    // A writer's connection dies mid-transaction: nothing of it is kept.
    const open = await writerPool.connect();
    await open.query('BEGIN');
    await writer.append(open, ch, { type: 'Lost', partitionkey: 'k' });
    const kill = (name: string) =>
      admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
    open.on('error', () => undefined);
    await kill(`${app}-w`);
    await expect(open.query('COMMIT')).rejects.toThrow();
    open.release(true);
    // The relay's connections die too (a database restart looks the same to it).
    await kill(app);
    await writer.transaction((client) => writer.append(client, ch, { type: 'After', partitionkey: 'k' }));
    await until(() => received.length === 2, 15_000, 'the event after the outage');
    await sleep(300);
    expect(received.map((e) => e.type)).toEqual(['Before', 'After']);
    await until(async () => (await writer.stats()).unsent === 0, 5_000, 'the rows deleted');
  });

  it('database down for the relay (a proxy resets every connection): appends through it fail whole, the relay backs off and drains in order after', async () => {
    const schema = uniqueSchema('proxy');
    const direct = new pg.Pool({ connectionString: PG_URL, max: 4 });
    const proxy = await startProxy({ target: Number(new URL(PG_URL).port || 5432) });
    const viaProxy = `postgres://postgres@127.0.0.1:${proxy.port}/${new URL(PG_URL).pathname.slice(1)}`;
    const relayPool = new pg.Pool({ connectionString: viaProxy, max: 4, connectionTimeoutMillis: 2_000 });
    relayPool.on('error', () => undefined);
    const writerPool = new pg.Pool({ connectionString: viaProxy, max: 2, connectionTimeoutMillis: 2_000 });
    writerPool.on('error', () => undefined);
    cleanups.push(async () => {
      proxy.heal();
      await direct.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await Promise.all([direct.end(), relayPool.end(), writerPool.end()]);
      await proxy.close();
    });
    await migrate(direct, { schema });
    const ch = `pgp-${randomBytes(3).toString('hex')}`;
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const writer = createOutbox(direct, { schema });
    const relay = createOutbox(relayPool, { schema }).startRelay(bus, {
      leaseTtlMs: 30_000,
      pollIntervalMs: 250,
      logger: silentLogger,
    });
    cleanups.push(() => relay.stop());
    await writer.transaction((client) => writer.append(client, ch, { type: 'E', partitionkey: 'k', data: { seq: 0 } }));
    await until(() => received.length === 1, 10_000, 'the first event');
    await until(async () => (await writer.stats()).unsent === 0, 5_000, 'its row deleted');

    proxy.set({ kind: 'reset' });
    // A writer behind the same outage: its transaction fails and leaves nothing.
    const proxied = createOutbox(writerPool, { schema });
    await expect(
      proxied.transaction((client) => proxied.append(client, ch, { type: 'Lost', partitionkey: 'k' })),
    ).rejects.toThrow();
    for (let seq = 1; seq <= 10; seq++) {
      await writer.transaction((client) => writer.append(client, ch, { type: 'E', partitionkey: 'k', data: { seq } }));
    }
    await until(() => relay.stats().databaseErrors >= 2, 15_000, 'failed relay rounds');
    expect(received.length).toBe(1);
    expect((await writer.stats()).unsent).toBe(10);

    proxy.heal();
    await until(() => received.length === 11, 20_000, 'the backlog after the outage');
    expect(received.map((e) => (e.data as { seq: number }).seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(received.some((e) => e.type === 'Lost')).toBe(false);
    await until(async () => (await writer.stats()).unsent === 0, 5_000, 'the rows deleted');
  });

  describe('RabbitMQ', () => {
    if (rabbitDown) {
      if (brokersRequired()) {
        it('broker is reachable', () => {
          throw new Error(`${rabbitDown} — CI requires RabbitMQ`);
        });
      } else process.stdout.write(`[wharf] postgres RabbitMQ outage test skipped: ${rabbitDown}\n`);
      return;
    }
    it('an unroutable event (no queue bound) is not marked sent; it goes once a group is declared', async () => {
      const schema = uniqueSchema('unroutable');
      const pool = new pg.Pool({ connectionString: PG_URL, max: 6 });
      cleanups.push(async () => {
        await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await pool.end();
      });
      await migrate(pool, { schema });
      const ch = `pgu-${randomBytes(3).toString('hex')}`;
      const bus = createBus({ url: AMQP_URL, logger: silentLogger });
      // Cleanups run last-in first-out: the bus closes before its topology is deleted, else its live
      // consumer, cancelled by the delete, declared the group again and left `…/g/dlq` behind.
      cleanups.push(() => conformanceHarness(AMQP_URL).cleanup(ch, ['g'], [5_000, 30_000]));
      cleanups.push(() => bus.close());
      const outbox = createOutbox(pool, { schema });
      await outbox.transaction((client) =>
        outbox.append(client, ch, { type: 'Nobody', partitionkey: 'k', data: { n: 1 } }),
      );
      const relay = outbox.startRelay(bus, {
        pollIntervalMs: 250,
        backoff: { initialMs: 100, maxMs: 200 },
        logger: silentLogger,
      });
      cleanups.push(() => relay.stop());
      await until(
        async () => (await pool.query(`SELECT attempts FROM "${schema}".outbox`)).rows[0]?.attempts >= 1,
        15_000,
        'a failed attempt',
      );
      const { rows } = await pool.query(`SELECT last_error, parked_at FROM "${schema}".outbox`);
      expect(rows[0].last_error).toMatch(/no group is declared/);
      expect(rows[0].parked_at).toBeNull();
      expect(relay.stats().published).toBe(0);
      const received: unknown[] = [];
      await bus.subscribe(ch, { group: 'g' }, async (event) => {
        received.push(event.data);
      });
      await until(() => received.length === 1, 15_000, 'the event once a queue is bound');
      expect(received).toEqual([{ n: 1 }]);
      await until(async () => (await outbox.stats()).unsent === 0, 5_000, 'the row deleted');
    });
  });
});
