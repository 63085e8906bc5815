import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { Recorder } from '@wharf/conformance';
import {
  BrokerUnreachableError,
  type Bus,
  ConfigError,
  createBus,
  type Logger,
  MessageTooLargeError,
  silentLogger,
  TopologyError,
} from '@wharf/core';
import kafkajs from 'kafkajs';
import { afterAll, describe, it } from 'vitest';
import createKafkaAdapter from '../src/index.js';
import { adapter, cleanupChannel, KAFKA_URL, names, rawClient, skipKafka } from './helpers.js';

const created: [string, string[]][] = [];
const buses: Bus[] = [];
function fresh(label: string, groups: string[] = []): string {
  const channel = `kt-${label}-${randomBytes(4).toString('hex')}`;
  created.push([channel, groups]);
  return channel;
}

/** A bus subscribed to `channel` as group `g`, recording what its handler receives. */
async function recordingSubscriber(
  channel: string,
  logger: Logger = silentLogger,
): Promise<{ bus: Bus; rec: Recorder }> {
  const bus = createBus({ logger, adapter: adapter({}, logger), shutdownTimeoutMs: 2_000 });
  buses.push(bus);
  const rec = new Recorder();
  await bus.subscribe(channel, { group: 'g' }, (e, c) => rec.record(e, c.attempt));
  return { bus, rec };
}

