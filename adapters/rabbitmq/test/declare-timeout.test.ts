import { strict as assert } from 'node:assert';
import { type FaultProxy, startProxy } from '@wharf/chaos';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, type Logger, silentLogger } from '@wharf/core';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, port, unavailable, unique, url } from './helpers.js';

// A declaration the broker never answers: RabbitMQ 3.10 does this for about a minute to a declare or
// basic.consume on a quorum queue whose replica is still starting after a restart, then closes the
// connection with 541. A saga killed at start-up hung 66 s in subscribe() and then crashed on the raw
// "Channel ended" error. Here the fault proxy swallows the declaration (the shared node is untouched):
// after `declareTimeoutMs` the connection is replaced and the declaration done again.

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  for (const b of toClose.splice(0)) await b.close().catch(() => undefined);
  for (const [c, g] of created.splice(0)) await cleanup(c, g).catch(() => undefined);
});

describe.skipIf(unavailable !== undefined)('rabbitmq: a declaration left unanswered (fault proxy)', () => {
  it('subscribe replaces the connection after declareTimeoutMs and completes on the new one', async () => {
    const proxy: FaultProxy = await startProxy({ target: port });
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => warnings.push(message) };
    const consumer = createBus({
      adapter: createRabbitMqAdapter({
        url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
        logger,
        declareTimeoutMs: 1_500,
      }),
      logger: silentLogger,
    });
    const producer = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
    toClose.push(consumer, producer, proxy);
    const channel = unique('declare-timeout');
    const group = unique('g');
    created.push([channel, [group]]);
    await consumer.connect();
    // The declaration goes into a black hole; the hole heals before the bound, but the frames are gone.
    proxy.set({ kind: 'blackhole' });
    const rec = new Recorder();
    const subscribing = consumer.subscribe(channel, { group }, async (e, c) => {
      rec.record(e, c.attempt);
    });
    await sleep(500);
    proxy.heal();
    const started = Date.now();
    await subscribing;
    assert.ok(
      warnings.some((w) => /left it unanswered for 1500 ms/.test(w)),
      `expected the unanswered declaration to be reported, got ${JSON.stringify(warnings)}`,
    );
    assert.ok(Date.now() - started < 15_000, 'subscribe did not complete after the connection was replaced');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await producer.publish(channel, { type: 'Tick', data: { i } })).id);
    await rec.all(ids, 10_000);
  });
});

describe.skipIf(unavailable !== undefined)(
  'rabbitmq: reading dead letters and backlog left unanswered (fault proxy)',
  () => {
    // Found as a saga that never ended: killed mid-run, the broker came back, and the saga's read of
    // its dead letters (a passive declare, then basic.get) waited forever on a quorum queue still starting.
    it('listDeadLetters and backlog reject with TimeoutError after declareTimeoutMs', async () => {
      const proxy: FaultProxy = await startProxy({ target: port });
      const bus = createBus({
        adapter: createRabbitMqAdapter({
          url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
          logger: silentLogger,
          declareTimeoutMs: 1_000,
          // No heartbeat: only the bound can end the wait.
          heartbeatSeconds: 0,
        }),
        logger: silentLogger,
      });
      toClose.push(bus, proxy);
      const channel = unique('dl-timeout');
      const group = unique('g');
      created.push([channel, [group]]);
      await bus.declare(channel, { groups: [group] });
      assert.deepEqual(await bus.listDeadLetters(channel, group), []);
      proxy.set({ kind: 'blackhole', direction: 'downstream' });
      for (const read of [() => bus.listDeadLetters(channel, group), () => bus.backlog(channel, group)]) {
        const started = Date.now();
        await assert.rejects(
          read(),
          (error: Error) => error.name === 'TimeoutError' && /did not answer/.test(error.message),
        );
        assert.ok(Date.now() - started < 5_000, `rejected after ${Date.now() - started} ms`);
      }
      proxy.heal();
    });
  },
);
