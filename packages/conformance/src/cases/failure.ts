import { strict as assert } from 'node:assert';
import {
  type Adapter,
  type Bus,
  createEvent,
  type DeadLetter,
  type Delivery,
  encodeStructured,
  NonRetryableError,
} from '@wharf/core';
import { Recorder, sleep } from '../assertions.js';
import type { CaseContext } from '../harness.js';
import type { ConformanceCase } from './types.js';

/** Polls the dead-letter destination until it holds `count` entries. */
export async function deadLetters(
  t: CaseContext,
  bus: Bus,
  channel: string,
  group: string,
  count: number,
): Promise<DeadLetter[]> {
  const deadline = performance.now() + t.ms(20_000);
  for (;;) {
    const list = await bus.listDeadLetters(channel, group, { limit: 50 });
    if (list.length >= count) return list;
    if (performance.now() > deadline)
      throw new Error(`expected ${count} dead letters on ${channel}/${group}, found ${list.length}`);
    await sleep(150);
  }
}

const needsForeign = (_: unknown, options: { publishForeign?: unknown }): string | undefined =>
  options.publishForeign ? undefined : 'the harness gives no publishForeign to send a non-Wharf message';

/** Adapter decorator whose first dead-letter write fails, as a broker refusing the write would. */
function failFirstDeadLetterWrite(adapter: Adapter): Adapter {
  let failed = false;
  return Object.assign(Object.create(adapter) as Adapter, {
    subscribe: (request: Parameters<Adapter['subscribe']>[0], onDelivery: (d: Delivery) => Promise<void>) =>
      adapter.subscribe(request, (delivery) =>
        onDelivery({
          decoded: delivery.decoded,
          attempt: delivery.attempt,
          ...(delivery.firstFailureAt !== undefined ? { firstFailureAt: delivery.firstFailureAt } : {}),
          ack: () => delivery.ack(),
          retry: (i) => delivery.retry(i),
          release: () => delivery.release(),
          deadLetter: async (info) => {
            if (!failed) {
              failed = true;
              throw new Error('simulated dead-letter write failure');
            }
            return delivery.deadLetter(info);
          },
        }),
      ),
    connect: () => adapter.connect(),
    publish: (c: string, m: Parameters<Adapter['publish']>[1]) => adapter.publish(c, m),
    declare: (...args: Parameters<Adapter['declare']>) => adapter.declare(...args),
    readDeadLetters: (...args: Parameters<Adapter['readDeadLetters']>) => adapter.readDeadLetters(...args),
    close: () => adapter.close(),
    raw: () => adapter.raw(),
  });
}

