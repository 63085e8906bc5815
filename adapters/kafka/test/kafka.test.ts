import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { assertPerKeyOrder, brokersRequired, Recorder, sleep } from '@wharf/conformance';
import { type Bus, createBus, type Delivery, silentLogger, type WireMessage } from '@wharf/core';
import { afterAll, describe, it } from 'vitest';
import { adapter, cleanupChannel, KAFKA_URL, names, rawClient, skipKafka, unavailable } from './helpers.js';

const created: [string, string[]][] = [];
const buses: Bus[] = [];

function fresh(label: string): string {
  const channel = `kt-${label}-${randomBytes(4).toString('hex')}`;
  created.push([channel, []]);
  return channel;
}
function groupOf(channel: string, label: string): string {
  created.find(([c]) => c === channel)?.[1].push(label);
  return label;
}
function bus(options: Parameters<typeof adapter>[0] = {}): Bus {
  const b = createBus({ logger: silentLogger, adapter: adapter(options), shutdownTimeoutMs: 2_000 });
  buses.push(b);
  return b;
}

describe.skipIf(skipKafka)('kafka adapter on a real broker', () => {
  if (unavailable && brokersRequired()) {
    it('broker is reachable', () => {
      throw new Error(`${unavailable} — CI requires Kafka (bash scripts/kafka.sh up)`);
    });
    return;
  }
  afterAll(async () => {
    await Promise.allSettled(buses.map((b) => b.close()));
    for (const [channel, groups] of created) await cleanupChannel(channel, groups).catch(() => undefined);
  });

  it('keeps per-key order across partitions while keys run in parallel', async () => {
    const channel = fresh('order');
    const rec = new Recorder();
    let running = 0;
    let peak = 0;
    await bus().subscribe(channel, { group: groupOf(channel, 'g'), concurrency: 8 }, async (e, c) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(((e.data as { n: number }).n * 7) % 11);
      running--;
      rec.record(e, c.attempt);
    });
    const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
    const publisher = bus();
    const sent: { id: string; key: string }[] = [];
    for (let i = 0; i < 240; i += 40) {
      const batch = await publisher.publishBatch(
        channel,
        Array.from({ length: 40 }, (_, j) => ({
          type: 'Step',
          partitionkey: keys[(i + j) % keys.length] as string,
          data: { n: i + j },
        })),
      );
      for (const e of batch) sent.push({ id: e.id, key: e.partitionkey as string });
    }
    await rec.all(
      sent.map((s) => s.id),
      30_000,
    );
    assertPerKeyOrder(
      sent,
      rec.received.map((r) => ({ id: r.event.id, key: r.event.partitionkey })),
    );
    const admin = await rawClient().admin;
    const ends = await admin.ends(names.channel(channel));
    assert.equal(ends.length, 3, 'the channel topic has 3 partitions');
    assert.ok(
      ends.every((e) => Number(e.high) > 0),
      `every partition holds events: ${JSON.stringify(ends)}`,
    );
    assert.ok(peak >= 2, `keys did not run in parallel (peak ${peak})`);
  });

  it('keeps retries private to the failing group', async () => {
    const channel = fresh('private');
    const failing = groupOf(channel, 'failing');
    const healthy = groupOf(channel, 'healthy');
    const a = new Recorder();
    const b = new Recorder();
    const policy = { maxAttempts: 3, delays: [200] };
    await bus().subscribe(channel, { group: failing, retry: policy }, (e, c) => {
      a.record(e, c.attempt);
      if (c.attempt === 1) throw new Error('first try fails');
    });
    await bus().subscribe(channel, { group: healthy, retry: policy }, (e, c) => b.record(e, c.attempt));
    const sent = await bus().publishBatch(
      channel,
      Array.from({ length: 5 }, (_, n) => ({ type: 'Job', data: { n } })),
    );
    await a.count(10, 20_000);
    await b.count(5, 20_000);
    await sleep(1_000);
    assert.equal(b.received.length, 5, 'the healthy group saw retries of the other group');
    assert.ok(b.received.every((r) => r.attempt === 1));
    assert.deepEqual(a.received.map((r) => r.attempt).sort(), [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    const admin = await rawClient().admin;
    const retryOfFailing = await admin.ends(names.retry(channel, failing, 200));
    const retryOfHealthy = await admin.ends(names.retry(channel, healthy, 200));
    assert.equal(Number(retryOfFailing[0]?.high), 5, 'the failing group wrote its retries to its own topic');
    assert.equal(Number(retryOfHealthy[0]?.high), 0, 'the healthy group has no retries');
    assert.deepEqual(new Set(b.ids()), new Set(sent.map((e) => e.id)));
  });

  it('commits offsets only up to the first unsettled record', async () => {
    const channel = fresh('commit');
    const group = groupOf(channel, 'g');
    const first = adapter({ partitions: 1 });
    await first.connect();
    const policy = { maxAttempts: 3, delays: [100, 100], jitter: 0 };
    const wire = (n: number): WireMessage => ({
      attributes: { specversion: '1.0', id: `e-${n}`, source: '/t', type: 'T', datacontenttype: 'application/json' },
      body: Buffer.from(JSON.stringify({ n })),
    });
    const held: { delivery: Delivery; finish: () => void }[] = [];
    const seen: number[] = [];
    const sub = await first.subscribe({ channel, group, concurrency: 4, policy }, async (delivery) => {
      const n = JSON.parse(Buffer.from(delivery.decoded.ok ? delivery.decoded.message.body : []).toString()).n;
      seen.push(n);
      if (n === 2) {
        // A handler that has not finished yet: its record is unsettled while the others are acked.
        return new Promise<void>((finish) => held.push({ delivery, finish }));
      }
      await delivery.ack();
    });
    await first.publish(channel, [0, 1, 2, 3, 4].map(wire));
    const admin = await rawClient().admin;
    const deadline = Date.now() + 15_000;
    while (seen.length < 5 && Date.now() < deadline) await sleep(50);
    await sleep(800); // several commit intervals
    const committed = await admin.committed(names.group(channel, group), names.channel(channel));
    assert.equal(committed[0]?.offset, '2', 'offset committed past an unsettled record');
    await sub.stop();
    await held[0]?.delivery.release();
    held[0]?.finish();
    await first.close();

    const second = new Recorder();
    const b2 = bus({ partitions: 1 });
    await b2.subscribe(channel, { group, retry: policy }, (e, c) => second.record(e, c.attempt));
    await second.all(['e-2', 'e-3', 'e-4'], 20_000);
    assert.ok(!second.ids().includes('e-0') && !second.ids().includes('e-1'), 'settled records came back');
  });

  it('dead-letters a record that crashes its consumer on every delivery', async () => {
    const channel = fresh('crash');
    const group = groupOf(channel, 'g');
    const publisher = bus();
    await publisher.declare(channel, { groups: [group], retry: { maxAttempts: 2, delays: [100] } });
    const poison = await publisher.publish(channel, { type: 'Poison', data: { kills: true } });
    const child = fileURLToPath(new URL('./fixtures/crash-child.ts', import.meta.url));
    const attempts: number[] = [];
    let deadLettered = false;
    for (let run = 0; run < 5 && !deadLettered; run++) {
      const proc = spawn(
        process.execPath,
        ['--conditions=wharf-source', '--import', 'tsx', child, KAFKA_URL, channel, group],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      proc.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      // Either the child dies on the poison, or it dead-letters it and keeps running.
      const outcome = await Promise.race([
        exited.then((code) => ({ code })),
        (async () => {
          const deadline = Date.now() + 40_000;
          while (Date.now() < deadline) {
            if ((await publisher.listDeadLetters(channel, group)).length > 0) return { dead: true };
            await sleep(500);
          }
          return { dead: false };
        })(),
      ]);
      for (const m of out.matchAll(/attempt (\d+)/g)) attempts.push(Number(m[1]));
      if ('dead' in outcome) {
        deadLettered = outcome.dead;
        proc.kill('SIGTERM');
        await exited;
      } else {
        assert.equal(outcome.code, 3, `the consumer process exited with ${outcome.code}:\n${out}`);
      }
    }
    assert.ok(deadLettered, 'the poison event never reached the dead-letter topic');
    assert.deepEqual(attempts, [1, 2], 'the handler saw the poison once per allowed attempt');
    const [dead] = await publisher.listDeadLetters(channel, group);
    assert.equal(dead?.event?.id, poison.id);
    assert.equal(dead?.info?.reason, 'retries-exhausted');
    assert.equal(dead?.info?.errorType, 'CrashLoopError');
    assert.equal(dead?.info?.attempts, 2);
  }, 120_000);

  it('keeps apart the channels and groups that dotted names used to merge', async () => {
    // Formerly `<base>.b` + group `c` and `<base>` + group `b.c` shared the consumer group and the
    // retry and dead-letter topics `wharf.<base>.b.c…`, and Kafka refused the topic of `<base>_b`
    // next to that of `<base>.b` (names equal once "." and "_" are treated alike).
    const base = fresh('names');
    const dotted = `${base}.b`;
    const underscored = `${base}_b`;
    created.push([dotted, ['c']], [underscored, ['c']]);
    groupOf(base, 'b.c');
    const subscriptions = [
      { channel: dotted, group: 'c' },
      { channel: base, group: 'b.c' },
      { channel: underscored, group: 'c' },
    ];
    assert.equal(
      new Set(subscriptions.map((s) => names.group(s.channel, s.group))).size,
      3,
      'two subscriptions share a consumer group',
    );
    const policy = { maxAttempts: 2, delays: [200], jitter: 0 };
    const recorders = subscriptions.map(() => new Recorder());
    for (const [i, { channel, group }] of subscriptions.entries()) {
      const rec = recorders[i] as Recorder;
      await bus().subscribe(channel, { group, retry: policy }, (e, c) => {
        rec.record(e, c.attempt);
        if (c.attempt === 1) throw new Error('first try fails');
      });
    }
    const publisher = bus();
    const sent: string[][] = [];
    for (const { channel } of subscriptions) {
      const batch = await publisher.publishBatch(
        channel,
        Array.from({ length: 3 }, (_, n) => ({ type: 'Job', data: { n, channel } })),
      );
      sent.push(batch.map((e) => e.id));
    }
    for (const rec of recorders) await rec.count(6, 20_000);
    await sleep(1_000);
    for (const [i, { channel, group }] of subscriptions.entries()) {
      const rec = recorders[i] as Recorder;
      const ids = sent[i] as string[];
      assert.deepEqual(
        rec.received.map((r) => `${r.event.id}@${r.attempt}`).sort(),
        [...ids.map((id) => `${id}@1`), ...ids.map((id) => `${id}@2`)].sort(),
        `${channel}/${group} received another subscription's events or retries`,
      );
    }
  });

  it('keeps its membership while a handler runs longer than the session timeout', async () => {
    const channel = fresh('slow');
    const rec = new Recorder();
    let calls = 0;
    await bus().subscribe(channel, { group: groupOf(channel, 'g') }, async (e, c) => {
      calls++;
      if ((e.data as { slow: boolean }).slow) await sleep(8_000); // session timeout is 6 s
      rec.record(e, c.attempt);
    });
    const publisher = bus();
    const slow = await publisher.publish(channel, { type: 'Slow', data: { slow: true } });
    const next = await publisher.publish(channel, { type: 'Next', data: { slow: false } });
    await rec.all([slow.id, next.id], 30_000);
    await sleep(1_500);
    assert.equal(calls, 2, 'an event was redelivered: the member lost its partitions during the long handler');
  }, 60_000);
});
