import { strict as assert } from 'node:assert';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import createRabbitMqAdapter, { conformanceHarness } from '../src/index.js';
import { PREFIX, unique } from './helpers.js';
import { PrivateNode, privateNodeUnavailable } from './private-node.js';

// Clean broker restarts (stop, down, boot on the same data) with clients connected. They run on a
// node of their own: the shared node is never stopped.
let node: PrivateNode;
const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];

beforeAll(async () => {
  if (privateNodeUnavailable === undefined) node = await PrivateNode.start('reconnect');
}, 180_000);

afterAll(async () => {
  await node?.destroy();
}, 120_000);

afterEach(async () => {
  // Whatever a test did, the node runs again before the next one (boot is a no-op when it is up).
  await node.boot();
  await Promise.allSettled(toClose.splice(0).map((b) => b.close()));
  const { cleanup } = conformanceHarness(node.url, PREFIX);
  for (const [c, g] of created.splice(0)) await cleanup(c, g).catch(() => undefined);
}, 180_000);

function bus() {
  const b = createBus({
    adapter: createRabbitMqAdapter({ url: node.url, logger: silentLogger, publishWaitMs: 120_000 }),
    // A whole node restart (VM boot included) takes tens of seconds on this loaded machine: publishes
    // must wait for it, not time out in the core's gate (default 30 s).
    publishTimeoutMs: 120_000,
    logger: silentLogger,
    shutdownTimeoutMs: 1_000,
  });
  toClose.push(b);
  return b;
}

describe.skipIf(privateNodeUnavailable !== undefined)('rabbitmq reconnect (restarts a private node)', () => {
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
    const outage = await node.restart(1_500);
    process.stdout.write(`[reconnect] node down ${outage} ms (stop + 1.5 s + boot)\n`);
    await sleep(500);
    stop = true;
    await publishing;
    assert.deepEqual(failures, [], 'a publish failed although the broker came back within publishWaitMs');
    await rec.all(sent, 60_000);
    const unique_ = new Set(rec.ids());
    for (const id of sent) assert.ok(unique_.has(id), `lost ${id}`);
  }, 180_000);

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
    await node.restart(500);
    release();
    await rec.count(2, 60_000);
    assert.deepEqual(rec.ids(), [sent.id, sent.id]);
  }, 180_000);
});
