import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
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
import { afterEach, describe, it } from 'vitest';
import createNatsAdapter, { escapeName } from '../src/index.js';
import { cleanup, host, port, unavailable, unique, url } from './helpers.js';

/**
 * A producer that knows nothing of Wharf, in plain nats.js: it creates its own stream on its own
 * subject and publishes JSON bodies with JetStream, no headers unless it sets a message id.
 */
class LegacyProducer {
  readonly stream = unique('ORDERS').replace(/-/g, '_');
  readonly subject = `${unique('legacy')}.orders.placed`;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;

  async declare(): Promise<void> {
    this.#nc = await connect({ servers: `${host}:${port}`, noAsyncTraces: true });
    this.#jsm = await jetstreamManager(this.#nc);
    this.#js = jetstream(this.#nc);
    await this.#jsm.streams.add({
      name: this.stream,
      subjects: [this.subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      max_msgs: 10_000,
    });
  }

  async publish(body: string, msgID?: string, extra: Record<string, string> = {}): Promise<void> {
    const h = headers();
    for (const [name, value] of Object.entries(extra)) h.set(name, value);
    await (this.#js as JetStreamClient).publish(this.subject, body, {
      ...(msgID === undefined ? {} : { msgID }),
      ...(Object.keys(extra).length > 0 ? { headers: h } : {}),
    });
  }

  async config(): Promise<StreamConfig> {
    return (await (this.#jsm as JetStreamManager).streams.info(this.stream)).config;
  }

  get nc(): NatsConnection {
    return this.#nc as NatsConnection;
  }

  get jsm(): JetStreamManager {
    return this.#jsm as JetStreamManager;
  }

  async close(): Promise<void> {
    await this.#jsm?.streams.delete(this.stream).catch(() => undefined);
    await this.#nc?.close().catch(() => undefined);
  }
}

const toClose: { close(): Promise<void> }[] = [];
const created: string[] = [];
afterEach(async () => {
  await Promise.allSettled(toClose.splice(0).map((c) => c.close()));
  for (const channel of created.splice(0)) await cleanup(channel);
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
  created.push(channel);
  const bus = createBus({
    adapter: createNatsAdapter({ url, logger: silentLogger }),
    logger: silentLogger,
    ...(validator ? { validator } : {}),
  });
  toClose.unshift(bus);
  return {
    bus,
    producer,
    channel,
    group: unique('g'),
    raw: { queue: producer.subject, type: 'OrderPlaced', source: 'urn:legacy:orders' },
  };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const sha = (body: string): string => `sha256:${createHash('sha256').update(body).digest('hex')}`;

describe.skipIf(unavailable !== undefined)('raw mode: plain messages on an existing JetStream stream', () => {
  it('wraps a plain JSON message into an event with the configured type and source and a stable id, once', async () => {
    const { bus, producer, channel, group, raw } = await setup();
    const before = await producer.config();
    const seen: CloudEvent[] = [];
    await bus.subscribe(channel, { group, raw }, async (event) => {
      seen.push(event);
    });
    const body = JSON.stringify({ orderId: 'o-1', total: 10 });
    await producer.publish(body);
    await producer.publish(JSON.stringify({ orderId: 'o-2', total: 20 }), 'msg-2');
    // The same body again without a message id (a producer retry): same content hash, so dedup skips it.
    await producer.publish(body);
    // A producer that says its body is text (the header's case is its own).
    await producer.publish('order o-3 placed', 'msg-3', { 'Content-Type': 'text/plain' });
    await until('three events', () => seen.length >= 3);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(seen.length, 3, `handled ${seen.map((e) => e.id).join(', ')}`);
    const [first, second, text] = seen as [CloudEvent, CloudEvent, CloudEvent];
    assert.equal(text.id, 'msg-3');
    assert.equal(text.datacontenttype, 'text/plain');
    assert.equal(text.data, 'order o-3 placed');
    assert.equal(first.type, 'OrderPlaced');
    assert.equal(first.source, 'urn:legacy:orders');
    assert.equal(first.specversion, '1.0');
    assert.equal(first.id, sha(body));
    assert.equal(first.datacontenttype, 'application/json');
    assert.ok(first.time !== undefined && Math.abs(Date.parse(first.time) - Date.now()) < 10_000, `time ${first.time}`);
    assert.deepEqual(first.data, { orderId: 'o-1', total: 10 });
    assert.equal(second.id, 'msg-2');
    assert.deepEqual(second.data, { orderId: 'o-2', total: 20 });
    assert.equal(bus.stats().duplicates, 1);
    // Adopted as it is: the stream's config is the producer's; only our consumer was added, on its subject.
    const after = await producer.config();
    assert.deepEqual(after, before);
    const consumers = await producer.jsm.consumers.list(producer.stream).next();
    assert.deepEqual(
      consumers.map((c) => c.config.filter_subject),
      [producer.subject],
    );
    // Only the channel's dead-letter stream is Wharf's: no channel stream of its own holds nothing.
    const streams = await producer.jsm.streams.names().next();
    assert.ok(streams.includes(`WHARF-DLQ-${escapeName(channel)}`), 'the dead-letter stream');
    assert.ok(!streams.includes(`WHARF-${escapeName(channel)}`), 'no channel stream');
  });

  it("dead-letters what always fails into Wharf's own dead-letter stream, with the reason, and replays it to the subject", async () => {
    const { bus, producer, channel, group, raw } = await setup();
    let failing = true;
    const handled: CloudEvent[] = [];
    await bus.subscribe(channel, { group, raw, retry: { maxAttempts: 2, delays: [50] } }, async (event) => {
      if (failing) throw new Error('inventory rejected the order');
      handled.push(event);
    });
    const body = JSON.stringify({ orderId: 'o-4' });
    const hashed = JSON.stringify({ orderId: 'o-4b' });
    await producer.publish(body, 'msg-4');
    await producer.publish(hashed);
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
    assert.deepEqual(dl.event?.data, { orderId: 'o-4' });
    assert.equal(second.event?.id, sha(hashed));
    assert.equal((await producer.config()).max_msgs, 10_000, 'the producer stream is untouched');

    // Fixed. The first is replayed by another bus with no raw subscription (as `wharf dlq replay` does),
    // right away (within the stream's duplicate window of msg-4), the second by the subscribing bus:
    // both go back to the adopted subject as the producer's plain message.
    failing = false;
    const stored = (await producer.jsm.streams.info(producer.stream)).state.messages;
    const tool = createBus({ adapter: createNatsAdapter({ url, logger: silentLogger }), logger: silentLogger });
    toClose.unshift(tool);
    assert.equal(await tool.replayDeadLetters(channel, group, { limit: 1 }), 1);
    await until('the first replayed event', () => handled.length === 1);
    assert.equal(await bus.replayDeadLetters(channel, group), 1);
    await until('the second replayed event', () => handled.length === 2);
    assert.deepEqual(
      handled.map((e) => [e.id, e.data]),
      [
        ['msg-4', { orderId: 'o-4' }],
        [sha(hashed), { orderId: 'o-4b' }],
      ],
    );
    assert.equal((await bus.listDeadLetters(channel, group)).length, 0);
    const replayed = await producer.jsm.streams.getMessage(producer.stream, { seq: stored + 1 });
    assert.ok(replayed, 'the replay is in the producer stream');
    assert.equal(replayed.subject, producer.subject);
    assert.equal(new TextDecoder().decode(replayed.data), body);
    assert.equal(replayed.header?.get('Wharf-Raw-Id'), 'msg-4');
    assert.match(replayed.header?.get('Nats-Msg-Id') ?? '', /^msg-4 replayed /);
    assert.deepEqual(
      [...(replayed.header?.keys() ?? [])].filter((k) => k.toLowerCase().startsWith('ce-')),
      [],
      'no CloudEvents headers on the replay',
    );
    assert.ok(
      !(await producer.jsm.streams.names().next()).includes(`WHARF-${escapeName(channel)}`),
      'no channel stream made by the replays',
    );
  });

  it('refuses a missing stream or one with conflicting arguments with a typed error; the bus stays usable', async () => {
    const { bus, producer, channel, group, raw } = await setup();
    const before = await producer.config();
    const started = Date.now();
    await assert.rejects(
      bus.subscribe(
        channel,
        { group, raw: { ...raw, arguments: { max_msgs: 5, storage: 'file' } } },
        async () => undefined,
      ),
      (error: unknown) => {
        assert.ok(error instanceof TopologyMismatchError, String(error));
        assert.equal(error.queue, producer.subject);
        assert.match(error.message, /other arguments/);
        assert.match(error.message, /"max_msgs":10000/);
        return true;
      },
    );
    const missing = `${unique('nowhere')}.orders`;
    await assert.rejects(
      bus.subscribe(channel, { group, raw: { ...raw, queue: missing } }, async () => undefined),
      (error: unknown) =>
        error instanceof TopologyMismatchError && error.queue === missing && /no stream holds it/.test(error.message),
    );
    assert.ok(Date.now() - started < 3_000, `refused after ${Date.now() - started} ms, not retried`);
    assert.deepEqual(await producer.config(), before, 'Wharf changed nothing');
    assert.deepEqual(await producer.jsm.consumers.list(producer.stream).next(), [], 'no consumer left behind');
    // The same bus subscribes with arguments that match, and handles.
    const seen: CloudEvent[] = [];
    await bus.subscribe(
      channel,
      { group, raw: { ...raw, arguments: { max_msgs: 10_000, storage: 'file', subjects: [producer.subject] } } },
      async (event) => {
        seen.push(event);
      },
    );
    await producer.publish(JSON.stringify({ orderId: 'o-8' }));
    await until('the event', () => seen.length === 1);
    assert.deepEqual(seen[0]?.data, { orderId: 'o-8' });
  });

  it('publishes the bare body, with the event id as Nats-Msg-Id, that a plain nats.js consumer reads', async () => {
    const { bus, producer, channel } = await setup();
    const event = await bus.publish(
      channel,
      { type: 'OrderShipped', data: { orderId: 'o-9', carrier: 'dhl' } },
      { raw: { queue: producer.subject } },
    );
    const stored = await producer.jsm.streams.getMessage(producer.stream, { last_by_subj: producer.subject });
    assert.ok(stored, 'the legacy stream holds the message');
    assert.equal(new TextDecoder().decode(stored.data), '{"orderId":"o-9","carrier":"dhl"}');
    assert.deepEqual([...(stored.header?.keys() ?? [])], ['Nats-Msg-Id']);
    assert.equal(stored.header?.get('Nats-Msg-Id'), event.id);
    // A plain consumer of the producer's stream reads it as the producer would send it.
    const js = jetstream(producer.nc);
    await producer.jsm.consumers.add(producer.stream, { durable_name: 'legacy', filter_subject: producer.subject });
    const consumer = await js.consumers.get(producer.stream, 'legacy');
    const message = await consumer.next({ expires: 2_000 });
    assert.ok(message, 'the legacy consumer got a message');
    assert.deepEqual(message.json(), { orderId: 'o-9', carrier: 'dhl' });
    message.ack();
    // The same event again (a publisher's retry) is dropped by the stream's duplicate window.
    await bus.publish(
      channel,
      { id: event.id, type: 'OrderShipped', data: { orderId: 'o-9', carrier: 'dhl' } },
      { raw: { queue: producer.subject } },
    );
    assert.equal((await producer.jsm.streams.info(producer.stream)).state.messages, 1);
    await assert.rejects(
      bus.publish(channel, { type: 'OrderShipped', data: {} }, { raw: { queue: `${unique('nowhere')}.x` } }),
      (error: unknown) => error instanceof PublishError && /does not exist/.test(error.message),
    );
  });
});
