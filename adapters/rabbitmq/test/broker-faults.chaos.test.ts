import { strict as assert } from 'node:assert';
import { Recorder, sleep } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { PrivateNode, privateNodeUnavailable } from './private-node.js';

// Issue 13: `kill -9` of the broker and a restart on the same data, and SIGSTOP pauses (shorter and
// longer than the heartbeat), under publish + consume load, on a node of our own. Nothing confirmed may be lost, every publish settles (confirmed, or a typed
// error), the consumer resumes without a restart of the service. Recovery = node accepting
// connections again -> first delivery.
describe.skipIf(privateNodeUnavailable !== undefined)('rabbitmq broker faults under load (private node)', () => {
  let node: PrivateNode;
  const toClose: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    node = await PrivateNode.start('kill');
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled(toClose.map((b) => b.close()));
    await node?.destroy();
  }, 120_000);

  /**
   * Publishes in batches of five and consumes while `fault` runs; once it resolves (the broker is
   * back), waits for the first delivery (the recovery time), then checks that every confirmed event
   * arrived and every failed publish failed with a typed error.
   */
  async function underLoad(
    label: string,
    heartbeatSeconds: number,
    fault: () => Promise<void>,
    expectDrop: boolean,
  ): Promise<void> {
    let drops = 0;
    const logger = {
      ...silentLogger,
      warn: (message: string) => {
        if (message.includes('lost the')) drops++;
      },
    };
    const bus = () => {
      const b = createBus({
        adapter: createRabbitMqAdapter({ url: node.url, logger, heartbeatSeconds }),
        logger: silentLogger,
        shutdownTimeoutMs: 1_000,
      });
      toClose.push(b);
      return b;
    };
    const channel = `fault-${label}`;
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
    await fault();
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
    await Promise.allSettled(toClose.splice(0).map((b) => b.close()));
    // The fault must have been felt: a kill or a pause past the heartbeat drops the connections.
    if (expectDrop) assert.ok(drops > 0, 'no connection was lost: the fault did not reach the clients');
    process.stdout.write(
      `[${label}] ${confirmed.length} confirmed, ${failures.length} failed with a typed error, ${rec.received.length - received.size} duplicate deliveries, ${drops} connections lost, fault end -> first delivery ${recoveryMs} ms\n`,
    );
  }

  it('loses nothing confirmed and resumes consuming after kill -9 and restart', { timeout: 240_000 }, async () => {
    await underLoad(
      'kill9',
      5,
      async () => {
        await node.kill9();
        await sleep(1_000);
        await node.boot();
      },
      true,
    );
  });

  it('a 2 s SIGSTOP of the broker: nothing lost, everything resumes', { timeout: 240_000 }, async () => {
    await underLoad(
      'pause2s',
      5,
      async () => {
        node.pause();
        await sleep(2_000);
        node.resume();
      },
      false,
    );
  });

  it('a SIGSTOP longer than the heartbeat: connections are dropped and restored, nothing lost', {
    timeout: 240_000,
  }, async () => {
    await underLoad(
      'pause8s',
      2,
      async () => {
        node.pause();
        await sleep(8_000);
        node.resume();
      },
      true,
    );
  });
});
