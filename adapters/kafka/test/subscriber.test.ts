import { strict as assert } from 'node:assert';
import { createEvent, type Delivery, encodeEvent, normalizeRetryPolicy, silentLogger } from '@wharf/core';
import { describe, it } from 'vitest';
import type {
  ClientAdmin,
  ClientConsumer,
  FetchedBatch,
  IncomingRecord,
  KafkaClient,
  OffsetCommit,
  TopicPartitions,
} from '../src/client.js';
import { encode } from '../src/codec.js';
import { resolveOptions } from '../src/options.js';
import type { Publisher } from '../src/publisher.js';
import { Subscriber } from '../src/subscriber.js';
import { Topology } from '../src/topology.js';

/**
 * The subscriber against a fake client (no broker), to drive assignments and batches in an exact
 * order: what a new group skips (records published before it started) and what it must never skip.
 */
function harness(ends: { high: number }) {
  const commits: OffsetCommit[][] = [];
  const seeks: [string, number, string][] = [];
  let onBatch: ((batch: FetchedBatch) => Promise<void>) | undefined;
  let assign: ((assignment: readonly TopicPartitions[]) => void) | undefined;
  const admin = {
    createTopics: async () => {},
    listTopics: async () => [],
    // Nothing is ever committed for the group: as if every initialisation commit were lost.
    committed: async () => [{ partition: 0, offset: '-1', metadata: null }],
    ends: async () => [{ partition: 0, low: '0', high: String(ends.high) }],
  } as unknown as ClientAdmin;
  const consumer: ClientConsumer = {
    async run(_topics, cb) {
      onBatch = cb;
    },
    onAssigned(listener) {
      assign = listener;
    },
    onCrash() {},
    pause() {},
    resume() {},
    seek(topic, partition, offset) {
      seeks.push([topic, partition, offset]);
    },
    async commit(offsets) {
      commits.push([...offsets]);
    },
    async disconnect() {},
  };
  const client = { consumer: () => consumer, admin: async () => admin } as unknown as KafkaClient;
  const options = resolveOptions('kafka://127.0.0.1:9092', { connectTimeoutMs: 200, sessionTimeoutMs: 6_000 });
  const topology = new Topology(options, client, async () => admin, silentLogger);
  const handled: string[] = [];
  const subscriber = new Subscriber(
    { options, client, topology, publisher: {} as Publisher, admin: async () => admin, logger: silentLogger },
    { channel: 'c', group: 'g', concurrency: 4, policy: normalizeRetryPolicy({ maxAttempts: 1 }) },
    async (delivery: Delivery) => {
      handled.push(String(delivery.decoded.ok && delivery.decoded.message.attributes.id));
      await delivery.ack();
    },
  );
  const topic = topology.names.channel('c');
  const record = (offset: number): IncomingRecord => {
    const out = encode(encodeEvent(createEvent({ type: 'T', id: `e${offset}`, data: { offset } }, 'urn:test')));
    const headers: Record<string, Buffer> = {};
    for (const [name, value] of Object.entries(out.headers)) headers[name] = Buffer.from(String(value));
    return { topic, partition: 0, offset: String(offset), key: null, value: out.value, headers, timestamp: '0' };
  };
  const batch = (from: number, to: number): FetchedBatch => ({
    topic,
    partition: 0,
    records: Array.from({ length: to - from }, (_, i) => record(from + i)),
    heartbeat: async () => {},
    resolve() {},
    isActive: () => true,
  });
  return {
    commits,
    seeks,
    handled,
    subscriber,
    topic,
    batch,
    assign: (partitions: TopicPartitions[]) => (assign as NonNullable<typeof assign>)(partitions),
    deliver: (b: FetchedBatch) => (onBatch as NonNullable<typeof onBatch>)(b),
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('kafka subscriber: where a new group starts', () => {
  it('skips what was published before it started, and never more when a later assignment starts again', async () => {
    const ends = { high: 5 };
    const h = harness(ends);
    const starting = h.subscriber.start();
    await settle();
    h.assign([{ topic: h.topic, partitions: [0] }]);
    await starting;
    assert.deepEqual(h.commits[0], [{ topic: h.topic, partition: 0, offset: '5' }], 'the start is the end at the join');

    // kafkajs fetched from the earliest offset before that commit landed: records 0-4 predate the group.
    await h.deliver(h.batch(0, 3));
    assert.deepEqual(h.seeks, [[h.topic, 0, '5']], 'a batch entirely before the start seeks to it');
    assert.deepEqual(h.handled, []);

    // Five more events are published after subscribe() resolved; then the group rebalances and the
    // broker still reports no committed offset (the first commit was lost): the start stays at 5.
    ends.high = 10;
    h.assign([{ topic: h.topic, partitions: [0] }]);
    await settle();
    assert.deepEqual(h.commits.at(-1), [{ topic: h.topic, partition: 0, offset: '5' }], 'not the end of now (10)');

    await h.deliver(h.batch(3, 10));
    assert.deepEqual(h.handled, ['e5', 'e6', 'e7', 'e8', 'e9'], 'everything published after the start is delivered');
    await h.subscriber.closed(1_000);
  });
});