/** Retry, dead-lettering and replay: what happens when handlers fail. */
export const failureCases: ConformanceCase[] = [
  {
    id: 'nack-redelivers',
    rule: 'an event whose handler throws is delivered again, with the next attempt number',
    async run(t) {
      const channel = t.channel('nack');
      const rec = new Recorder();
      await t
        .bus()
        .subscribe(channel, { group: t.group(channel, 'g'), retry: { maxAttempts: 2, delays: [100] } }, (e, c) => {
          rec.record(e, c.attempt);
          if (c.attempt === 1) throw new Error('first try fails');
        });
      const sent = await t.bus().publish(channel, { type: 'Again', data: { n: 1 } });
      await rec.count(2, t.ms(15_000));
      assert.deepEqual(
        rec.received.map((r) => [r.event.id, r.attempt]),
        [
          [sent.id, 1],
          [sent.id, 2],
        ],
      );
    },
  },
  {
    id: 'retry-then-succeed',
    rule: 'a handler failing k times then succeeding is called exactly k+1 times, each delay honoured, attempt visible',
    async run(t) {
      const channel = t.channel('retry');
      const rec = new Recorder();
      const delays = [300, 600];
      const bus = t.bus();
      await bus.subscribe(channel, { group: t.group(channel, 'g'), retry: { maxAttempts: 4, delays } }, (e, c) => {
        rec.record(e, c.attempt);
        if (c.attempt <= 2) throw new Error(`fail ${c.attempt}`);
      });
      await t.bus().publish(channel, { type: 'Flaky', data: {} });
      await rec.count(3, t.ms(20_000));
      await sleep(t.ms(1_000));
      assert.deepEqual(
        rec.received.map((r) => r.attempt),
        [1, 2, 3],
      );
      const tolerance = t.ms(2_500);
      for (let i = 0; i < delays.length; i++) {
        const gap = (rec.received[i + 1]?.at ?? 0) - (rec.received[i]?.at ?? 0);
        const want = delays[i] as number;
        assert.ok(gap >= want * 0.9, `retry ${i + 1} came after ${Math.round(gap)} ms, before its ${want} ms delay`);
        assert.ok(
          gap <= want + tolerance,
          `retry ${i + 1} came after ${Math.round(gap)} ms, long after its ${want} ms delay`,
        );
      }
      assert.equal((await bus.listDeadLetters(channel, t.group(channel, 'g'))).length, 0);
    },
  },
  {
    id: 'retries-exhausted',
    rule: 'after the last attempt the event is dead-lettered exactly once, with its metadata, payload and id',
    async run(t) {
      const channel = t.channel('exhaust');
      const group = t.group(channel, 'g');
      const rec = new Recorder();
      const bus = t.bus();
      await bus.subscribe(channel, { group, retry: { maxAttempts: 3, delays: [100, 200] } }, (e, c) => {
        rec.record(e, c.attempt);
        throw new TypeError('boom\nwith a second line');
      });
      const started = new Date().toISOString();
      const sent = await t.bus().publish(channel, { type: 'Doomed', data: { n: 7, text: 'ü' } });
      const [dead] = await deadLetters(t, bus, channel, group, 1);
      await sleep(t.ms(800));
      assert.deepEqual(
        rec.received.map((r) => r.attempt),
        [1, 2, 3],
      );
      const list = await bus.listDeadLetters(channel, group);
      assert.equal(list.length, 1, 'expected exactly one dead letter');
      assert.equal(dead?.event?.id, sent.id);
      assert.deepEqual(dead?.event?.data, sent.data);
      assert.equal(dead?.event?.type, 'Doomed');
      const info = dead?.info;
      assert.ok(info, 'dead letter has no metadata');
      assert.equal(info.reason, 'retries-exhausted');
      assert.equal(info.errorType, 'TypeError');
      assert.equal(info.errorMessage, 'boom with a second line');
      assert.equal(info.channel, channel);
      assert.equal(info.group, group);
      assert.equal(info.attempts, 3);
      assert.ok(info.host.length > 0, 'host missing');
      assert.ok(info.firstFailureAt >= started, `firstFailureAt ${info.firstFailureAt} before the publish`);
      assert.ok(info.lastFailureAt >= info.firstFailureAt, 'lastFailureAt before firstFailureAt');
    },
  },
  {
    id: 'non-retryable',
    rule: 'NonRetryableError or ctx.deadLetter() dead-letters at once, without retries',
    async run(t) {
      const channel = t.channel('nonretry');
      const group = t.group(channel, 'g');
      const rec = new Recorder();
      const bus = t.bus();
      await bus.subscribe(channel, { group, retry: { maxAttempts: 5, delays: [100] } }, (e, c) => {
        rec.record(e, c.attempt);
        if ((e.data as { via: string }).via === 'error') throw new NonRetryableError('card stolen');
        c.deadLetter('rule says no');
      });
      await t.bus().publishBatch(channel, [
        { type: 'Poison', data: { via: 'error' } },
        { type: 'Poison', data: { via: 'context' } },
      ]);
      const list = await deadLetters(t, bus, channel, group, 2);
      await sleep(t.ms(600));
      assert.equal(rec.received.length, 2, 'a non-retryable failure was retried');
      assert.deepEqual(list.map((d) => d.info?.reason).sort(), ['non-retryable', 'non-retryable']);
      assert.deepEqual(list.map((d) => d.info?.errorMessage).sort(), ['card stolen', 'rule says no']);
      assert.ok(list.every((d) => d.info?.attempts === 1));
    },
  },
  {
    id: 'undecodable',
    rule: 'a foreign message that is not a CloudEvent is dead-lettered as undecodable and the consumer keeps going',
    requires: needsForeign,
    async run(t) {
      const channel = t.channel('foreign');
      const group = t.group(channel, 'g');
      const rec = new Recorder();
      const bus = t.bus();
      await bus.subscribe(channel, { group }, (e, c) => rec.record(e, c.attempt));
      await t.options.publishForeign?.(channel, {
        body: new TextEncoder().encode('plain text from a legacy system'),
        headers: { origin: 'legacy' },
        contentType: 'text/plain',
      });
      await t.options.publishForeign?.(channel, {
        body: new TextEncoder().encode('{"not":"closed'),
        contentType: 'application/cloudevents+json',
      });
      const after = await t.bus().publish(channel, { type: 'StillFine', data: { ok: true } });
      await rec.all([after.id], t.ms(15_000));
      const list = await deadLetters(t, bus, channel, group, 2);
      assert.equal(rec.received.length, 1, 'a foreign message reached the handler');
      for (const dead of list) {
        assert.equal(dead.info?.reason, 'undecodable');
        assert.equal(dead.info?.attempts, 0);
        assert.equal(dead.event, undefined);
        assert.ok(dead.info?.errorMessage, 'no error message recorded');
      }
    },
  },
  {
    id: 'structured-mode',
    rule: 'a structured-mode CloudEvent (application/cloudevents+json) from a foreign producer is received with its attributes',
    requires: needsForeign,
    async run(t) {
      const channel = t.channel('structured');
      const rec = new Recorder();
      await t.bus().subscribe(channel, { group: t.group(channel, 'g') }, (e, c) => rec.record(e, c.attempt));
      const event = createEvent(
        {
          type: 'ForeignThing',
          source: '/legacy/sdk',
          subject: 's-1',
          data: { price: 12.5, tags: ['a'] },
          extensions: { tenant: 'acme' },
        },
        'unused',
      );
      await t.options.publishForeign?.(channel, {
        body: encodeStructured(event),
        contentType: 'application/cloudevents+json; charset=utf-8',
      });
      await rec.count(1, t.ms(15_000));
      const got = rec.received[0]?.event;
      assert.equal(got?.id, event.id);
      assert.equal(got?.type, 'ForeignThing');
      assert.equal(got?.source, '/legacy/sdk');
      assert.equal(got?.subject, 's-1');
      assert.equal(got?.tenant, 'acme');
      assert.deepEqual(got?.data, event.data);
    },
  },
  {
    id: 'dead-letter-write-failure',
    rule: 'when the dead-letter write fails the original is not acknowledged: it comes back and is dead-lettered once',
    async run(t) {
      const channel = t.channel('dlfail');
      const group = t.group(channel, 'g');
      const rec = new Recorder();
      const bus = t.bus({}, failFirstDeadLetterWrite(t.options.create()));
      await bus.subscribe(channel, { group }, (e, c) => {
        rec.record(e, c.attempt);
        throw new NonRetryableError('poison');
      });
      const sent = await t.bus().publish(channel, { type: 'Poison', data: {} });
      const list = await deadLetters(t, bus, channel, group, 1);
      await sleep(t.ms(600));
      assert.equal(
        rec.ids().filter((id) => id === sent.id).length,
        2,
        'the event was not redelivered after the failed write',
      );
      assert.equal((await bus.listDeadLetters(channel, group)).length, 1);
      assert.equal(list[0]?.event?.id, sent.id);
    },
  },
  {
    id: 'replay',
    rule: 'replayed dead letters return with a fresh attempt counter and the replayed marker, to their group only where the adapter can address one',
    async run(t) {
      const channel = t.channel('replay');
      const group = t.group(channel, 'g');
      const rec = new Recorder();
      let healthy = false;
      const bus = t.bus();
      await bus.subscribe(channel, { group, retry: { maxAttempts: 2, delays: [100] } }, (e, c) => {
        rec.record(e, c.attempt);
        if (!healthy) throw new Error('downstream is down');
      });
      // A second group handled the event fine. Without dedup (as in a replica that restarted and lost
      // its in-memory store) it would handle a channel-wide replay again.
      const other = new Recorder();
      await t
        .bus()
        .subscribe(channel, { group: t.group(channel, 'other'), dedup: false }, (e, c) => other.record(e, c.attempt));
      const sent = await t.bus().publish(channel, { type: 'Later', data: { n: 1 } });
      await deadLetters(t, bus, channel, group, 1);
      healthy = true;
      const replayed = await bus.replayDeadLetters(channel, group);
      assert.equal(replayed, 1);
      await rec.count(3, t.ms(15_000));
      const last = rec.received[2];
      assert.equal(last?.event.id, sent.id);
      assert.equal(last?.attempt, 1);
      assert.equal(typeof last?.event.replayed, 'string', 'replayed marker missing');
      assert.deepEqual(last?.event.data, sent.data);
      await sleep(t.ms(300));
      assert.equal((await bus.listDeadLetters(channel, group)).length, 0, 'the replayed dead letter was not removed');
      if (t.addressesGroups) {
        assert.deepEqual(other.ids(), [sent.id], 'a replay for one group reached another group');
      }
    },
  },
];
