import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import {
  type Bus,
  type CloudEvent,
  createBus,
  type DeadLetter,
  type EventValidator,
  PublishError,
  type SubscribeOptions,
  silentLogger,
  TopologyMismatchError,
} from '@wharf/core';
import { type Admin, Kafka, logLevel, type Producer } from 'kafkajs';
import { afterEach, describe, it } from 'vitest';
import type { KafkaAdapterOptions } from '../src/index.js';
import { adapter, cleanupChannel, KAFKA_URL, rawClient, skipKafka } from './helpers.js';

const brokers = KAFKA_URL.replace(/^kafkas?:\/\//, '').split(',');
const unique = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`;

/**
 * A producer that knows nothing of Wharf, in plain kafkajs: it creates its own topic (one partition,
 * `cleanup.policy=delete`) and sends JSON values, keyed by order id, with no headers unless it sets a
 * `message-id`.
 */
class LegacyProducer {
  readonly topic = unique('legacy.orders');
  readonly kafka = new Kafka({ brokers, clientId: 'legacy-orders', logLevel: logLevel.NOTHING });
  #admin: Admin | undefined;
  #producer: Producer | undefined;

  async declare(): Promise<void> {
    this.#admin = this.kafka.admin();
    await this.#admin.connect();
    // Through the adapter's admin, which retries: kafkajs' waitForLeaders gives up on a KRaft broker
    // that answers UNKNOWN_TOPIC_OR_PARTITION for a moment after the create (seen in CI).
    await (await rawClient().admin).createTopics([
      { topic: this.topic, partitions: 1, replicationFactor: -1, configs: { 'cleanup.policy': 'delete' } },
    ]);
    this.#producer = this.kafka.producer({ allowAutoTopicCreation: false });
    await this.#producer.connect();
  }

  async send(value: string, key: string | null = null, headers: Record<string, string> = {}): Promise<void> {
    await (this.#producer as Producer).send({ topic: this.topic, acks: -1, messages: [{ key, value, headers }] });
  }

  get admin(): Admin {
    return this.#admin as Admin;
  }

  /** Offsets of the producer's topic: how many records it holds. */
  async high(): Promise<number> {
    const [p] = await this.admin.fetchTopicOffsets(this.topic);
    return Number(p?.high ?? 0);
  }

  async close(): Promise<void> {
    await this.#producer?.disconnect().catch(() => undefined);
    await this.#admin?.deleteTopics({ topics: [this.topic] }).catch(() => undefined);
    await this.#admin?.disconnect().catch(() => undefined);
  }
}

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  // In order: buses and consumers first, the producer (which deletes its topic) last. A consumer still
  // running would ask for the deleted topic's metadata, and a broker that auto-creates topics makes it again.
  for (const c of toClose.splice(0)) await c.close().catch(() => undefined);
  for (const [channel, groups] of created.splice(0)) await cleanupChannel(channel, groups);
});

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const sha = (body: string): string => `sha256:${createHash('sha256').update(body).digest('hex')}`;

/** The shared code path (subscriber, topology, publisher) runs on both clients of the adapter. */
const CLIENTS: readonly NonNullable<KafkaAdapterOptions['client']>[] = ['kafkajs', 'platformatic'];

describe.skipIf(skipKafka).each(CLIENTS)('raw mode: plain messages on an existing Kafka topic (%s)', (client) => {
  async function setup(validator?: EventValidator): Promise<{
    bus: Bus;
    producer: LegacyProducer;
    channel: string;
    group: string;
    raw: { queue: string; type: string; source: string };
  }> {
    const producer = new LegacyProducer();
    toClose.push(producer);
    await producer.declare();
    const channel = unique('raw');
    const group = unique('g');
    created.push([channel, [group]]);
    const bus = createBus({
      adapter: adapter({ client }),
      logger: silentLogger,
      ...(validator ? { validator } : {}),
    });
    toClose.unshift(bus);
    return {
      bus,
      producer,
      channel,
      group,
      raw: { queue: producer.topic, type: 'OrderPlaced', source: 'urn:legacy:orders' },
    };
  }

  it('wraps a plain JSON value into an event with the configured type and source and a stable id, once', async () => {
    const { bus, producer, channel, group, raw } = await setup();
    const seen: CloudEvent[] = [];
    await bus.subscribe(channel, { group, raw }, async (event) => {
      seen.push(event);
    });
    const body = JSON.stringify({ orderId: 'o-1', total: 10 });
    await producer.send(body, 'o-1');
    await producer.send(JSON.stringify({ orderId: 'o-2', total: 20 }), 'o-2', { 'message-id': 'msg-2' });
    // The same value again without a message id (a producer retry): same content hash, so dedup skips it.
    await producer.send(body, 'o-1');
    await until('two events', () => seen.length >= 2);
    await until('the duplicate skipped', () => bus.stats().duplicates === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(seen.length, 2, `handled ${seen.map((e) => e.id).join(', ')}`);
    const [first, second] = seen as [CloudEvent, CloudEvent];
    assert.equal(first.type, 'OrderPlaced');
    assert.equal(first.source, 'urn:legacy:orders');
    assert.equal(first.specversion, '1.0');
    assert.equal(first.id, sha(body));
    assert.equal(first.datacontenttype, 'application/json');
    assert.equal(first.partitionkey, 'o-1');
    assert.ok(first.time !== undefined && Math.abs(Date.parse(first.time) - Date.now()) < 30_000, `time ${first.time}`);
    assert.deepEqual(first.data, { orderId: 'o-1', total: 10 });
    assert.equal(second.id, 'msg-2');
    assert.deepEqual(second.data, { orderId: 'o-2', total: 20 });
    // Adopted as it is: Wharf created no channel topic of its own, and the producer's topic is unchanged.
    const topics = await producer.admin.listTopics();
    assert.ok(!topics.includes(`wharf-${channel.replace(/-/g, '--')}`), 'no channel topic');
    const meta = await producer.admin.fetchTopicMetadata({ topics: [producer.topic] });
    assert.equal(meta.topics[0]?.partitions.length, 1);
  });

  it('retries a failing handler with backoff through the retry topics, then succeeds, keeping the id and time', async () => {
    const { bus, producer, channel, group, raw } = await setup();
    const attempts: { attempt: number; at: number; id: string; time: string | undefined }[] = [];
    const options: SubscribeOptions = { group, raw, retry: { maxAttempts: 4, delays: [150, 300, 300] } };
    await bus.subscribe(channel, options, async (event, ctx) => {
      attempts.push({ attempt: ctx.attempt, at: Date.now(), id: event.id, time: event.time });
      if (ctx.attempt <= 2) throw new Error(`payment service down (attempt ${ctx.attempt})`);
    });
    await producer.send(JSON.stringify({ orderId: 'o-3' }), 'o-3', { 'message-id': 'msg-3' });
    await until('the third attempt', () => attempts.length >= 3);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [1, 2, 3],
    );
    assert.deepEqual(new Set(attempts.map((a) => a.id)), new Set(['msg-3']));
    assert.equal(new Set(attempts.map((a) => a.time)).size, 1, 'the event time stays the producer record time');
    const [a1, a2, a3] = attempts as [(typeof attempts)[0], (typeof attempts)[0], (typeof attempts)[0]];
    assert.ok(a2.at - a1.at >= 140, `first retry after ${a2.at - a1.at} ms, policy says 150`);
    assert.ok(a3.at - a2.at >= 280, `second retry after ${a3.at - a2.at} ms, policy says 300`);
    assert.equal((await bus.listDeadLetters(channel, group)).length, 0);
    assert.equal(await producer.high(), 1, 'retries never go back to the producer topic');
  });

  it("dead-letters what always fails into Wharf's own dead-letter topic, with the reason, and replays it to the topic", async () => {
    const { bus, producer, channel, group, raw } = await setup();
    let failing = true;
    const handled: CloudEvent[] = [];
    await bus.subscribe(channel, { group, raw, retry: { maxAttempts: 2, delays: [50] } }, async (event) => {
      if (failing) throw new Error('inventory rejected the order');
      handled.push(event);
    });
    const hashed = JSON.stringify({ orderId: 'o-4b' });
    await producer.send(JSON.stringify({ orderId: 'o-4' }), 'o-4', { 'message-id': 'msg-4' });
    await producer.send(hashed, 'o-4b');
    let letters: DeadLetter[] = [];
    await until('two dead letters', async () => {
      letters = await bus.listDeadLetters(channel, group);
      return letters.length === 2;
    });
    const [dl, second] = letters as [DeadLetter, DeadLetter];
    assert.equal(dl.info?.reason, 'retries-exhausted');
    assert.equal(dl.info?.rawQueue, raw.queue, 'the dead letter names the adopted queue its replay goes to');
    assert.equal(dl.info?.attempts, 2);
    assert.match(dl.info?.errorMessage ?? '', /inventory rejected the order/);
    assert.equal(dl.event?.type, 'OrderPlaced');
    assert.equal(dl.event?.source, 'urn:legacy:orders');
    assert.equal(dl.event?.id, 'msg-4');
    assert.equal(dl.event?.partitionkey, 'o-4');
    assert.deepEqual(dl.event?.data, { orderId: 'o-4' });
    assert.equal(second.event?.id, sha(hashed));

    // Fixed. The first is replayed by another bus with no raw subscription (as `wharf dlq replay` does),
    // the second by the subscribing bus: both go back to the adopted topic as plain records.
    failing = false;
    const tool = createBus({ adapter: adapter({ client }), logger: silentLogger });
    toClose.unshift(tool);
    assert.equal(await tool.replayDeadLetters(channel, group, { limit: 1 }), 1);
    await until('the first replayed event', () => handled.length === 1);
    assert.equal(await bus.replayDeadLetters(channel, group), 1);
    await until('the second replayed event', () => handled.length === 2);
    assert.deepEqual(
      handled.map((e) => [e.id, e.partitionkey, e.data]),
      [
        ['msg-4', 'o-4', { orderId: 'o-4' }],
        [sha(hashed), 'o-4b', { orderId: 'o-4b' }],
      ],
    );
    await until('the dead letters removed', async () => (await bus.listDeadLetters(channel, group)).length === 0);
    assert.equal(await producer.high(), 4, 'the replays follow the two records in the producer topic');
    assert.ok(
      !(await producer.admin.listTopics()).includes(`wharf-${channel.replace(/-/g, '--')}`),
      'no channel topic made by the replays',
    );
  });

  it('refuses a missing topic or one with conflicting arguments with a typed error; the bus stays usable', async () => {
    const { bus, producer, channel, group, raw } = await setup();
    await assert.rejects(
      bus.subscribe(
        channel,
        { group, raw: { ...raw, arguments: { partitions: 3, 'cleanup.policy': 'delete' } } },
        async () => undefined,
      ),
      (error: unknown) => {
        assert.ok(error instanceof TopologyMismatchError, String(error));
        assert.equal(error.queue, producer.topic);
        assert.match(error.message, /other arguments/);
        assert.match(error.message, /"partitions":1/);
        return true;
      },
    );
    await assert.rejects(
      bus.subscribe(
        channel,
        { group, raw: { ...raw, arguments: { 'cleanup.policy': 'compact' } } },
        async () => undefined,
      ),
      (error: unknown) => error instanceof TopologyMismatchError && /"cleanup.policy":"delete"/.test(error.message),
    );
    const missing = unique('nowhere');
    await assert.rejects(
      bus.subscribe(channel, { group, raw: { ...raw, queue: missing } }, async () => undefined),
      (error: unknown) =>
        error instanceof TopologyMismatchError && error.queue === missing && /does not exist/.test(error.message),
    );
    const topics = await producer.admin.listTopics();
    assert.ok(!topics.includes(missing), 'the missing topic was not created');
    const configs = await producer.admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: producer.topic, configNames: ['cleanup.policy'] }],
    });
    assert.equal(configs.resources[0]?.configEntries[0]?.configValue, 'delete', 'Wharf changed nothing');
    // The same bus subscribes with arguments that match, and handles.
    const seen: CloudEvent[] = [];
    await bus.subscribe(
      channel,
      { group, raw: { ...raw, arguments: { partitions: 1, 'cleanup.policy': 'delete' } } },
      async (event) => {
        seen.push(event);
      },
    );
    await producer.send(JSON.stringify({ orderId: 'o-8' }));
    await until('the event', () => seen.length === 1);
    assert.deepEqual(seen[0]?.data, { orderId: 'o-8' });
  });

  it('publishes the bare value, keyed by the partition key, without headers, that a plain kafkajs consumer reads', async () => {
    const { bus, producer, channel } = await setup();
    await bus.publish(
      channel,
      { type: 'OrderShipped', partitionkey: 'o-9', data: { orderId: 'o-9', carrier: 'dhl' } },
      { raw: { queue: producer.topic } },
    );
    const groupId = unique('legacy-reader');
    const consumer = producer.kafka.consumer({ groupId });
    toClose.unshift({
      close: async () => {
        await consumer.disconnect();
        await producer.admin.deleteGroups([groupId]).catch(() => undefined);
      },
    });
    await consumer.connect();
    await consumer.subscribe({ topic: producer.topic, fromBeginning: true });
    const got: { key: string | undefined; value: string | undefined; headers: string[] }[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        got.push({
          key: message.key?.toString(),
          value: message.value?.toString(),
          headers: Object.keys(message.headers ?? {}),
        });
      },
    });
    await until('the legacy consumer read it', () => got.length === 1, 30_000);
    assert.deepEqual(got, [{ key: 'o-9', value: '{"orderId":"o-9","carrier":"dhl"}', headers: [] }]);
    const missing = unique('nowhere');
    await assert.rejects(
      bus.publish(channel, { type: 'OrderShipped', data: {} }, { raw: { queue: missing } }),
      (error: unknown) => error instanceof PublishError && /does not exist/.test(error.message),
    );
    assert.ok(!(await producer.admin.listTopics()).includes(missing), 'no topic auto-created');
  });
});
