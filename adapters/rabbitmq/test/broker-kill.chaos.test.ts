import { strict as assert } from 'node:assert';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { PrivateNode, privateNodeUnavailable } from './private-node.js';

// Issue 13: `kill -9` of the broker and a restart on the same data, under publish + consume load,
// on a node of our own. Nothing confirmed may be lost, every publish settles (confirmed, or a typed
// error), the consumer resumes without a restart of the service. Recovery = node accepting
// connections again -> first delivery.
describe.skipIf(privateNodeUnavailable !== undefined)('rabbitmq broker kill -9 under load (private node)', () => {
  let node: PrivateNode;
  const toClose: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    node = await PrivateNode.start('kill');
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled(toClose.map((b) => b.close()));
    await node?.destroy();
  }, 120_000);

  it('loses nothing confirmed and resumes consuming after kill -9 and restart', { timeout: 240_000 }, async () => {
    const bus = () => {
      const b = createBus({
        adapter: createRabbitMqAdapter({ url: node.url, logger: silentLogger, heartbeatSeconds: 5 }),
        logger: silentLogger,
        shutdownTimeoutMs: 1_000,
      });
      toClose.push(b);
      return b;
    };
    const channel = 'kill9';
    const group = 'g';
    const rec = new Recorder();
    await bus().subscribe(channel, { group, concurrency: 16 }, (e, c) => rec.record(e, c.attempt));
    const publisher = bus();
    const confirmed: string[] = [];
    const failures: Error[] = [];
    let stop = false;
    const publishing = (async () => {
      for (let n = 0; !stop; n++) {
        const batch = Array.from({ length: 5 }, (_, i) =>
          publisher.publish(channel, { type: 'Tick', data: { n, i } }).then(
            (e) => confirmed.push(e.id),
            (error: Error) => failures.push(error),
          ),
        );
        await Promise.all(batch);
        await sleep(10);
      }
    })();
    await rec.count(50, 60_000);
    await node.kill9();
    await sleep(1_000);
    const bootMs = await node.boot();
    const up = performance.now();
    const before = rec.received.length;
    await rec.until(() => rec.received.length > before, 'a delivery after the restart', 60_000);
    const recoveryMs = Math.round(performance.now() - up);
    await sleep(1_000);
    stop = true;
    await publishing;
    await rec.all(confirmed, 60_000);
    // Every failure is a typed, named error (the broker was gone), never an untyped one or a hang.
    for (const f of failures) assert.match(f.name, /PublishError|PublishTimeoutError/, f.message);
    const received = new Set(rec.ids());
    const lost = confirmed.filter((id) => !received.has(id));
    assert.deepEqual(lost, [], 'confirmed events never delivered');
    process.stdout.write(
      `[kill9] ${confirmed.length} confirmed, ${failures.length} failed with a typed error, ${rec.received.length - received.size} duplicate deliveries; node boot ${bootMs} ms, boot -> first delivery ${recoveryMs} ms\n`,
    );
  });
});
