import { strict as assert } from 'node:assert';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, type Incident, silentLogger } from '@wharf/core';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, PREFIX, unavailable, unique, url, withChannel } from './helpers.js';

// basic.cancel from the broker: the consumer's queue went away under it (deleted here; a quorum
// queue replica restarting under a consumer does the same). Before, the subscription only logged it
// and never consumed again: a silent, permanent stall.

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  for (const b of toClose.splice(0)) await b.close().catch(() => undefined);
  for (const [c, g] of created.splice(0)) await cleanup(c, g).catch(() => undefined);
});

/** Resolves once the broker counts a consumer on `queue` again (the subscription redeclared and consumed). */
async function consumerBack(queue: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const consumers = await withChannel(async (ch) => (await ch.checkQueue(queue)).consumerCount).catch(() => 0);
    if (consumers > 0) return;
    if (Date.now() > deadline) throw new Error(`no consumer on "${queue}" within ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe.skipIf(unavailable !== undefined)('rabbitmq: the broker cancels a consumer (real broker)', () => {
  it('the subscription reports it, redeclares its queue and consumes again; later events all arrive', async () => {
    const channel = unique('cancel');
    const group = unique('g');
    created.push([channel, [group]]);
    const incidents: Incident[] = [];
    const consumer = createBus({
      adapter: createRabbitMqAdapter({ url, logger: silentLogger }),
      logger: silentLogger,
      observer: { onIncident: (incident) => incidents.push(incident) },
    });
    const producer = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
    toClose.push(consumer, producer);
    const rec = new Recorder();
    await consumer.subscribe(channel, { group, concurrency: 4 }, async (e, c) => {
      rec.record(e, c.attempt);
    });
    const publish = async (n: number): Promise<string[]> => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await producer.publish(channel, { type: 'Tick', data: { i } })).id);
      return ids;
    };
    await rec.all(await publish(10), 10_000);

    const queue = `${PREFIX}.${channel}/${group}`;
    await withChannel((ch) => ch.deleteQueue(queue));
    await consumerBack(queue, 10_000);

    const cancelled = incidents.filter((i) => i.kind === 'stalled');
    assert.equal(cancelled.length, 1, `expected one incident for the cancel, got ${JSON.stringify(incidents)}`);
    const [incident] = cancelled as [Incident];
    assert.equal(incident.component, 'rabbitmq');
    assert.equal(incident.channel, channel);
    assert.equal(incident.group, group);
    assert.match(incident.message, /cancelled the consumer/);

    // The queue is bound to the channel's exchange again: new events reach the new consumer.
    const after = await publish(20);
    await rec.all(after, 10_000);
    const seen = rec.ids();
    assert.equal(new Set(seen).size, seen.length, 'an event was delivered twice');
  });

  it('a consumer cancelled while deliveries are in its handlers: they settle without error and nothing stalls', async () => {
    const channel = unique('cancel-busy');
    const group = unique('g');
    created.push([channel, [group]]);
    const consumer = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
    const producer = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
    toClose.push(consumer, producer);
    const rec = new Recorder();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding = 0;
    await consumer.subscribe(channel, { group, concurrency: 4 }, async (e, c) => {
      if ((e.data as { hold?: boolean }).hold === true) {
        holding++;
        await gate;
      }
      rec.record(e, c.attempt);
    });
    for (let i = 0; i < 4; i++) await producer.publish(channel, { type: 'Tick', data: { hold: true, i } });
    while (holding < 4) await sleep(20);

    const queue = `${PREFIX}.${channel}/${group}`;
    await withChannel((ch) => ch.deleteQueue(queue));
    await consumerBack(queue, 10_000);
    release();

    const after: string[] = [];
    for (let i = 0; i < 20; i++) after.push((await producer.publish(channel, { type: 'Tick', data: { i } })).id);
    await rec.all(after, 10_000);
    // The held handlers finished too; their acks went to a closed channel (the core reports that).
    await rec.count(24, 5_000);
  });
});