/** Writes records to a channel's topic with plain kafkajs, as a foreign producer would. */
async function produceForeign(channel: string, messages: kafkajs.Message[]): Promise<void> {
  const kafka = new kafkajs.Kafka({
    brokers: [KAFKA_URL.replace(/^kafka:\/\//, '')],
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic: names.channel(channel), messages });
  } finally {
    await producer.disconnect();
  }
}

describe('bad input without a broker', () => {
  it('names the brokers it cannot reach, within the connect bound', async () => {
    const a = createKafkaAdapter({
      url: 'kafka://127.0.0.1:1,127.0.0.1:2',
      logger: silentLogger,
      connectTimeoutMs: 3_000,
    });
    const started = performance.now();
    await assert.rejects(a.connect(), (error: unknown) => {
      assert.ok(error instanceof BrokerUnreachableError, String(error));
      assert.match(error.message, /127\.0\.0\.1:1,127\.0\.0\.1:2/);
      assert.match(error.message, /scripts\/kafka\.sh up/);
      return true;
    });
    assert.ok(performance.now() - started < 5_000, 'took longer than the connect bound');
    await a.close();
  });

  it('bounds connect on a broker that accepts connections but never answers', async () => {
    // A refused connection fails fast; a silent peer (a hung broker, a firewall that accepts) is what
    // the bound is for: the client's own request timeout (30 s) must not decide.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const a = createKafkaAdapter({ url: `kafka://127.0.0.1:${port}`, logger: silentLogger, connectTimeoutMs: 1_500 });
    try {
      const started = performance.now();
      await assert.rejects(a.connect(), (error: unknown) => {
        assert.ok(error instanceof BrokerUnreachableError, String(error));
        assert.ok(error.message.includes(`127.0.0.1:${port}`), error.message);
        assert.match(error.message, /1500 ms/);
        return true;
      });
      const took = performance.now() - started;
      assert.ok(took >= 1_400 && took < 3_000, `connect gave up after ${Math.round(took)} ms, bound 1500 ms`);
      assert.ok(sockets.size > 0, 'the adapter never reached the silent broker');
    } finally {
      await a.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('rejects bad options and URLs with ConfigError, never echoing the password', () => {
    assert.throws(
      () => createKafkaAdapter({ url: 'amqp://localhost', logger: silentLogger }),
      (e: unknown) => e instanceof ConfigError,
    );
    assert.throws(
      () => createKafkaAdapter({ url: 'kafka://u:s3cret@localhost', logger: silentLogger, partitions: 0 }),
      (e: unknown) => e instanceof ConfigError && !String(e).includes('s3cret'),
    );
    assert.throws(
      () =>
        createKafkaAdapter({
          url: 'kafka://localhost',
          logger: silentLogger,
          heartbeatIntervalMs: 5_000,
          sessionTimeoutMs: 6_000,
        }),
      ConfigError,
    );
  });
});

describe.skipIf(skipKafka)('bad input on a real broker', () => {
  afterAll(async () => {
    await Promise.allSettled(buses.map((b) => b.close()));
    for (const [channel, groups] of created) await cleanupChannel(channel, groups).catch(() => undefined);
  });

  it('refuses a missing topic with requireTopics, naming it', async () => {
    const channel = fresh('missing', ['g']);
    const bus = createBus({ logger: silentLogger, adapter: adapter({ requireTopics: true }) });
    buses.push(bus);
    await assert.rejects(bus.publish(channel, { type: 'T' }), (e: unknown) => {
      assert.ok(e instanceof TopologyError, String(e));
      assert.ok(e.message.includes(names.channel(channel)));
      return true;
    });
    await assert.rejects(
      bus.subscribe(channel, { group: 'g' }, () => {}),
      TopologyError,
    );
    const admin = await rawClient().admin;
    assert.ok(!(await admin.listTopics()).includes(names.channel(channel)), 'a topic was created anyway');
  });

  it('refuses channel and group names it cannot map to topics with ConfigError, naming them', async () => {
    const a = adapter();
    try {
      await a.connect();
      const event = { attributes: { specversion: '1.0', id: 'x', source: '/t', type: 'T' }, body: Buffer.alloc(1) };
      for (const bad of ['a b', '-leading', 'ü', 'x'.repeat(201)]) {
        await assert.rejects(a.publish(bad, [event]), (e: unknown) => {
          assert.ok(e instanceof ConfigError && e.message.includes(JSON.stringify(bad)), String(e));
          return true;
        });
      }
      const policy = { maxAttempts: 1, delays: [], jitter: 0 };
      await assert.rejects(
        a.subscribe({ channel: fresh('badgroup'), group: 'a/b', concurrency: 1, policy }, async () => {}),
        (e: unknown) => e instanceof ConfigError && e.message.includes('"a/b"'),
      );
      const admin = await rawClient().admin;
      assert.ok(!(await admin.listTopics()).some((t) => t.includes(' ')), 'a topic was created for a bad name');
    } finally {
      await a.close();
    }
  });

  it('maps a broker refusing a record as too large to MessageTooLargeError with the topic limit', async () => {
    const channel = fresh('toolarge');
    const admin = await rawClient().admin;
    await admin.createTopics([
      { topic: names.channel(channel), partitions: 1, replicationFactor: -1, configs: { 'max.message.bytes': '2000' } },
    ]);
    const a = adapter({ requireTopics: true });
    try {
      await a.connect();
      const small = { attributes: { specversion: '1.0', id: 's', source: '/t', type: 'T' }, body: Buffer.alloc(10) };
      await a.publish(channel, [small]);
      const big = { attributes: { specversion: '1.0', id: 'b', source: '/t', type: 'T' }, body: Buffer.alloc(10_000) };
      // Sent together with a small one from another call: only the big one fails.
      const results = await Promise.allSettled([a.publish(channel, [big]), a.publish(channel, [small])]);
      assert.equal(results[1]?.status, 'fulfilled', 'a coalesced small publish failed with the big one');
      const failure = results[0];
      assert.ok(failure?.status === 'rejected' && failure.reason instanceof MessageTooLargeError, String(failure));
      assert.match(String((failure as PromiseRejectedResult).reason.message), /limit of 2000 bytes/);
    } finally {
      await a.close();
    }
  });

  it('dead-letters foreign and malformed records as undecodable, saying why, and keeps consuming', async () => {
    const channel = fresh('malformed', ['g']);
    const { bus, rec } = await recordingSubscriber(channel);
    const ce = { ce_specversion: '1.0', ce_source: '/s', ce_type: 't' };
    // Each record, and what the dead letter must say about it (read back from the stored record,
    // so it also shows the original headers were kept: repeated ones repeated, raw bytes raw).
    const records: [kafkajs.Message, RegExp][] = [
      [{ value: 'legacy payload', headers: { origin: 'legacy' } }, /no ce_specversion or ce_id header/],
      [{ value: '{}', headers: { ...ce, ce_id: Buffer.from([0xc3, 0x28]) } }, /header "ce_id" is not valid UTF-8/],
      [{ value: '{}', headers: { ...ce, ce_id: ['a', 'b'] } }, /header "ce_id" appears 2 times/],
      [{ value: '{}', headers: { ...ce, ce_specversion: '0.3', ce_id: 'old' } }, /specversion "0.3" is not supported/],
      [{ value: '{}', headers: { ce_specversion: '1.0', ce_id: 'no-source' } }, /"source" attribute is required/],
      [
        { value: '{}', headers: { ...ce, ce_id: 'x', 'content-type': Buffer.from([0xff, 0xfe]) } },
        /header "content-type" is not valid UTF-8/,
      ],
      [{ value: 'not json', headers: { 'content-type': 'application/cloudevents+json' } }, /JSON/i],
    ];
    await produceForeign(
      channel,
      records.map(([m]) => m),
    );
    const after = await bus.publish(channel, { type: 'StillFine' });
    await rec.all([after.id], 15_000);
    const deadline = Date.now() + 20_000;
    let list = await bus.listDeadLetters(channel, 'g');
    while (list.length < records.length && Date.now() < deadline) list = await bus.listDeadLetters(channel, 'g');
    assert.equal(list.length, records.length);
    assert.ok(list.every((d) => d.info?.reason === 'undecodable' && d.info.attempts === 0 && d.event === undefined));
    for (const [, why] of records) {
      assert.equal(
        list.filter((d) => why.test(d.decodeError ?? '')).length,
        1,
        `no single dead letter says ${why}: ${list.map((d) => d.decodeError).join(' | ')}`,
      );
    }
    assert.equal(rec.received.length, 1, 'a malformed record reached the handler');
    // Undecodable dead letters stay when replaying; the log keeps them readable.
    assert.equal(await bus.replayDeadLetters(channel, 'g'), 0);
    assert.equal((await bus.listDeadLetters(channel, 'g')).length, records.length);
  });

  it('hands over a record whose bookkeeping header is repeated, even as the first of its partition', async () => {
    // The first record of a partition after an assignment is read before the others (the crash-loop
    // count); a foreign producer's repeated wharf-attempt header must not fail the batch there.
    const channel = fresh('repeated-attempt', ['g']);
    const complaints: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (message, fields) => void complaints.push(`${message} ${JSON.stringify(fields ?? {})}`),
      error: (message, fields) => void complaints.push(`${message} ${JSON.stringify(fields ?? {})}`),
    };
    const { rec } = await recordingSubscriber(channel, logger);
    await produceForeign(
      channel,
      [0, 1, 2].map((partition) => ({
        partition,
        value: '{}',
        headers: {
          ce_specversion: '1.0',
          ce_source: '/s',
          ce_type: 't',
          ce_id: `repeated-${partition}`,
          'content-type': 'application/json',
          'wharf-attempt': ['1', '2'],
        },
      })),
    );
    const ids = ['repeated-0', 'repeated-1', 'repeated-2'];
    await rec.all(ids, 15_000);
    for (const id of ids) {
      const got = rec.received.filter((r) => r.event.id === id).map((r) => r.attempt);
      assert.deepEqual(got, [1], `${id} was handed over once, as attempt 1`);
    }
    assert.deepEqual(
      complaints.filter((c) => c.includes('wharf-attempt')),
      [],
      'no batch failed on the header (kafkajs would retry it)',
    );
  });
});
