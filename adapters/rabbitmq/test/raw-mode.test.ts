import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import {
  type Bus,
  type CloudEvent,
  createBus,
  type DeadLetter,
  type EventValidator,
  PublishError,
  silentLogger,
  TopologyMismatchError,
} from '@wharf/core';
import * as amqp from 'amqplib';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter, { type RabbitMqRaw } from '../src/index.js';
import { cleanup, unavailable, unique, url } from './helpers.js';

/**
 * The article's producer, in plain amqplib exactly as its pika code does it: a durable queue it
 * declares itself with a dead-letter exchange, and persistent JSON published through the default
 * exchange (`json.dumps` output, content type application/json, no CloudEvents attributes).
 */
class LegacyProducer {
  readonly queue = unique('order_events');
  readonly dlx = unique('dlx');
  #connection: amqp.ChannelModel | undefined;
  #ch: amqp.ConfirmChannel | undefined;

  async declare(): Promise<void> {
    this.#connection = await amqp.connect(url, { noDelay: true });
    this.#ch = await this.#connection.createConfirmChannel();
    this.#ch.on('error', () => undefined);
    await this.#ch.assertQueue(this.queue, { durable: true, arguments: { 'x-dead-letter-exchange': this.dlx } });
  }

  /** `channel.basic_publish('', queue, body, BasicProperties(delivery_mode=2, content_type='application/json'))`. */
  async publish(body: string, extra: amqp.Options.Publish = {}): Promise<void> {
    const ch = this.#ch as amqp.ConfirmChannel;
    await new Promise<void>((resolve, reject) => {
      ch.sendToQueue(
        this.queue,
        Buffer.from(body),
        { persistent: true, contentType: 'application/json', ...extra },
        (error: unknown) => (error ? reject(error) : resolve()),
      );
    });
  }

  /** Messages ready in the producer's queue (a passive declare on a throwaway channel). */
  async ready(): Promise<number> {
    const ch = await (this.#connection as amqp.ChannelModel).createChannel();
    try {
      return (await ch.checkQueue(this.queue)).messageCount;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const connection = this.#connection;
    if (!connection) return;
    const ch = await connection.createChannel();
    await ch.deleteQueue(this.queue).catch(() => undefined);
    await connection.close().catch(() => undefined);
  }
}

/** `json.dumps` separators, so the body is byte for byte what the Python producer sends. */
function pyJson(value: Record<string, unknown>): string {
  return JSON.stringify(value).replace(/,"/g, ', "').replace(/":/g, '": ');
}

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  await Promise.allSettled(toClose.splice(0).map((c) => c.close()));
  for (const [channel, groups] of created.splice(0)) await cleanup(channel, groups);
});

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
    adapter: createRabbitMqAdapter({ url, logger: silentLogger }),
    logger: silentLogger,
    ...(validator ? { validator } : {}),
  });
  toClose.unshift(bus);
  return {
    bus,
    producer,
    channel,
    group,
    raw: { queue: producer.queue, type: 'OrderPlaced', source: 'urn:legacy:orders' },
  };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function deadLetters(bus: Bus, channel: string, group: string): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  await bus.visitDeadLetters(channel, group, { limit: 10 }, async (dl) => {
    out.push(dl);
    return false;
  });
  return out;
}

const sha = (body: string): string => `sha256:${createHash('sha256').update(body).digest('hex')}`;

