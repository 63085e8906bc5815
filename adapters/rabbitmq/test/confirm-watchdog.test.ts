import { strict as assert } from 'node:assert';
import { type FaultProxy, startProxy } from '@wharf/chaos';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, port, unavailable, unique, url } from './helpers.js';

// Publishes swallowed on a link that never fails: the fault proxy drops both directions of the
// producer's own connection for 2 s (whole chunks, so the frame streams stay parseable). The broker
// never sees those publishes, so its confirm numbering falls behind amqplib's.

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  // One after the other: buses before the proxy they talk through.
  for (const b of toClose.splice(0)) await b.close().catch(() => undefined);
  for (const [c, g] of created.splice(0)) await cleanup(c, g).catch(() => undefined);
});

async function run(confirmStallMs: number) {
  const channel = unique('confirms');
  const group = unique('g');
  created.push([channel, [group]]);
  const proxy: FaultProxy = await startProxy({ target: port });
  const producer = createBus({
    adapter: createRabbitMqAdapter({
      url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
      logger: silentLogger,
      confirmStallMs,
      connectTimeoutMs: 1_000,
    }),
    logger: silentLogger,
    publishTimeoutMs: 15_000,
    shutdownTimeoutMs: 1_000,
  });
  const consumer = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
  toClose.push(consumer, producer, proxy);
  const rec = new Recorder();
  await consumer.subscribe(channel, { group }, async (e, c) => rec.record(e, c.attempt));
  const outcomes = new Map<string, 'confirmed' | 'rejected' | 'pending'>();
  const publishes: Promise<void>[] = [];
  const publish = async (phase: string, n: number, gapMs: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const id = `${phase}-${i}`;
      outcomes.set(id, 'pending');
      publishes.push(
        producer.publish(channel, { type: 'Tick', id, data: { i } }).then(
          () => void outcomes.set(id, 'confirmed'),
          () => void outcomes.set(id, 'rejected'),
        ),
      );
      await sleep(gapMs);
    }
  };
  await publish('before', 5, 20);
  await Promise.all(publishes);
  proxy.set({ kind: 'blackhole' });
  await publish('gap', 10, 100);
  await sleep(1_000);
  const dropped = proxy.stats().droppedBytes;
  proxy.heal();
  await publish('after', 10, 20);
  return { rec, outcomes, publishes, dropped };
}

describe.skipIf(unavailable !== undefined)('rabbitmq publisher confirms on a link that drops data', () => {
  it('without the confirm watchdog, the broker confirms publishes it never received', async () => {
    const { rec, outcomes, dropped } = await run(0);
    assert.ok(dropped > 0, 'the proxy dropped nothing: the fault did not happen');
    await sleep(3_000);
    const received = new Set(rec.ids());
    const falselyConfirmed = [...outcomes].filter(([id, o]) => o === 'confirmed' && !received.has(id));
    assert.ok(falselyConfirmed.length > 0, 'expected confirmed-but-never-stored publishes (the skew this test shows)');
  });

  it('the confirm watchdog drops the silent connection: every confirmed publish is stored, none stays pending', async () => {
    const { rec, outcomes, publishes, dropped } = await run(1_000);
    assert.ok(dropped > 0, 'the proxy dropped nothing: the fault did not happen');
    await Promise.all(publishes);
    const confirmed = [...outcomes].filter(([, o]) => o === 'confirmed').map(([id]) => id);
    assert.equal(confirmed.length, outcomes.size, `not confirmed: ${JSON.stringify([...outcomes])}`);
    await rec.all(confirmed, 15_000);
  });
});
