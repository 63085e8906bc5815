import { type CloudEvent, createBus, silentLogger } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import { createOutbox } from '../src/index.js';
import { recordingBus, sleep, testScope, until } from './harness.js';

const FAST = { leaseTtlMs: 1_500, pollIntervalMs: 250, logger: silentLogger } as const;

describe('postgres: relay failures, parking and several relays', () => {
  const { cleanups, setup, track, channel } = testScope('pgr');
  const seqOf = (e: CloudEvent) => (e.data as { seq: number }).seq;

  it('parks a row larger than the broker limit, blocks its key, lets other keys go on', async () => {
    const db = await setup('park');
    const ch = channel();
    const { bus, received } = await recordingBus(ch, { adapterOptions: { maxMessageBytes: 4_096 } });
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    await outbox.transaction(async (client) => {
      await outbox.append(client, ch, { type: 'Ok', partitionkey: 'p', data: { seq: 1 } });
      await outbox.append(client, ch, { type: 'TooBig', partitionkey: 'p', data: { seq: 2, pad: 'x'.repeat(10_000) } });
      await outbox.append(client, ch, { type: 'Blocked', partitionkey: 'p', data: { seq: 3 } });
      await outbox.append(client, ch, { type: 'Other', partitionkey: 'q', data: { seq: 4 } });
    });
    const relay = track(outbox.startRelay(bus, FAST));
    await until(() => received.length >= 2, 10_000, 'the two publishable events');
    await until(async () => (await outbox.stats()).parked === 1, 5_000, 'the parked row');
    await sleep(500);
    expect(received.map(seqOf).sort()).toEqual([1, 4]);
    const stats = await outbox.stats();
    expect(stats).toMatchObject({ parked: 1, unsent: 1 });
    expect(stats.oldestUnsentAgeMs).toBeGreaterThan(0);
    expect(relay.stats().parked).toBe(1);
    const { rows } = await db.pool.query(
      `SELECT type, attempts, last_error FROM "${db.schema}".outbox WHERE parked_at IS NOT NULL`,
    );
    expect(rows[0]).toMatchObject({ type: 'TooBig', attempts: 1 });
    expect(rows[0].last_error).toMatch(/too large|limit/i);
  });

  it("dead-letter mode moves a poison row aside and the key's later events go on in order", async () => {
    const db = await setup('dlq');
    const ch = channel();
    const { bus, received } = await recordingBus(ch, { adapterOptions: { maxMessageBytes: 4_096 } });
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    await outbox.transaction(async (client) => {
      await outbox.append(client, ch, { type: 'A', partitionkey: 'p', data: { seq: 1 } });
      await outbox.append(client, ch, { type: 'Poison', partitionkey: 'p', data: { seq: 2, pad: 'x'.repeat(10_000) } });
      await outbox.append(client, ch, { type: 'B', partitionkey: 'p', data: { seq: 3 } });
    });
    track(outbox.startRelay(bus, { ...FAST, onPoison: 'dead-letter' }));
    await until(() => received.length >= 2, 10_000, 'the events around the poison one');
    expect(received.map(seqOf)).toEqual([1, 3]);
    await until(async () => (await outbox.stats()).unsent === 0, 5_000, 'an empty outbox');
    expect(await outbox.stats()).toMatchObject({ parked: 0, deadLettered: 1 });
  });

  it('broker down: rows stay with their attempts counted, then the backlog drains in order', async () => {
    const db = await setup('down');
    const ch = channel();
    const outbox = createOutbox(db.pool, { schema: db.schema });
    // Nothing listens on port 1: every publish fails as it would with the broker down.
    const down = createBus({ url: 'nats://127.0.0.1:1', logger: silentLogger, publishTimeoutMs: 1_000 });
    cleanups.push(() => down.close());
    await outbox.transaction(async (client) => {
      for (let seq = 1; seq <= 20; seq++)
        await outbox.append(client, ch, { type: 'E', partitionkey: `k${seq % 2}`, data: { seq } });
    });
    const failing = outbox.startRelay(down, { ...FAST, backoff: { initialMs: 50, maxMs: 200 } });
    await until(
      async () => (await db.pool.query(`SELECT max(attempts) AS a FROM "${db.schema}".outbox`)).rows[0].a >= 2,
      20_000,
      'two failed attempts',
    );
    await failing.stop();
    expect((await outbox.stats()).unsent).toBe(20);
    expect(failing.stats().published).toBe(0);
    const { rows } = await db.pool.query(`SELECT last_error FROM "${db.schema}".outbox WHERE attempts > 0 LIMIT 1`);
    expect(rows[0].last_error).toBeTruthy();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    track(outbox.startRelay(bus, FAST));
    await until(() => received.length >= 20, 10_000, 'the backlog');
    for (const key of ['k0', 'k1']) {
      const got = received.filter((e) => e.partitionkey === key).map(seqOf);
      expect(got).toEqual([...got].sort((a, b) => a - b));
      expect(got.length).toBe(10);
    }
    // The round deletes its rows after its last confirm.
    await until(async () => (await outbox.stats()).unsent === 0, 5_000, 'the rows deleted');
  });

  it('two relays share the partitions; every event arrives and no key is reordered', async () => {
    const db = await setup('two', 20);
    const ch = channel();
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema, partitions: 8 });
    const a = track(outbox.startRelay(bus, { ...FAST, owner: 'relay-a' }));
    const b = track(outbox.startRelay(bus, { ...FAST, owner: 'relay-b' }));
    // Within a few heartbeats the first relay gives back what is beyond its fair share.
    await until(() => a.stats().partitions.length === 4 && b.stats().partitions.length === 4, 10_000, 'a 4/4 split');
    expect([...a.stats().partitions, ...b.stats().partitions].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const N = 400;
    for (let i = 0; i < N; i += 20) {
      await outbox.transaction(async (client) => {
        for (let seq = i; seq < i + 20; seq++) {
          await outbox.append(client, ch, { type: 'E', partitionkey: `k${seq % 10}`, data: { seq } });
        }
      });
    }
    await until(() => received.length >= N, 20_000, 'every event');
    expect(new Set(received.map((e) => e.id)).size).toBe(N);
    for (let k = 0; k < 10; k++) {
      const got = received.filter((e) => e.partitionkey === `k${k}`).map(seqOf);
      expect(got).toEqual([...got].sort((x, y) => x - y));
    }
    expect(a.stats().published).toBeGreaterThan(0);
    expect(b.stats().published).toBeGreaterThan(0);
    // Stopping one hands its partitions to the other at once (released, not left to expire).
    await a.stop();
    await until(() => b.stats().partitions.length === 8, 5_000, 'b to take all partitions');
    await outbox.transaction((client) =>
      outbox.append(client, ch, { type: 'Last', partitionkey: 'k1', data: { seq: N } }),
    );
    await until(() => received.length >= N + 1, 10_000, 'the event after the stop');
  });

  it('a relay whose lease expired cannot delete rows (fencing), and a new owner gets a new token', async () => {
    const db = await setup('fence');
    const ch = channel();
    const outbox = createOutbox(db.pool, { schema: db.schema, partitions: 1 });
    await outbox.transaction((client) => outbox.append(client, ch, { type: 'E', partitionkey: 'k', data: { seq: 1 } }));
    // The broker confirms, then the "relay process" stalls longer than the lease before deleting.
    let stalled: () => void = () => {};
    const resume = new Promise<void>((resolve) => {
      stalled = resolve;
    });
    const { bus, received } = await recordingBus(ch);
    cleanups.push(() => bus.close());
    let confirmed = false;
    const slow = {
      async publish<T>(channel: string, input: import('@wharf/core').EventInput<T>) {
        await bus.publish(channel, input);
        confirmed = true;
        await resume;
      },
    };
    const relay = track(outbox.startRelay(slow, { ...FAST, leaseTtlMs: 600, owner: 'stalled' }));
    await until(() => confirmed, 10_000, 'the broker confirm');
    // The lease expires and another relay takes it (token + 1) while the first one stalls.
    await db.pool.query(`UPDATE "${db.schema}".outbox_leases SET expires_at = clock_timestamp() - interval '1 second'`);
    const { rows } = await db.pool.query(
      `UPDATE "${db.schema}".outbox_leases SET owner = 'other', token = token + 1, expires_at = clock_timestamp() + interval '1 hour' RETURNING token`,
    );
    expect(Number(rows[0].token)).toBeGreaterThan(1);
    stalled();
    await until(() => relay.stats().fenced === 1, 5_000, 'the fenced delete');
    await sleep(800);
    // Fenced once, then the relay stopped publishing under the stale token (no republish loop).
    expect(relay.stats()).toMatchObject({ fenced: 1, published: 0, partitions: [] });
    expect((await outbox.stats()).unsent).toBe(1);
    expect(received.length).toBe(1);
  });

  it('a relay configured with another partition count than the lease table leases nothing and says why', async () => {
    const db = await setup('parts');
    const { bus } = await recordingBus(channel());
    cleanups.push(() => bus.close());
    const first = track(createOutbox(db.pool, { schema: db.schema, partitions: 4 }).startRelay(bus, FAST));
    await until(() => first.stats().partitions.length === 4, 10_000, 'the first relay');
    const wrong = track(createOutbox(db.pool, { schema: db.schema, partitions: 16 }).startRelay(bus, FAST));
    await until(() => wrong.error !== undefined, 10_000, 'the refusal');
    expect(wrong.error?.message).toMatch(/has 4 partitions but this relay was configured with 16/);
    expect(wrong.stats().partitions).toEqual([]);
  });
});
