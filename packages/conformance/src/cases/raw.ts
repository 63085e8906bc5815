import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import {
  type Bus,
  type CloudEvent,
  ContractViolationError,
  type DeadLetter,
  type EventValidator,
  type LegacyProducer,
  type RawSubscribeOptions,
} from '@wharf/core';
import { sleep } from '../assertions.js';
import type { CaseContext } from '../harness.js';
import { deadLetters } from './failure.js';
import type { ConformanceCase } from './types.js';

const needsRaw = (
  capabilities: { rawMessages: boolean },
  options: { legacyProducer?: unknown },
): string | undefined => {
  if (!capabilities.rawMessages) return 'the adapter has no raw mode (capabilities.rawMessages is false)';
  return options.legacyProducer ? undefined : 'the harness gives no legacyProducer';
};

const sha = (body: string): string => `sha256:${createHash('sha256').update(body).digest('hex')}`;

async function until(t: CaseContext, what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + t.ms(15_000);
  while (!(await ok())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A legacy producer's queue, a channel and a group adopting it, and a bus (with `validator`, if given). */
async function setup(
  t: CaseContext,
  label: string,
  validator?: EventValidator,
): Promise<{ bus: Bus; producer: LegacyProducer; channel: string; group: string; raw: RawSubscribeOptions }> {
  const producer = await t.legacyProducer();
  const channel = t.channel(label);
  const group = t.group(channel, 'g');
  const bus = t.bus(validator ? { validator } : {});
  return {
    bus,
    producer,
    channel,
    group,
    raw: { queue: producer.queue, type: 'OrderPlaced', source: 'urn:legacy:orders' },
  };
}

export const rawCases: readonly ConformanceCase[] = [
  {
    id: 'raw-wrap',
    rule: "a legacy producer's plain JSON is wrapped into an event with the configured type and source, its id the producer's message id, else the body's hash; the same body again is a duplicate",
    requires: needsRaw,
    async run(t) {
      const { bus, producer, channel, group, raw } = await setup(t, 'raw-wrap');
      const seen: CloudEvent[] = [];
      await bus.subscribe(channel, { group, raw }, async (event) => {
        seen.push(event);
      });
      const body = JSON.stringify({ orderId: 'o-1', total: 10 });
      await producer.publish(body);
      await producer.publish(JSON.stringify({ orderId: 'o-2', total: 20 }), { messageId: 'msg-2' });
      // The same body again without a message id (a producer retry): same hash, so dedup skips it.
      await producer.publish(body);
      await until(t, 'two events and the duplicate skipped', () => seen.length >= 2 && bus.stats().duplicates === 1);
      await sleep(t.ms(300));
      assert.equal(seen.length, 2, `handled ${seen.map((e) => e.id).join(', ')}`);
      const [first, second] = seen as [CloudEvent, CloudEvent];
      assert.equal(first.specversion, '1.0');
      assert.equal(first.type, 'OrderPlaced');
      assert.equal(first.source, 'urn:legacy:orders');
      assert.equal(first.id, sha(body));
      assert.equal(first.datacontenttype, 'application/json');
      assert.deepEqual(first.data, { orderId: 'o-1', total: 10 });
      assert.equal(second.id, 'msg-2');
      assert.deepEqual(second.data, { orderId: 'o-2', total: 20 });
    },
  },
  {
    id: 'raw-retry',
    rule: 'a raw subscription retries a failing handler with the policy’s backoff and the same event id, then succeeds; nothing is dead-lettered',
    requires: needsRaw,
    async run(t) {
      const { bus, producer, channel, group, raw } = await setup(t, 'raw-retry');
      const attempts: { attempt: number; at: number; id: string }[] = [];
      await bus.subscribe(
        channel,
        { group, raw, retry: { maxAttempts: 4, delays: [150, 300, 300] } },
        async (event, ctx) => {
          attempts.push({ attempt: ctx.attempt, at: performance.now(), id: event.id });
          if (ctx.attempt <= 2) throw new Error(`payment service down (attempt ${ctx.attempt})`);
        },
      );
      await producer.publish(JSON.stringify({ orderId: 'o-3' }), { messageId: 'msg-3' });
      await until(t, 'the third attempt', () => attempts.length >= 3);
      await sleep(t.ms(500));
      assert.deepEqual(
        attempts.map((a) => a.attempt),
        [1, 2, 3],
      );
      assert.deepEqual([...new Set(attempts.map((a) => a.id))], ['msg-3']);
      const [a1, a2, a3] = attempts as [(typeof attempts)[0], (typeof attempts)[0], (typeof attempts)[0]];
      assert.ok(a2.at - a1.at >= 140, `first retry after ${Math.round(a2.at - a1.at)} ms, policy says 150`);
      assert.ok(a3.at - a2.at >= 280, `second retry after ${Math.round(a3.at - a2.at)} ms, policy says 300`);
      assert.equal((await bus.listDeadLetters(channel, group)).length, 0);
    },
  },
  {
    id: 'raw-dead-letter-replay',
    rule: "what always fails is dead-lettered into Wharf's own destination with the reason and the adopted queue; a replay from another bus with no raw subscription sends it back there as the same event",
    requires: needsRaw,
    async run(t) {
      const { bus, producer, channel, group, raw } = await setup(t, 'raw-dlq');
      let failing = true;
      const handled: CloudEvent[] = [];
      await bus.subscribe(channel, { group, raw, retry: { maxAttempts: 2, delays: [50] } }, async (event) => {
        if (failing) throw new Error('inventory rejected the order');
        handled.push(event);
      });
      const body = JSON.stringify({ orderId: 'o-4' });
      await producer.publish(body);
      const [dl] = (await deadLetters(t, bus, channel, group, 1)) as [DeadLetter];
      assert.equal(dl.info?.reason, 'retries-exhausted');
      assert.equal(dl.info?.attempts, 2);
      assert.equal(dl.info?.rawQueue, raw.queue, 'the dead letter names the adopted queue its replay goes to');
      assert.match(dl.info?.errorMessage ?? '', /inventory rejected the order/);
      assert.equal(dl.event?.type, 'OrderPlaced');
      assert.equal(dl.event?.id, sha(body));
      assert.deepEqual(dl.event?.data, { orderId: 'o-4' });

      // Fixed; replayed by a bus that runs no raw subscription, as `wharf dlq replay` does.
      failing = false;
      assert.equal(await t.bus().replayDeadLetters(channel, group), 1);
      await until(t, 'the replayed event', () => handled.length === 1);
      assert.equal(handled[0]?.id, sha(body));
      assert.deepEqual(handled[0]?.data, { orderId: 'o-4' });
      assert.equal((await bus.listDeadLetters(channel, group)).length, 0);
    },
  },
  {
    id: 'raw-undecodable',
    rule: 'a body that is not JSON is dead-lettered as undecodable at once: the handler never runs for it, nothing loops, and the next message is handled',
    requires: needsRaw,
    async run(t) {
      const { bus, producer, channel, group, raw } = await setup(t, 'raw-undecodable');
      let calls = 0;
      await bus.subscribe(channel, { group, raw }, async () => {
        calls++;
      });
      await producer.publish('order o-5 placed, total: 10');
      await producer.publish(JSON.stringify({ orderId: 'o-5b' }));
      const [dl] = (await deadLetters(t, bus, channel, group, 1)) as [DeadLetter];
      assert.equal(dl.info?.reason, 'undecodable');
      assert.equal(dl.info?.attempts, 0, 'the handler never ran');
      assert.equal(dl.event, undefined);
      assert.match(dl.decodeError ?? '', /not valid JSON/);
      await until(t, 'the next message handled', () => calls === 1);
      await sleep(t.ms(300));
      assert.equal(calls, 1, 'only the JSON message reached the handler');
      assert.equal((await bus.listDeadLetters(channel, group)).length, 1, 'dead-lettered once, not looped');
    },
  },
  {
    id: 'raw-invalid',
    rule: 'a plain payload the contract refuses is dead-lettered as invalid; valid ones are handled',
    requires: needsRaw,
    async run(t) {
      const validator: EventValidator = {
        validate(direction, _channel, event) {
          const data = event.data as { orderId?: unknown } | undefined;
          if (direction === 'consume' && typeof data?.orderId !== 'string') {
            throw new ContractViolationError('OrderPlaced', [{ path: '/orderId', message: 'must be a string' }]);
          }
        },
      };
      const { bus, producer, channel, group, raw } = await setup(t, 'raw-invalid', validator);
      const handled: unknown[] = [];
      await bus.subscribe(channel, { group, raw }, async (event) => {
        handled.push(event.data);
      });
      await producer.publish(JSON.stringify({ orderId: 6 }));
      await producer.publish(JSON.stringify({ orderId: 'o-7' }));
      await until(t, 'the valid event', () => handled.length === 1);
      const [dl] = (await deadLetters(t, bus, channel, group, 1)) as [DeadLetter];
      assert.deepEqual(handled, [{ orderId: 'o-7' }]);
      assert.equal(dl.info?.reason, 'invalid');
      assert.match(dl.info?.errorMessage ?? '', /orderId must be a string/);
    },
  },
];
