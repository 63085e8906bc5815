import { randomBytes } from 'node:crypto';
import { createBus, silentLogger } from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createInbox, createOutbox } from '../src/index.js';
import { recordingBus, sleep, type TestDb, testDb, until } from './harness.js';

describe('postgres: inbox', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  async function setup(label: string): Promise<TestDb> {
    const db = await testDb(label);
    cleanups.push(() => db.drop());
    await db.pool.query(`CREATE TABLE "${db.schema}".effects (event_id text, note text)`);
    return db;
  }
  const effects = async (db: TestDb) =>
    Number((await db.pool.query(`SELECT count(*) AS n FROM "${db.schema}".effects`)).rows[0].n);
  const event = () => ({ source: 'urn:test', id: randomBytes(6).toString('hex') });

  it('runs the handler once per event and group; a duplicate (a redelivery after a lost ack) does nothing', async () => {
    const db = await setup('dup');
    const inbox = createInbox(db.pool, { schema: db.schema });
    const e = event();
    const apply = (client: import('pg').PoolClient) =>
      client.query(`INSERT INTO "${db.schema}".effects VALUES ($1, 'x')`, [e.id]).then(() => 'done');
    expect(await inbox.handle(e, 'billing', apply)).toEqual({ duplicate: false, result: 'done' });
    // The ack was lost: the broker redelivers; the inbox recognises it and the consumer acks.
    expect(await inbox.handle(e, 'billing', apply)).toEqual({ duplicate: true });
    // Another group has its own record.
    expect(await inbox.handle(e, 'audit', apply)).toEqual({ duplicate: false, result: 'done' });
    expect(await effects(db)).toBe(2);
  });

  it('a concurrent duplicate waits for the first transaction and then does nothing', async () => {
    const db = await setup('conc');
    const inbox = createInbox(db.pool, { schema: db.schema });
    const e = event();
    let runs = 0;
    const slow = async (client: import('pg').PoolClient) => {
      runs++;
      await client.query(`INSERT INTO "${db.schema}".effects VALUES ($1, 'x')`, [e.id]);
      await sleep(300);
    };
    const outcomes = await Promise.all([inbox.handle(e, 'g', slow), inbox.handle(e, 'g', slow)]);
    expect(outcomes.map((o) => o.duplicate).sort()).toEqual([false, true]);
    expect(runs).toBe(1);
    expect(await effects(db)).toBe(1);
  });

  it('a failing handler leaves no row, no effect and publishes nothing; the retry runs it', async () => {
    const db = await setup('fail');
    const ch = `pgi-${randomBytes(3).toString('hex')}`;
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    const inbox = createInbox(db.pool, { schema: db.schema, afterCommit: () => outbox.nudge() });
    const relay = outbox.startRelay(bus, { pollIntervalMs: 1_000, logger: silentLogger });
    cleanups.push(() => relay.stop());
    const e = event();
    let attempt = 0;
    const work = async (client: import('pg').PoolClient) => {
      attempt++;
      await client.query(`INSERT INTO "${db.schema}".effects VALUES ($1, 'x')`, [e.id]);
      await outbox.append(client, ch, { type: 'Emitted', data: { attempt } });
      if (attempt === 1) throw new Error('gateway down');
    };
    await expect(inbox.handle(e, 'g', work)).rejects.toThrow('gateway down');
    expect(await effects(db)).toBe(0);
    expect(await inbox.has('g', `${e.source}\u0000${e.id}`)).toBe(false);
    await sleep(1_200);
    expect(received).toEqual([]);
    expect(await inbox.handle(e, 'g', work)).toEqual({ duplicate: false, result: undefined });
    await until(() => received.length === 1, 5_000, 'the event of the successful attempt');
    expect(received[0]?.data).toEqual({ attempt: 2 });
    expect(await effects(db)).toBe(1);
  });

  it("is the bus's DedupStore: a republished event is handled once", async () => {
    const db = await setup('store');
    const inbox = createInbox(db.pool, { schema: db.schema });
    const bus = createBus({ url: 'memory://', logger: silentLogger, dedup: inbox });
    cleanups.push(() => bus.close());
    const ch = `pgd-${randomBytes(3).toString('hex')}`;
    const seen: string[] = [];
    await bus.subscribe(ch, { group: 'g' }, async (e) => {
      seen.push(e.id);
    });
    await bus.publish(ch, { type: 'A', id: 'one', source: 'urn:s' });
    await bus.publish(ch, { type: 'A', id: 'one', source: 'urn:s' });
    await bus.publish(ch, { type: 'A', id: 'two', source: 'urn:s' });
    await until(() => seen.length >= 2, 5_000, 'two events');
    await sleep(200);
    expect(seen).toEqual(['one', 'two']);
    expect(await inbox.has('g', 'urn:s\u0000one')).toBe(true);
  });

  it('cleanup deletes rows past the retention in batches and keeps the rest', async () => {
    const db = await setup('retention');
    const inbox = createInbox(db.pool, { schema: db.schema, retentionMs: 60_000 });
    await db.pool.query(
      `INSERT INTO "${db.schema}".inbox (group_name, event_key, processed_at)
       SELECT 'g', 'old-' || i, clock_timestamp() - interval '2 minutes' FROM generate_series(1, 250) i`,
    );
    await inbox.add('g', 'urn:s\u0000fresh');
    expect(await inbox.has('g', 'urn:s\u0000fresh')).toBe(true);
    expect(await inbox.cleanup({ batchSize: 40 })).toBe(250);
    const { rows } = await db.pool.query(`SELECT event_key FROM "${db.schema}".inbox`);
    expect(rows.map((r) => r.event_key)).toEqual([JSON.stringify(['urn:s', 'fresh'])]);
  });
});
