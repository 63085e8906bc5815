import { strict as assert } from 'node:assert';
import {
  createEvent,
  type Delivery,
  encodeEvent,
  type Incident,
  type IncidentSink,
  type Logger,
  normalizeRetryPolicy,
  silentLogger,
} from '@wharf/core';
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
function harness(
  ends: { high: number },
  partitions = 1,
  custom: {
    concurrency?: number;
    onDelivery?: (delivery: Delivery) => Promise<void>;
    logger?: Logger;
    incident?: IncidentSink;
    committed?: { offset: string; metadata: string | null };
  } = {},
) {
  const commits: OffsetCommit[][] = [];
  /** Commits wait for this when set: the test decides when the broker answers. */
  const gate: { answer: Promise<void> | undefined; refuse?: Error } = { answer: undefined };
  const seeks: [string, number, string][] = [];
  let onBatch: ((batch: FetchedBatch) => Promise<void>) | undefined;
  let assign: ((assignment: readonly TopicPartitions[]) => void) | undefined;
  const admin = {
    createTopics: async () => {},
    awaitLeaders: async () => [],
    listTopics: async () => [],
    // Nothing is ever committed for the group: as if every initialisation commit were lost.
    committed: async () =>
      Array.from({ length: partitions }, (_, partition) => ({
        partition,
        offset: custom.committed?.offset ?? '-1',
        metadata: custom.committed?.metadata ?? null,
      })),
    ends: async () =>
      Array.from({ length: partitions }, (_, partition) => ({ partition, low: '0', high: String(ends.high) })),
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
      await gate.answer;
      if (gate.refuse) throw gate.refuse;
    },
    async disconnect() {},
  };
  const client = { consumer: () => consumer, admin: async () => admin } as unknown as KafkaClient;
  const options = resolveOptions('kafka://127.0.0.1:9092', { connectTimeoutMs: 200, sessionTimeoutMs: 6_000 });
  const topology = new Topology(options, client, async () => admin, silentLogger);
  const handled: string[] = [];
  const subscriber = new Subscriber(
    {
      options,
      client,
      topology,
      publisher: {} as Publisher,
      admin: async () => admin,
      logger: custom.logger ?? silentLogger,
    },
    {
      channel: 'c',
      group: 'g',
      concurrency: custom.concurrency ?? 4,
      policy: normalizeRetryPolicy({ maxAttempts: 1 }),
      ...(custom.incident ? { incident: custom.incident } : {}),
    },
    custom.onDelivery ??
      (async (delivery: Delivery) => {
        handled.push(String(delivery.decoded.ok && delivery.decoded.message.attributes.id));
        await delivery.ack();
      }),
  );
  const topic = topology.names.channel('c');
  const record = (offset: number, partition = 0): IncomingRecord => {
    const out = encode(encodeEvent(createEvent({ type: 'T', id: `e${offset}`, data: { offset } }, 'urn:test')));
    const headers: Record<string, Buffer> = {};
    for (const [name, value] of Object.entries(out.headers)) headers[name] = Buffer.from(String(value));
    return { topic, partition, offset: String(offset), key: null, value: out.value, headers, timestamp: '0' };
  };
  const batch = (from: number, to: number, partition = 0): FetchedBatch => ({
    topic,
    partition,
    records: Array.from({ length: to - from }, (_, i) => record(from + i, partition)),
    heartbeat: async () => {},
    resolve() {},
    isActive: () => true,
  });
  return {
    commits,
    gate,
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

describe('kafka subscriber: batches and their commits', () => {
  it('ends a batch once its commit was answered, and the batches of one fetch share one commit request', async () => {
    const h = harness({ high: 0 }, 2);
    const starting = h.subscriber.start();
    await settle();
    h.assign([{ topic: h.topic, partitions: [0, 1] }]);
    await starting;
    // The first batch of each partition records a delivery count first (see #probe); then the steady state.
    await Promise.all([h.deliver(h.batch(0, 1, 0)), h.deliver(h.batch(0, 1, 1))]);
    const before = h.commits.length;

    let answer: () => void = () => {};
    h.gate.answer = new Promise<void>((resolve) => {
      answer = resolve;
    });
    let ended = 0;
    const fetched = [h.deliver(h.batch(1, 4, 0)), h.deliver(h.batch(1, 3, 1))].map((b) => b.then(() => ended++));
    await settle();
    assert.equal(h.handled.length, 2 + 3 + 2, 'every record was handled');
    assert.equal(ended, 0, 'neither batch ends before the broker answered its commit (kafkajs would fetch again)');
    assert.deepEqual(
      h.commits.slice(before),
      [
        [
          { topic: h.topic, partition: 0, offset: '4' },
          { topic: h.topic, partition: 1, offset: '3' },
        ],
      ],
      'one request for both partitions',
    );
    answer();
    await Promise.all(fetched);
    assert.equal(ended, 2);
    h.gate.answer = undefined;
    await h.subscriber.closed(1_000);
  });

  it('stops waiting for a commit the broker never answers once close gives up', async () => {
    const h = harness({ high: 0 });
    const starting = h.subscriber.start();
    await settle();
    h.assign([{ topic: h.topic, partitions: [0] }]);
    await starting;
    await h.deliver(h.batch(0, 1));
    h.gate.answer = new Promise<void>(() => {});
    let ended = false;
    const batch = h.deliver(h.batch(1, 3)).then(() => {
      ended = true;
    });
    await settle();
    assert.equal(ended, false);
    await h.subscriber.closed(100);
    await batch;
    assert.equal(ended, true, 'the batch was released by close');
  });
});

describe('kafka subscriber: slots', () => {
  it('frees the slot of a delivery settled synchronously, and still reports a later failure of its settlement', async () => {
    const handled: string[] = [];
    const errors: string[] = [];
    const logger: Logger = { ...silentLogger, error: (message) => void errors.push(message) };
    // One slot; each settlement acks at once but its promise settles only later (the core's
    // bookkeeping after the ack), and the last one fails there.
    const finish: (() => void)[] = [];
    const h = harness({ high: 0 }, 1, {
      concurrency: 1,
      logger,
      onDelivery: (delivery) => {
        const id = String(delivery.decoded.ok && delivery.decoded.message.attributes.id);
        handled.push(id);
        void delivery.ack();
        return new Promise<void>((resolve, reject) => {
          finish.push(() => (id === 'e3' ? reject(new Error('observer failed')) : resolve()));
        });
      },
    });
    const starting = h.subscriber.start();
    await settle();
    h.assign([{ topic: h.topic, partitions: [0] }]);
    await starting;
    await h.deliver(h.batch(0, 1));
    await h.deliver(h.batch(1, 4));
    assert.deepEqual(
      handled,
      ['e0', 'e1', 'e2', 'e3'],
      'each record was handed over while the earlier settlements ran',
    );
    for (const f of finish) f();
    await settle();
    assert.equal(errors.length, 1, 'the failed settlement was logged');
    assert.match(errors[0] as string, /failed unexpectedly/);
    await h.subscriber.closed(1_000);
  });
});

describe('kafka subscriber: never silent', () => {
  it('reports a commit the broker refused, naming the offsets, and records removed before they were settled', async () => {
    const incidents: Incident[] = [];
    // The group's committed position is 2, but the partition's first record still stored is 5.
    const h = harness({ high: 0 }, 1, {
      incident: (i) => incidents.push(i),
      committed: { offset: '2', metadata: null },
    });
    const starting = h.subscriber.start();
    await settle();
    h.assign([{ topic: h.topic, partitions: [0] }]);
    await starting;
    await h.deliver(h.batch(5, 6));
    const removed = incidents.find((i) => i.kind === 'removed');
    assert.ok(removed, `no removed incident: ${JSON.stringify(incidents)}`);
    assert.deepEqual(
      [removed.channel, removed.group, removed.details?.from, removed.details?.to],
      ['c', 'g', '2', '4'],
    );

    h.gate.refuse = new Error('The coordinator is not aware of this member');
    await h.deliver(h.batch(6, 8));
    const failed = incidents.find((i) => i.kind === 'settle-failed');
    assert.ok(failed, `no settle-failed incident: ${JSON.stringify(incidents)}`);
    assert.deepEqual(failed.details?.offsets, [`${h.topic}/0@8`]);
    assert.match(String((failed.error as Error).message), /not aware/);
    h.gate.refuse = undefined;
    await h.subscriber.closed(1_000);
  });
});
