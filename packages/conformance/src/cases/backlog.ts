import { strict as assert } from 'node:assert';
import {
  type Adapter,
  type Bus,
  type GroupBacklog,
  NonRetryableError,
  type RetryPolicy,
  UnknownGroupError,
} from '@wharf/core';
import { Recorder, sleep } from '../assertions.js';
import type { CaseContext } from '../harness.js';
import type { ConformanceCase } from './types.js';

const needsBacklog = (_: unknown, __: unknown, probe: Adapter): string | undefined =>
  typeof probe.backlog === 'function' ? undefined : 'the adapter has no backlog member';

/**
 * Polls the group's backlog until `done` holds and returns it. Brokers update their counts a little
 * after the operation that changed them (Kafka commits, JetStream acks), so the counts are waited
 * for, with the last reading in the failure message.
 */
async function backlogUntil(
  t: CaseContext,
  bus: Bus,
  channel: string,
  group: string,
  done: (b: GroupBacklog) => boolean,
  what: string,
  retry?: RetryPolicy,
): Promise<GroupBacklog> {
  const deadline = performance.now() + t.ms(30_000);
  for (;;) {
    const backlog = await bus.backlog(channel, group, retry ? { retry } : {});
    if (done(backlog)) return backlog;
    if (performance.now() > deadline) {
      throw new Error(`timed out waiting for ${what} on ${channel}/${group}; last backlog ${JSON.stringify(backlog)}`);
    }
    await sleep(200);
  }
}

/** Only the counts every adapter gives (`consumers` is optional). */
function counts(b: GroupBacklog): Omit<GroupBacklog, 'consumers'> {
  return { ready: b.ready, inFlight: b.inFlight, delayed: b.delayed, deadLetters: b.deadLetters };
}

export const backlogCases: ConformanceCase[] = [
  {
    id: 'backlog-ready',
    rule: 'backlog() counts events kept for a group with no subscriber as ready, and 0 once a subscriber drained them; an undeclared group is UnknownGroupError',
    requires: needsBacklog,
    timeoutMs: 120_000,
    async run(t) {
      const channel = t.channel('backlog');
      const group = t.group(channel, 'g');
      const bus = t.bus();
      await bus.declare(channel, { groups: [group] });
      const never = t.group(channel, 'never');
      await assert.rejects(bus.backlog(channel, never), UnknownGroupError);
      assert.deepEqual(counts(await bus.backlog(channel, group)), {
        ready: 0,
        inFlight: 0,
        delayed: 0,
        deadLetters: 0,
      });
      // Still undeclared: reading a backlog creates nothing.
      await assert.rejects(bus.backlog(channel, never), UnknownGroupError);

      const total = 500;
      const publisher = t.bus();
      for (let i = 0; i < total; i += 100) {
        await publisher.publishBatch(
          channel,
          Array.from({ length: 100 }, (_, k) => ({ type: 'Queued', data: { n: i + k } })),
        );
      }
      const full = await backlogUntil(t, bus, channel, group, (b) => b.ready >= total, `ready = ${total}`);
      assert.deepEqual(counts(full), { ready: total, inFlight: 0, delayed: 0, deadLetters: 0 });
      if (full.consumers !== undefined) assert.equal(full.consumers, 0, 'no subscriber runs yet');

      const rec = new Recorder();
      const consumer = t.bus();
      const sub = await consumer.subscribe(channel, { group, concurrency: 20 }, (e, c) => rec.record(e, c.attempt));
      await rec.count(total, t.ms(60_000));
      const drained = await backlogUntil(
        t,
        bus,
        channel,
        group,
        (b) => b.ready === 0 && b.inFlight === 0,
        'ready = 0 and inFlight = 0 after draining',
      );
      assert.deepEqual(counts(drained), { ready: 0, inFlight: 0, delayed: 0, deadLetters: 0 });
      if (drained.consumers !== undefined) assert.ok(drained.consumers >= 1, 'the running subscriber is counted');
      await sub.close();
      assert.equal(rec.received.length, total, 'each event handled once');
    },
  },
  {
    id: 'backlog-dead-letters',
    rule: 'backlog() counts a dead-lettered event in deadLetters, and nowhere else',
    requires: needsBacklog,
    async run(t) {
      const channel = t.channel('backlog-dl');
      const group = t.group(channel, 'g');
      const bus = t.bus();
      const rec = new Recorder();
      await bus.subscribe(channel, { group }, (e, c) => {
        rec.record(e, c.attempt);
        throw new NonRetryableError('poison');
      });
      await t.bus().publishBatch(channel, [{ type: 'Poison' }, { type: 'Poison' }]);
      const after = await backlogUntil(
        t,
        bus,
        channel,
        group,
        (b) => b.deadLetters >= 2 && b.ready === 0 && b.inFlight === 0,
        'deadLetters = 2',
      );
      assert.deepEqual(counts(after), { ready: 0, inFlight: 0, delayed: 0, deadLetters: 2 });
      assert.equal(rec.received.length, 2);
    },
  },
  {
    id: 'backlog-delayed',
    rule: 'backlog() counts an event the broker holds for a later retry as delayed',
    requires: needsBacklog,
    async run(t) {
      const channel = t.channel('backlog-delay');
      const group = t.group(channel, 'g');
      // A delay far longer than the case: the event stays held by the broker until cleanup.
      const retry: RetryPolicy = { maxAttempts: 2, delays: [600_000] };
      const bus = t.bus();
      const rec = new Recorder();
      await bus.subscribe(channel, { group, retry }, (e, c) => {
        rec.record(e, c.attempt);
        throw new Error('later');
      });
      await t.bus().publish(channel, { type: 'Later' });
      await rec.count(1, t.ms(20_000));
      const held = await backlogUntil(
        t,
        bus,
        channel,
        group,
        (b) => b.delayed >= 1 && b.ready === 0 && b.inFlight === 0,
        'delayed = 1',
        retry,
      );
      assert.deepEqual(counts(held), { ready: 0, inFlight: 0, delayed: 1, deadLetters: 0 });
      assert.deepEqual(
        rec.received.map((r) => r.attempt),
        [1],
      );
    },
  },
];
