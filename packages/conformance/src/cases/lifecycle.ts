import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { ClosedError, MessageTooLargeError, UnroutableError } from '@wharf/core';
import { assertNoneLost, Recorder, sleep, untilAccepted } from '../assertions.js';
import type { ConformanceCase } from './types.js';

/** Payload shapes, shutdown, closed buses and broker restarts. */
export const lifecycleCases: ConformanceCase[] = [
  {
    id: 'payloads',
    rule: 'large, empty, binary and unicode payloads arrive byte for byte; an oversized one is refused before sending',
    async run(t) {
      const channel = t.channel('payload');
      const rec = new Recorder();
      await t.bus().subscribe(channel, { group: t.group(channel, 'g') }, (e, c) => rec.record(e, c.attempt));
      // 1 MiB where the broker takes it; otherwise as much as it takes, leaving room for headers.
      const largeSize = Math.min(1024 * 1024, t.capabilities.maxMessageBytes - 16 * 1024);
      const large = new Uint8Array(randomBytes(largeSize));
      const binary = new Uint8Array([0, 1, 2, 255, 0, 13, 10, 0]);
      const unicode = { text: 'Grüße — 日本語 — שלום — 🚢⚓', emoji: '👩‍💻' };
      const bus = t.bus();
      const sent = await bus.publishBatch<unknown>(channel, [
        { type: 'Large', data: large },
        { type: 'Empty' },
        { type: 'Binary', data: binary },
        { type: 'Unicode', data: unicode },
        { type: 'Text', data: 'plain ünïcode text', datacontenttype: 'text/plain; charset=utf-8' },
      ]);
      await rec.all(
        sent.map((e) => e.id),
        t.ms(30_000),
      );
      const byType = new Map(rec.received.map((r) => [r.event.type, r.event]));
      assert.ok(
        Buffer.from(byType.get('Large')?.data as Uint8Array).equals(Buffer.from(large)),
        'large payload changed',
      );
      assert.equal(byType.get('Empty')?.data, undefined);
      assert.ok(
        Buffer.from(byType.get('Binary')?.data as Uint8Array).equals(Buffer.from(binary)),
        'binary payload changed',
      );
      assert.deepEqual(byType.get('Unicode')?.data, unicode);
      assert.equal(byType.get('Text')?.data, 'plain ünïcode text');

      const tooBig = new Uint8Array(t.capabilities.maxMessageBytes + 1);
      await assert.rejects(bus.publish(channel, { type: 'TooBig', data: tooBig }), MessageTooLargeError);
    },
  },
  {
    id: 'close-while-handling',
    rule: 'close() waits for running handlers, aborts those past the bound without settling them, and no handler runs after',
    async run(t) {
      const channel = t.channel('close');
      const group = t.group(channel, 'g');
      const first = t.bus({ shutdownTimeoutMs: 300 });
      const started = new Recorder();
      let sawAbort = false;
      let callsAfterClose = 0;
      let closed = false;
      await first.subscribe(channel, { group }, async (e, c) => {
        if (closed) callsAfterClose++;
        started.record(e, c.attempt);
        if ((e.data as { slow?: boolean }).slow) {
          await new Promise<void>((resolve) => c.signal.addEventListener('abort', () => resolve(), { once: true }));
          sawAbort = c.signal.aborted;
          throw new Error('interrupted');
        }
      });
      const publisher = t.bus();
      const stuck = await publisher.publish(channel, { type: 'Slow', data: { slow: true } });
      await started.count(1, t.ms(15_000));
      await first.close();
      closed = true;
      assert.ok(sawAbort, 'the handler signal was not aborted at shutdown');

      const later = await publisher.publish(channel, { type: 'Later', data: {} });
      const second = new Recorder();
      const bus2 = t.bus();
      await bus2.subscribe(channel, { group }, (e, c) => second.record(e, c.attempt));
      await second.all([stuck.id, later.id], t.ms(30_000));
      assert.equal(callsAfterClose, 0, 'a handler ran after close() resolved');
      assert.equal((await bus2.listDeadLetters(channel, group)).length, 0, 'an interrupted event was dead-lettered');
    },
  },
  {
    id: 'unroutable',
    rule: 'publishing to a channel with no declared group fails with UnroutableError where the broker declares so',
    async run(t) {
      const channel = t.channel('nogroup');
      const bus = t.bus();
      if (t.capabilities.rejectsUnroutable) {
        await assert.rejects(bus.publish(channel, { type: 'Lost' }), UnroutableError);
      } else {
        await bus.publish(channel, { type: 'Kept' });
      }
    },
  },
  {
    id: 'publish-after-close',
    rule: 'publish and subscribe after close() fail with ClosedError; close() is idempotent',
    async run(t) {
      const channel = t.channel('closed');
      const bus = t.bus();
      await bus.declare(channel, { groups: [t.group(channel, 'g')] });
      await bus.close();
      await bus.close();
      await assert.rejects(bus.publish(channel, { type: 'Late' }), ClosedError);
      await assert.rejects(
        bus.subscribe(channel, { group: 'g' }, () => {}),
        ClosedError,
      );
    },
  },
  {
    id: 'broker-restart',
    rule: 'a broker restart mid-stream loses nothing: publishers and consumers resume without a new bus',
    requires: (_, options) =>
      options.restartBroker
        ? undefined
        : "the harness gives no restartBroker command (pass one to run it; Wharf's own adapters run this case on a private broker in test/conformance.chaos.test.ts)",
    timeoutMs: 240_000,
    async run(t) {
      const channel = t.channel('restart');
      const rec = new Recorder();
      const consumer = t.bus();
      const group = t.group(channel, 'g');
      await consumer.subscribe(channel, { group, concurrency: 4, retry: { maxAttempts: 10, delays: [200] } }, (e, c) =>
        rec.record(e, c.attempt),
      );
      const publisher = t.bus();
      const ids: string[] = [];
      const total = 60;
      const publishing = (async () => {
        for (let n = 0; n < total; n++) {
          const input = { type: 'Tick', id: `tick-${n}-${channel}`, data: { n } };
          // A publish that fails during the outage is retried with the same id: the consumer dedups.
          await untilAccepted(() => publisher.publish(channel, input), 200, 250);
          ids.push(input.id);
          await sleep(50);
        }
      })();
      await sleep(t.ms(700));
      await t.options.restartBroker?.();
      await publishing;
      try {
        await rec.all(ids, t.ms(120_000));
      } catch (error) {
        // Say which events are missing and whether they were dead-lettered, to tell loss from a detour.
        const seen = new Set(rec.ids());
        const missing = ids.filter((id) => !seen.has(id));
        const dead = await consumer.listDeadLetters(channel, group).catch(() => []);
        const detail = dead.map(
          (d) => `${d.event?.id ?? '?'} (${d.info?.reason}: ${d.info?.errorType} ${d.info?.errorMessage})`,
        );
        throw new Error(
          `${(error as Error).message}; missing ${missing.join(', ')}; dead letters: ${detail.join('; ') || 'none'}`,
        );
      }
      assertNoneLost(ids, rec.ids());
    },
  },
];
