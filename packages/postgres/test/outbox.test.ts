import { randomBytes } from 'node:crypto';
import type { CloudEvent } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import { createOutbox } from '../src/index.js';
import { recordingBus, sleep, testScope, until } from './harness.js';

const FAST = { leaseTtlMs: 1_500, pollIntervalMs: 250 } as const;

describe('postgres: outbox and relay (memory broker)', () => {
  const { cleanups, setup, track, channel } = testScope('pgt');
  const seqOf = (e: CloudEvent) => (e.data as { seq: number }).seq;

  it('publishes a committed event and nothing of a rolled-back transaction', async () => {
    const db = await setup('rollback');
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    await expect(
      outbox.transaction(async (client) => {
        await outbox.append(client, ch, { type: 'Lost', data: { n: 1 } });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    const kept = await outbox.transaction((client) => outbox.append(client, ch, { type: 'Kept', data: { n: 2 } }));
    track(outbox.startRelay(bus, FAST));
    await until(() => received.length >= 1, 10_000, 'the committed event');
    await sleep(300);
    expect(received.map((e) => e.type)).toEqual(['Kept']);
    expect(received[0]?.id).toBe(kept.id);
    expect(received[0]?.data).toEqual({ n: 2 });
    await until(async () => (await outbox.stats()).unsent === 0, 5_000, 'the sent row to be deleted');
  });

  it('keeps every CloudEvents attribute and payloads larger than 8 KB (JSON and binary)', async () => {
    const db = await setup('attrs');
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema, source: 'urn:test:shop' });
    const big = 'x'.repeat(100_000);
    const bytes = randomBytes(20_000);
    await outbox.transaction(async (client) => {
      await outbox.append(client, ch, {
        type: 'Big',
        subject: 'order/1',
        partitionkey: 'o-1',
        correlationid: 'c-1',
        extensions: { tenant: 'acme' },
        data: { big },
      });
      await outbox.append(client, ch, { type: 'Bin', partitionkey: 'o-1', data: new Uint8Array(bytes) });
      await outbox.append(client, ch, { type: 'Empty', partitionkey: 'o-1' });
    });
    track(outbox.startRelay(bus, FAST));
    await until(() => received.length >= 3, 10_000, 'three events');
    const [first, second, third] = received;
    expect(first).toMatchObject({
      type: 'Big',
      source: 'urn:test:shop',
      subject: 'order/1',
      partitionkey: 'o-1',
      correlationid: 'c-1',
      tenant: 'acme',
      data: { big },
    });
    expect(Buffer.from(second?.data as Uint8Array).equals(bytes)).toBe(true);
    expect(second?.datacontenttype).toBe('application/octet-stream');
    expect(third?.type).toBe('Empty');
    expect(third?.data).toBeUndefined();
  });

  it('rejects a second event with the same source and id', async () => {
    const db = await setup('uniq');
    const outbox = createOutbox(db.pool, { schema: db.schema });
    await outbox.transaction((client) => outbox.append(client, 'c', { type: 'A', id: 'same' }));
    await expect(outbox.transaction((client) => outbox.append(client, 'c', { type: 'A', id: 'same' }))).rejects.toThrow(
      /outbox_source_id/,
    );
  });

  it('out-of-order commits: a later id committed first is published, the earlier one after its commit', async () => {
    const db = await setup('ooo');
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    track(outbox.startRelay(bus, FAST));
    // T1 takes the lower id and stays open; T2 (another key) takes a higher id and commits.
    const t1 = await db.pool.connect();
    await t1.query('BEGIN');
    await outbox.append(t1, ch, { type: 'T1', partitionkey: 'a', data: { seq: 1 } });
    await outbox.transaction((client) =>
      outbox.append(client, ch, { type: 'T2', partitionkey: 'b', data: { seq: 2 } }),
    );
    await until(() => received.length >= 1, 10_000, 'T2');
    expect(received.map((e) => e.type)).toEqual(['T2']);
    // The relay polled past T1's id; a relay tracking "last id seen" would now skip it.
    await sleep(600);
    await t1.query('COMMIT');
    t1.release();
    outbox.nudge();
    await until(() => received.length >= 2, 10_000, 'T1 after its commit');
    expect(received.map((e) => e.type)).toEqual(['T2', 'T1']);
  });

  it('out-of-order commits of one key: the second append waits for the first commit, order is kept', async () => {
    const db = await setup('ooo_key');
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    track(outbox.startRelay(bus, FAST));
    const t1 = await db.pool.connect();
    await t1.query('BEGIN');
    await outbox.append(t1, ch, { type: 'K', partitionkey: 'k', data: { seq: 1 } });
    let t2Done = false;
    const t2 = outbox
      .transaction((client) => outbox.append(client, ch, { type: 'K', partitionkey: 'k', data: { seq: 2 } }))
      .then(() => {
        t2Done = true;
      });
    await sleep(500);
    // T2 is blocked on the key's advisory lock, so it cannot take an id or commit before T1.
    expect(t2Done).toBe(false);
    expect(received).toEqual([]);
    await t1.query('COMMIT');
    t1.release();
    await t2;
    outbox.nudge();
    await until(() => received.length >= 2, 10_000, 'both events');
    expect(received.map(seqOf)).toEqual([1, 2]);
  });

  it('random concurrent writers: every event arrives once and each key keeps its commit order', async () => {
    const db = await setup('writers', 20);
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema, partitions: 8 });
    track(outbox.startRelay(bus, { ...FAST, concurrency: 16 }));
    const WRITERS = 8;
    const PER_WRITER = 60;
    const KEYS = 6;
    /** Per key, the seq values in commit order (a writer records its commit before the next append of that key can run). */
    const committed = new Map<string, number[]>();
    let seq = 0;
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        for (let i = 0; i < PER_WRITER; i++) {
          const key = `k${(w * 7 + i * 3) % KEYS}`;
          const mine = ++seq;
          await outbox.transaction(async (client) => {
            await outbox.append(client, ch, { type: 'W', partitionkey: key, data: { seq: mine, key } });
            // Random work inside the transaction, so commits interleave with other writers' appends.
            if (Math.random() < 0.5) await sleep(Math.floor(Math.random() * 4));
            // Still holding the key's lock: no other append of this key can commit before this one.
            const list = committed.get(key) ?? [];
            list.push(mine);
            committed.set(key, list);
          });
        }
      }),
    );
    await until(() => received.length >= WRITERS * PER_WRITER, 30_000, 'every event');
    await sleep(300);
    expect(received.length).toBe(WRITERS * PER_WRITER);
    expect(new Set(received.map((e) => e.id)).size).toBe(WRITERS * PER_WRITER);
    for (const [key, order] of committed) {
      const got = received.filter((e) => e.partitionkey === key).map(seqOf);
      expect(got, `key ${key}`).toEqual(order);
    }
  });

  it('pg_notify wakes a listening relay on commit, with no same-process nudge', async () => {
    const db = await setup('notify');
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const relay = track(
      createOutbox(db.pool, { schema: db.schema }).startRelay(bus, { ...FAST, pollIntervalMs: 1_000, listen: true }),
    );
    await until(() => relay.stats().partitions.length > 0, 10_000, 'the leases');
    await sleep(200);
    // A plain transaction, not outbox.transaction: nothing in this process nudges the relay.
    const writer = createOutbox(db.pool, { schema: db.schema, notify: true });
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await writer.append(client, ch, { type: 'Notified', data: { seq: 1 } });
      await sleep(100);
      // NOTIFY is transactional: nothing is sent before the commit.
      expect(relay.stats().notifications).toBe(0);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await until(() => received.length === 1, 10_000, 'the notified event');
    expect(relay.stats().notifications).toBe(1);
  });

  it('appendMany writes several events in one statement, in order, with every attribute', async () => {
    const db = await setup('many');
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    const bytes = randomBytes(9_000);
    const appended = await outbox.transaction((client) =>
      outbox.appendMany<unknown>(client, ch, [
        { type: 'A', partitionkey: 'k1', data: { seq: 1 }, extensions: { tenant: 'acme' } },
        { type: 'B', partitionkey: 'k2', data: new Uint8Array(bytes) },
        { type: 'C', partitionkey: 'k1', data: { seq: 3 }, subject: 's' },
      ]),
    );
    track(outbox.startRelay(bus, FAST));
    await until(() => received.length >= 3, 10_000, 'three events');
    await until(async () => (await outbox.stats()).unsent === 0, 5_000, 'the rows deleted');
    expect(received.filter((e) => e.partitionkey === 'k1').map((e) => e.type)).toEqual(['A', 'C']);
    expect(received.find((e) => e.type === 'A')).toMatchObject({
      tenant: 'acme',
      data: { seq: 1 },
      id: appended[0]?.id,
    });
    expect(received.find((e) => e.type === 'C')).toMatchObject({ subject: 's' });
    expect(Buffer.from(received.find((e) => e.type === 'B')?.data as Uint8Array).equals(bytes)).toBe(true);
  });

  it('appendMany takes ids in the given order and keeps per-key order against a concurrent append', async () => {
    const db = await setup('many_order');
    const outbox = createOutbox(db.pool, { schema: db.schema });
    const t1 = await db.pool.connect();
    await t1.query('BEGIN');
    await outbox.append(t1, 'c', { type: 'First', partitionkey: 'k' });
    let batchDone = false;
    const batch = outbox
      .transaction((client) =>
        outbox.appendMany(client, 'c', [
          { type: 'Second', partitionkey: 'other' },
          { type: 'Third', partitionkey: 'k' },
        ]),
      )
      .then(() => {
        batchDone = true;
      });
    await sleep(300);
    // The batch waits for key k's lock before any of its rows takes an id.
    expect(batchDone).toBe(false);
    await t1.query('COMMIT');
    t1.release();
    await batch;
    const { rows } = await db.pool.query(`SELECT type FROM "${db.schema}".outbox ORDER BY id`);
    expect(rows.map((r) => r.type)).toEqual(['First', 'Second', 'Third']);
  });
});
