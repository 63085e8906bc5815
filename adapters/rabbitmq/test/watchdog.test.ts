import { strict as assert } from 'node:assert';
import { type FaultProxy, startProxy } from '@wharf/chaos';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, type Incident, silentLogger } from '@wharf/core';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, PREFIX, port, unavailable, unique, url, withChannel } from './helpers.js';

// Deliveries lost on a link that never fails: the fault proxy swallows broker→client bytes on the
// consumer's own connection only (whole chunks, so the AMQP frame stream stays parseable), while the
// broker (the shared node, untouched) counts the deliveries as unacknowledged.

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  // One after the other: buses before the proxy they talk through.
  for (const b of toClose.splice(0)) await b.close().catch(() => undefined);
  for (const [c, g] of created.splice(0)) await cleanup(c, g).catch(() => undefined);
});

const PREFETCH = 8;

/** A consumer bus through a fault proxy, a producer bus straight to the broker, on a fresh channel. */
async function connect(options: { consumerWatchdogMs: number; heartbeatSeconds?: number }) {
  const channel = unique('watchdog');
  const group = unique('g');
  created.push([channel, [group]]);
  const proxy: FaultProxy = await startProxy({ target: port });
  const incidents: Incident[] = [];
  const consumer = createBus({
    adapter: createRabbitMqAdapter({
      url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
      logger: silentLogger,
      ...options,
    }),
    logger: silentLogger,
    shutdownTimeoutMs: 1_000,
    observer: { onIncident: (incident) => incidents.push(incident) },
  });
  const producer = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
  toClose.push(consumer, producer, proxy);
  const rec = new Recorder();
  await consumer.subscribe(channel, { group, concurrency: PREFETCH }, async (e, c) => {
    rec.record(e, c.attempt);
  });
  const publish = async (n: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await producer.publish(channel, { type: 'Tick', data: { i } })).id);
    return ids;
  };
  return { consumer, proxy, rec, incidents, publish, queue: `${PREFIX}.${channel}/${group}` };
}

async function setup(consumerWatchdogMs: number) {
  const { consumer, proxy, rec, incidents, publish, queue } = await connect({ consumerWatchdogMs });
  // Link healthy: everything arrives.
  const before = await publish(20);
  await rec.all(before, 10_000);
  // The broker→client direction goes dark: the broker sends a prefetch window's worth of deliveries
  // that never arrive, then waits for their acks. Heal once the broker is quiet (prefetch full), so
  // the next bytes start on a frame boundary and the connection stays healthy.
  proxy.set({ kind: 'blackhole', direction: 'downstream' });
  const during = await publish(40);
  await sleep(1_500);
  const dropped = proxy.stats().droppedBytes;
  proxy.heal();
  return { consumer, proxy, rec, incidents, sent: [...before, ...during], dropped, queue, publish };
}

describe.skipIf(unavailable !== undefined)('rabbitmq consumer watchdog (deliveries lost on a live link)', () => {
  it('without the watchdog the consumer stalls: the broker holds a full prefetch window unacked', async () => {
    const { rec, sent, dropped, queue } = await setup(0);
    assert.ok(dropped > 0, 'the proxy dropped no deliveries: the fault did not happen');
    await sleep(3_000);
    const missing = sent.filter((id) => !rec.ids().includes(id));
    assert.equal(missing.length, 40, `expected all 40 events sent during the drop to be stuck, ${missing.length} are`);
    const ready = await withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount);
    assert.equal(ready, 40 - PREFETCH, 'the broker should hold one prefetch window unacked and the rest ready');
  });

  it('the watchdog recycles the stalled channel: every event arrives, one stalled incident names the group', async () => {
    const { consumer, rec, incidents, sent, dropped, queue, publish } = await setup(1_000);
    assert.ok(dropped > 0, 'the proxy dropped no deliveries: the fault did not happen');
    await rec.all(sent, 15_000);
    const stalled = incidents.filter((i) => i.kind === 'stalled');
    assert.equal(stalled.length, 1, `expected one stalled incident, got ${JSON.stringify(incidents)}`);
    const [incident] = stalled as [Incident];
    assert.equal(incident.component, 'rabbitmq');
    assert.equal(incident.details?.queue, queue);
    assert.equal(incident.details?.ready, 40 - PREFETCH);
    assert.equal(incident.details?.unsettled, 0);
    assert.ok(consumer.stats().incidents >= 1);
    // The new channel keeps consuming, and an idle consumer of an empty queue is not recycled.
    const after = await publish(10);
    await rec.all(after, 10_000);
    await sleep(2_500);
    assert.equal(incidents.filter((i) => i.kind === 'stalled').length, 1, 'an idle consumer was recycled');
    const ready = await withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount);
    assert.equal(ready, 0);
  });
});

describe.skipIf(unavailable !== undefined)('rabbitmq consumer watchdog (the last deliveries lost in a silence)', () => {
  it('recycles an idle consumer holding nothing once its link was silent: the lost deliveries arrive', async () => {
    // A silence is 3/4 of the heartbeat (1.5 s) without a byte; amqplib drops the connection only
    // after two heartbeats (4 s), so the 2.2 s black hole below keeps it open.
    const { proxy, rec, incidents, publish } = await connect({ consumerWatchdogMs: 1_000, heartbeatSeconds: 2 });
    await rec.all(await publish(5), 10_000);
    // Fewer than the prefetch: the broker sends them all into the dark and the queue has nothing
    // ready, so the ready-count probe sees nothing wrong; the broker would wait 30 min for their acks.
    proxy.set({ kind: 'blackhole', direction: 'downstream' });
    const lost = await publish(3);
    await sleep(2_200);
    const dropped = proxy.stats().droppedBytes;
    proxy.heal();
    assert.ok(dropped > 0, 'the proxy dropped no deliveries: the fault did not happen');
    await rec.all(lost, 10_000);
    const stalled = incidents.filter((i) => i.kind === 'stalled');
    assert.equal(stalled.length, 1, `expected one stalled incident, got ${JSON.stringify(incidents)}`);
    assert.equal(stalled[0]?.details?.afterSilence, true);
    assert.equal(stalled[0]?.details?.unsettled, 0);
  });
});