describe.skipIf(unavailable !== undefined)('raw mode: plain messages on an existing RabbitMQ queue', () => {
  it('wraps a plain JSON message into an event with the configured type and source and a stable id, once', async () => {
    const { bus, producer, channel, group, raw } = await setup();
    const seen: CloudEvent[] = [];
    await bus.subscribe(channel, { group, raw }, async (event) => {
      seen.push(event);
    });
    const body = pyJson({ orderId: 'o-1', total: 10 });
    // The old consumer's retry counter travels along; Wharf counts in its own header.
    await producer.publish(body, { headers: { 'x-retry-count': 0 } });
    await producer.publish(pyJson({ orderId: 'o-2', total: 20 }), { messageId: 'msg-2' });
    // The same message again (a producer retry or redelivery): same content hash, so dedup skips it.
    await producer.publish(body);
    await until('two events', () => seen.length >= 2);
    await until('the queue drained', async () => (await producer.ready()) === 0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(seen.length, 2, `handled ${seen.map((e) => e.id).join(', ')}`);
    const [first, second] = seen as [CloudEvent, CloudEvent];
    assert.equal(first.type, 'OrderPlaced');
    assert.equal(first.source, 'urn:legacy:orders');
    assert.equal(first.specversion, '1.0');
    assert.equal(first.id, sha(body));
    assert.equal(first.datacontenttype, 'application/json');
    assert.deepEqual(first.data, { orderId: 'o-1', total: 10 });
    assert.equal(second.id, 'msg-2');
    assert.deepEqual(second.data, { orderId: 'o-2', total: 20 });
    assert.equal(bus.stats().duplicates, 1);
  });

  it("dead-letters what always fails into Wharf's own dead-letter queue, with the reason, and replays it", async () => {
    const { bus, producer, channel, group, raw } = await setup();
    let failing = true;
    const handled: CloudEvent[] = [];
    await bus.subscribe(channel, { group, raw, retry: { maxAttempts: 2, delays: [50] } }, async (event) => {
      if (failing) throw new Error('inventory rejected the order');
      handled.push(event);
    });
    const body = pyJson({ orderId: 'o-4' });
    await producer.publish(body);
    let letters: DeadLetter[] = [];
    await until('a dead letter', async () => {
      letters = await deadLetters(bus, channel, group);
      return letters.length === 1;
    });
    const [dl] = letters as [DeadLetter];
    assert.equal(dl.info?.reason, 'retries-exhausted');
    assert.equal(dl.info?.rawQueue, raw.queue, 'the dead letter names the adopted queue its replay goes to');
    assert.equal(dl.info?.attempts, 2);
    assert.match(dl.info?.errorMessage ?? '', /inventory rejected the order/);
    assert.equal(dl.event?.type, 'OrderPlaced');
    assert.equal(dl.event?.source, 'urn:legacy:orders');
    assert.equal(dl.event?.id, sha(body));
    assert.deepEqual(dl.event?.data, { orderId: 'o-4' });
    assert.equal(await producer.ready(), 0, 'nothing left in the producer queue, nothing sent to its dlx');

    // Fixed: the replay goes back to the adopted queue as the producer's plain message, also when
    // another bus with no raw subscription replays it (as `wharf dlq replay` does): the dead letter
    // names its adopted queue.
    failing = false;
    const tool = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
    toClose.unshift(tool);
    assert.equal(await tool.replayDeadLetters(channel, group), 1);
    await until('the replayed event', () => handled.length === 1);
    assert.equal(handled[0]?.id, sha(body));
    assert.equal((await deadLetters(bus, channel, group)).length, 0);
  });

  it('refuses a queue with conflicting arguments or a missing queue with a typed error; the bus stays usable', async () => {
    const { bus, producer, channel, group, raw } = await setup();
    await bus.connect();
    const connections = bus.adapter?.raw() as RabbitMqRaw;
    const started = Date.now();
    await assert.rejects(
      bus.subscribe(
        channel,
        { group, raw: { ...raw, arguments: { 'x-dead-letter-exchange': 'another-dlx' } } },
        async () => undefined,
      ),
      (error: unknown) => {
        assert.ok(error instanceof TopologyMismatchError, String(error));
        assert.equal(error.queue, producer.queue);
        assert.match(error.message, /other arguments/);
        return true;
      },
    );
    await assert.rejects(
      bus.subscribe(channel, { group, raw: { ...raw, queue: unique('no-such-queue') } }, async () => undefined),
      (error: unknown) => error instanceof TopologyMismatchError && /does not exist/.test(error.message),
    );
    assert.ok(Date.now() - started < 3_000, `refused after ${Date.now() - started} ms, not retried`);
    const after = bus.adapter?.raw() as RabbitMqRaw;
    assert.ok(after.consuming === connections.consuming && after.publishing === connections.publishing, 'no reconnect');
    // The producer's queue is untouched and the same bus subscribes (with the right arguments) and handles.
    const seen: CloudEvent[] = [];
    await bus.subscribe(
      channel,
      { group, raw: { ...raw, arguments: { 'x-dead-letter-exchange': producer.dlx } } },
      async (event) => {
        seen.push(event);
      },
    );
    await producer.publish(pyJson({ orderId: 'o-8' }));
    await until('the event', () => seen.length === 1);
    assert.deepEqual(seen[0]?.data, { orderId: 'o-8' });
  });

  it('publishes plain persistent JSON that a legacy amqplib consumer reads as the producer would send it', async () => {
    const { bus, producer, channel } = await setup();
    const event = await bus.publish(
      channel,
      { type: 'OrderShipped', data: { orderId: 'o-9', carrier: 'dhl' } },
      { raw: { queue: producer.queue } },
    );
    const connection = await amqp.connect(url, { noDelay: true });
    try {
      const ch = await connection.createChannel();
      const message = await ch.get(producer.queue, { noAck: true });
      assert.ok(message, 'the legacy consumer got a message');
      assert.equal(message.content.toString('utf8'), '{"orderId":"o-9","carrier":"dhl"}');
      assert.deepEqual(JSON.parse(message.content.toString('utf8')), { orderId: 'o-9', carrier: 'dhl' });
      assert.equal(message.properties.deliveryMode, 2);
      assert.equal(message.properties.contentType, 'application/json');
      assert.equal(message.properties.messageId, event.id);
      const headers = message.properties.headers ?? {};
      assert.deepEqual(Object.keys(headers), [], `no CloudEvents headers, got ${JSON.stringify(headers)}`);
      assert.equal(message.fields.exchange, '');
      assert.equal(message.fields.routingKey, producer.queue);
    } finally {
      await connection.close();
    }
    await assert.rejects(
      bus.publish(channel, { type: 'OrderShipped', data: {} }, { raw: { queue: unique('no-such-queue') } }),
      (error: unknown) => error instanceof PublishError && /does not exist/.test(error.message),
    );
  });
});
