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
