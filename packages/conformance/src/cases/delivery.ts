import { strict as assert } from 'node:assert';
import type { CloudEvent } from '@wharf/core';
import { assertExactlyOnce, assertNoUnexpected, assertPerKeyOrder, Recorder, sleep } from '../assertions.js';
import type { ConformanceCase } from './types.js';

/** Publishing and delivery: what arrives, where, how often and in which order. */
export const deliveryCases: ConformanceCase[] = [
  {
    id: 'round-trip',
    rule: 'an event arrives with its id, payload and every attribute, extensions included',
    async run(t) {
      const channel = t.channel('rt');
      const bus = t.bus();
      const rec = new Recorder();
      await bus.subscribe(channel, { group: t.group(channel, 'g') }, (e, c) => rec.record(e, c.attempt));
      const sent = await bus.publish(channel, {
        type: 'OrderPlaced',
        source: '/conformance/orders',
        subject: 'order-42',
        data: { orderId: 'o-42', items: [{ sku: 'A-1', qty: 2 }], total: 1999, note: null },
        partitionkey: 'o-42',
        correlationid: 'corr-1',
        causationid: 'cause-1',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        tracestate: 'wharf=1',
        extensions: { tenant: 'acme' },
      });
      await rec.count(1, t.ms(15_000));
      const got = rec.received[0]?.event as CloudEvent;
      for (const name of [
        'id',
        'source',
        'type',
        'specversion',
        'time',
        'subject',
        'datacontenttype',
        'partitionkey',
        'correlationid',
        'causationid',
        'traceparent',
        'tracestate',
        'tenant',
      ]) {
        assert.equal(got[name], sent[name], `attribute ${name}`);
      }
      assert.deepEqual(got.data, sent.data);
      assert.equal(rec.received[0]?.attempt, 1);
    },
  },
  {
    id: 'channel-isolation',
    rule: 'a group receives only the events of its own channel',
    async run(t) {
      const a = t.channel('iso-a');
      const b = t.channel('iso-b');
      const bus = t.bus();
      const ra = new Recorder();
      const rb = new Recorder();
      await bus.subscribe(a, { group: t.group(a, 'g') }, (e, c) => ra.record(e, c.attempt));
      await bus.subscribe(b, { group: t.group(b, 'g') }, (e, c) => rb.record(e, c.attempt));
      const sentA = await bus.publishBatch(
        a,
        [1, 2, 3, 4, 5].map((n) => ({ type: 'A', data: { n } })),
      );
      const sentB = await bus.publishBatch(
        b,
        [1, 2, 3].map((n) => ({ type: 'B', data: { n } })),
      );
      await ra.count(5, t.ms(15_000));
      await rb.count(3, t.ms(15_000));
      await sleep(t.ms(500));
      assertExactlyOnce(
        sentA.map((e) => e.id),
        ra.ids(),
      );
      assertExactlyOnce(
        sentB.map((e) => e.id),
        rb.ids(),
      );
    },
  },
  {
    id: 'competing-consumers',
    rule: 'subscribers of one group share the events: each event reaches one of them',
    async run(t) {
      const channel = t.channel('compete');
      const group = t.group(channel, 'workers');
      const rec = new Recorder();
      for (const member of ['m1', 'm2']) {
        await t.bus().subscribe(channel, { group, concurrency: 1 }, async (e, c) => {
          await sleep(10);
          rec.record(e, c.attempt, member);
        });
      }
      // Brokers that rebalance (Kafka) need a moment to hand partitions to the second member.
      await sleep(t.ms(1_000));
      const sent = await t.bus().publishBatch(
        channel,
        Array.from({ length: 40 }, (_, n) => ({ type: 'Job', data: { n } })),
      );
      const ids = sent.map((e) => e.id);
      await rec.all(ids, t.ms(30_000));
      await sleep(t.ms(300));
      assertExactlyOnce(ids, rec.ids());
      assert.ok(rec.ids('m1').length > 0, 'member m1 received nothing');
      assert.ok(rec.ids('m2').length > 0, 'member m2 received nothing');
    },
  },
  {
    id: 'fan-out',
    rule: 'every group of a channel receives every event',
    async run(t) {
      const channel = t.channel('fan');
      const bus = t.bus();
      const r1 = new Recorder();
      const r2 = new Recorder();
      await bus.subscribe(channel, { group: t.group(channel, 'g1') }, (e, c) => r1.record(e, c.attempt));
      await t.bus().subscribe(channel, { group: t.group(channel, 'g2') }, (e, c) => r2.record(e, c.attempt));
      const sent = await bus.publishBatch(
        channel,
        Array.from({ length: 10 }, (_, n) => ({ type: 'Fan', data: { n } })),
      );
      const ids = sent.map((e) => e.id);
      await r1.all(ids, t.ms(15_000));
      await r2.all(ids, t.ms(15_000));
      await sleep(t.ms(300));
      assertExactlyOnce(ids, r1.ids());
      assertExactlyOnce(ids, r2.ids());
    },
  },
  {
    id: 'durable-before-subscribe',
    rule: 'a declared group keeps events published before its first subscriber; a group declared later starts from then',
    async run(t) {
      const channel = t.channel('durable');
      const group = t.group(channel, 'early');
      const late = t.group(channel, 'late');
      const publisher = t.bus();
      await publisher.declare(channel, { groups: [group] });
      const before = await publisher.publishBatch(
        channel,
        Array.from({ length: 5 }, (_, n) => ({ type: 'Kept', data: { n } })),
      );
      await publisher.declare(channel, { groups: [late] });
      const after = await publisher.publish(channel, { type: 'Kept', data: { n: 5 } });

      const early = new Recorder();
      const lateRec = new Recorder();
      await t.bus().subscribe(channel, { group }, (e, c) => early.record(e, c.attempt));
      await t.bus().subscribe(channel, { group: late }, (e, c) => lateRec.record(e, c.attempt));
      const all = [...before.map((e) => e.id), after.id];
      await early.all(all, t.ms(20_000));
      await lateRec.all([after.id], t.ms(20_000));
      await sleep(t.ms(500));
      assertExactlyOnce(all, early.ids());
      assertExactlyOnce([after.id], lateRec.ids());
    },
  },
  {
    id: 'dedup',
    rule: 'an event republished with the same source and id is handled once per group',
    async run(t) {
      const channel = t.channel('dedup');
      const bus = t.bus();
      const rec = new Recorder();
      await bus.subscribe(channel, { group: t.group(channel, 'g') }, (e, c) => rec.record(e, c.attempt));
      const first = await bus.publish(channel, { type: 'Once', data: { n: 1 } });
      await bus.publish(channel, {
        type: 'Once',
        id: first.id,
        source: first.source,
        time: first.time,
        data: { n: 1 },
      });
      const marker = await bus.publish(channel, { type: 'Marker' });
      await rec.all([first.id, marker.id], t.ms(15_000));
      await sleep(t.ms(500));
      assert.equal(rec.ids().filter((id) => id === first.id).length, 1, 'the republished event was handled twice');
    },
  },
  {
    id: 'per-key-order',
    rule: 'events with the same partition key are handled in publish order (where declared)',
    requires: (caps) => (caps.orderedByKey ? undefined : 'the adapter does not declare orderedByKey'),
    async run(t) {
      const channel = t.channel('order');
      const rec = new Recorder();
      await t.bus().subscribe(channel, { group: t.group(channel, 'g'), concurrency: 4 }, async (e, c) => {
        // Uneven handler times would reorder events of one key if the adapter let them overlap.
        await sleep((Number((e.data as { n: number }).n) * 7) % 13);
        rec.record(e, c.attempt);
      });
      const keys = ['k-a', 'k-b', 'k-c'];
      const inputs = Array.from({ length: 60 }, (_, n) => ({
        type: 'Step',
        partitionkey: keys[n % keys.length] as string,
        data: { n },
      }));
      const publisher = t.bus();
      const sent: { id: string; key: string }[] = [];
      for (let i = 0; i < inputs.length; i += 10) {
        const batch = await publisher.publishBatch(channel, inputs.slice(i, i + 10));
        for (const e of batch) sent.push({ id: e.id, key: e.partitionkey as string });
      }
      await rec.all(
        sent.map((s) => s.id),
        t.ms(30_000),
      );
      assertPerKeyOrder(
        sent,
        rec.received.map((r) => ({ id: r.event.id, key: r.event.partitionkey })),
      );
    },
  },
  {
    id: 'concurrency-limit',
    rule: 'no more handlers run at once than the subscription’s concurrency, and it is used',
    async run(t) {
      const channel = t.channel('conc');
      const rec = new Recorder();
      let running = 0;
      let peak = 0;
      await t.bus().subscribe(channel, { group: t.group(channel, 'g'), concurrency: 3 }, async (e, c) => {
        running++;
        peak = Math.max(peak, running);
        await sleep(60);
        running--;
        rec.record(e, c.attempt);
      });
      const sent = await t.bus().publishBatch(
        channel,
        Array.from({ length: 24 }, (_, n) => ({ type: 'Work', data: { n } })),
      );
      await rec.all(
        sent.map((e) => e.id),
        t.ms(30_000),
      );
      assert.ok(peak <= 3, `${peak} handlers ran at once with concurrency 3`);
      assert.ok(peak >= 2, `only ${peak} handler ran at a time with concurrency 3`);
    },
  },
  {
    id: 'publish-batch',
    rule: 'publishBatch resolves with every event, and every one arrives',
    async run(t) {
      const channel = t.channel('batch');
      const rec = new Recorder();
      await t
        .bus()
        .subscribe(channel, { group: t.group(channel, 'g'), concurrency: 8 }, (e, c) => rec.record(e, c.attempt));
      const sent = await t.bus().publishBatch(
        channel,
        Array.from({ length: 200 }, (_, n) => ({ type: 'Bulk', data: { n } })),
      );
      assert.equal(sent.length, 200);
      assert.equal(new Set(sent.map((e) => e.id)).size, 200, 'ids are not unique');
      await rec.all(
        sent.map((e) => e.id),
        t.ms(30_000),
      );
      assertNoUnexpected(
        sent.map((e) => e.id),
        rec.ids(),
      );
    },
  },
];
