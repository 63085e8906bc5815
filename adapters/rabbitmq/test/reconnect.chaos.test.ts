import { strict as assert } from 'node:assert';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, ensureBrokerRunning, restartBroker, unavailable, unique, url } from './helpers.js';

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  await ensureBrokerRunning();
  await Promise.allSettled(toClose.splice(0).map((b) => b.close()));
  for (const [c, g] of created.splice(0)) await cleanup(c, g).catch(() => undefined);
});

function bus() {
  const b = createBus({
    adapter: createRabbitMqAdapter({ url, logger: silentLogger, publishWaitMs: 60_000 }),
    logger: silentLogger,
    shutdownTimeoutMs: 1_000,
  });
  toClose.push(b);
  return b;
}

describe.skipIf(unavailable !== undefined)('rabbitmq reconnect (restarts the broker)', () => {
  it('publishes during a restart wait for the broker and none fails or is lost; consumers resume', async () => {
    const channel = unique('chaos');
    const group = unique('g');
    created.push([channel, [group]]);
    const rec = new Recorder();
    await bus().subscribe(channel, { group, concurrency: 8 }, (e, c) => rec.record(e, c.attempt));
    const publisher = bus();
    const sent: string[] = [];
    const failures: unknown[] = [];
    let stop = false;
    const publishing = (async () => {
      for (let n = 0; !stop || n < 40; n++) {
        // Several in flight at once, so some are unconfirmed when the connection drops.
        const batch = Array.from({ length: 5 }, (_, i) =>
          publisher.publish(channel, { type: 'Tick', data: { n, i } }).then(
            (e) => sent.push(e.id),
            (error: unknown) => failures.push(error),
          ),
        );
        await Promise.all(batch);
        await sleep(20);
      }
    })();
    await sleep(500);
    try {
      await restartBroker(1_500);
    } finally {
      await ensureBrokerRunning();
    }
    await sleep(500);
    stop = true;
    await publishing;
    assert.deepEqual(failures, [], 'a publish failed although the broker came back within publishWaitMs');
    await rec.all(sent, 60_000);
    const unique_ = new Set(rec.ids());
    for (const id of sent) assert.ok(unique_.has(id), `lost ${id}`);
  });

  it('redelivers a message whose handler was running when the connection dropped', async () => {
    const channel = unique('chaos-inflight');
    const group = unique('g');
    created.push([channel, [group]]);
    const rec = new Recorder();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // dedup off: the first run completes after the drop, so the core's dedup would (rightly) skip the redelivery.
    await bus().subscribe(channel, { group, dedup: false }, async (e, c) => {
      rec.record(e, c.attempt);
      if (rec.received.length === 1) await gate;
    });
    const sent = await bus().publish(channel, { type: 'Held', data: {} });
    await rec.count(1, 10_000);
    try {
      await restartBroker(500);
    } finally {
      await ensureBrokerRunning();
    }
    release();
    await rec.count(2, 60_000);
    assert.deepEqual(rec.ids(), [sent.id, sent.id]);
  });
});
