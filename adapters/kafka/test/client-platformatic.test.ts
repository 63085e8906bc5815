import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { ConfigError, silentLogger } from '@wharf/core';
import { afterAll, describe, it } from 'vitest';
import { classifyError } from '../src/classify.js';
import { createClient } from '../src/client.js';
import { createPlatformaticClient } from '../src/client-platformatic.js';
import type { ClientConfig, FetchedBatch, KafkaClient } from '../src/client-types.js';
import createKafkaAdapter from '../src/index.js';
import { platformaticRuns } from '../src/options.js';
import { KAFKA_URL, skipKafka } from './helpers.js';

const brokers = [KAFKA_URL.replace(/^kafkas?:\/\//, '').split(',')[0] ?? '127.0.0.1:9092'];
const config = (over: Partial<ClientConfig> = {}): ClientConfig => ({
  brokers,
  clientId: 'wharf-platformatic-tests',
  connectionTimeoutMs: 3_000,
  requestTimeoutMs: 10_000,
  retries: 2,
  maxRetryTimeMs: 500,
  logger: silentLogger,
  ...over,
});
const producerSettings = {
  idempotent: true,
  acks: -1,
  retries: 2,
  maxRetryTimeMs: 500,
  requestTimeoutMs: 10_000,
} as const;

describe('choosing the client', () => {
  it('takes platformatic by default, kafkajs from the option or the URL, and refuses anything else', () => {
    const raw = (url: string, client?: 'kafkajs' | 'platformatic') =>
      createKafkaAdapter({ url, logger: silentLogger, ...(client ? { client } : {}) }).raw() as { kind?: string };
    assert.equal(raw('kafka://127.0.0.1:9092').kind, 'platformatic');
    assert.equal(raw('kafka://127.0.0.1:9092?client=kafkajs').kind, undefined);
    assert.equal(raw('kafka://127.0.0.1:9092', 'kafkajs').kind, undefined);
    assert.equal(raw('kafka://127.0.0.1:9092?client=kafkajs', 'platformatic').kind, 'platformatic');
    assert.throws(
      () => createKafkaAdapter({ url: 'kafka://127.0.0.1:9092?client=rdkafka', logger: silentLogger }),
      (e: unknown) => e instanceof ConfigError && /client "rdkafka".*platformatic or kafkajs/.test(e.message),
    );
    assert.throws(
      () => createKafkaAdapter({ url: 'kafka://127.0.0.1:9092', logger: silentLogger, client: 'x' as 'kafkajs' }),
      ConfigError,
    );
  });

  it('knows which Node versions @platformatic/kafka runs on (its engines: >= 20.19.4)', () => {
    for (const v of ['20.19.4', '20.20.2', '21.0.0', '22.0.0', '24.6.0', '25.1.0']) assert.ok(platformaticRuns(v), v);
    for (const v of ['20.19.3', '20.10.0', '18.20.4', '19.9.0']) assert.ok(!platformaticRuns(v), v);
  });
});

describe.skipIf(skipKafka)('@platformatic/kafka client on a real broker', () => {
  const client = createPlatformaticClient(config());
  const topics: string[] = [];
  const groups: string[] = [];
  const fresh = (label: string): string => {
    const topic = `wharf-pt-${label}-${randomBytes(4).toString('hex')}`;
    topics.push(topic);
    return topic;
  };

  afterAll(async () => {
    const admin = await client.admin();
    await admin.deleteGroups(groups).catch(() => undefined);
    await admin.deleteTopics(topics).catch(() => undefined);
    await admin.disconnect();
  });

  it('reports an unreachable broker as unreachable', async () => {
    const dead = createPlatformaticClient(config({ brokers: ['127.0.0.1:1'], retries: 0, connectionTimeoutMs: 500 }));
    const error = await dead.admin().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error !== undefined, 'admin() against a closed port must fail');
    assert.equal(classifyError(error), 'unreachable');
  });

  it('creates topics idempotently and maps too-large and unknown-topic errors', async () => {
    const admin = await client.admin();
    const topic = fresh('small');
    const spec = { topic, partitions: 2, replicationFactor: -1, configs: { 'max.message.bytes': '2048' } };
    await admin.createTopics([spec]);
    await admin.createTopics([spec]);
    assert.deepEqual(await admin.awaitLeaders([topic], 5_000), []);
    assert.equal(await admin.maxMessageBytes(topic), 2048);
    const producer = await client.producer(producerSettings);
    try {
      const big = await producer
        .send([{ topic, records: [{ key: 'k', value: Buffer.alloc(10_000), headers: {} }] }])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.equal(classifyError(big), 'too-large');
      const missing = await producer
        .send([{ topic: fresh('missing'), records: [{ key: 'k', value: Buffer.from('x'), headers: {} }] }])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.equal(classifyError(missing), 'unknown-topic');
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  it('puts a key on the partition kafkajs (and the Java client) puts it on', async () => {
    const admin = await client.admin();
    const topic = fresh('keys');
    await admin.createTopics([{ topic, partitions: 7, replicationFactor: -1, configs: {} }]);
    const kafkajsClient: KafkaClient = createClient(config());
    const ours = await client.producer(producerSettings);
    const theirs = await kafkajsClient.producer(producerSettings);
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
      for (const producer of [ours, theirs]) {
        await producer.send([{ topic, records: keys.map((key) => ({ key, value: Buffer.from(key), headers: {} })) }]);
      }
      // Each key was written once by each client: every partition holds an even count only if they agree.
      const ends = await admin.ends(topic);
      assert.equal(
        ends.reduce((n, e) => n + Number(e.high), 0),
        40,
      );
      for (const end of ends) assert.equal(Number(end.high) % 2, 0, `partition ${end.partition}: ${end.high}`);
    } finally {
      await ours.disconnect();
      await theirs.disconnect();
      await admin.disconnect();
    }
  });

  it('consumes per-partition batches, keeps repeated headers, and commits with metadata', async () => {
    const admin = await client.admin();
    const topic = fresh('consume');
    const groupId = `${topic}-g`;
    groups.push(groupId);
    await admin.createTopics([{ topic, partitions: 2, replicationFactor: -1, configs: {} }]);
    const producer = await client.producer(producerSettings);
    await producer.send([
      {
        topic,
        records: [
          { partition: 1, key: 'a', value: Buffer.from('one'), headers: { h: ['x', 'y'], single: 'z' } },
          { partition: 1, key: 'a', value: Buffer.from('two'), headers: {} },
          // Known names and repeating values, whose bytes are shared between records (header-bytes.ts).
          ...['T', 'T', 'U'].map((type, i) => ({
            partition: 1,
            key: 'a',
            value: Buffer.from(`t${i}`),
            headers: { ce_type: type, ce_id: `id-${i}`, 'content-type': 'application/json' },
          })),
          { partition: 1, key: 'a', value: Buffer.from('r'), headers: { ce_type: ['T', 'U'], ce_id: 'id-r' } },
        ],
      },
    ]);
    await producer.disconnect();
    const consumer = client.consumer({
      groupId,
      sessionTimeoutMs: 6_000,
      rebalanceTimeoutMs: 10_000,
      heartbeatIntervalMs: 300,
      maxWaitTimeMs: 100,
      partitionsConcurrently: 2,
    });
    const assigned = new Promise<number>((resolve) =>
      consumer.onAssigned((a) => resolve(a.reduce((n, t) => n + t.partitions.length, 0))),
    );
    const seen: string[] = [];
    let first: FetchedBatch | undefined;
    const done = new Promise<void>((resolve) => {
      void consumer.run([topic], async (batch) => {
        first ??= batch;
        for (const record of batch.records) {
          seen.push(`${record.partition}:${record.offset}:${String(record.value)}`);
          batch.resolve(record.offset);
        }
        if (seen.length >= 6) resolve();
      });
    });
    const text = (value: unknown): unknown => (Array.isArray(value) ? value.map(String) : String(value));
    try {
      assert.equal(await assigned, 2);
      await done;
      assert.deepEqual(seen, ['1:0:one', '1:1:two', '1:2:t0', '1:3:t1', '1:4:t2', '1:5:r']);
      const records = first?.records ?? [];
      const headers = records[0]?.headers ?? {};
      assert.deepEqual((headers.h as Buffer[]).map(String), ['x', 'y']);
      assert.equal(String(headers.single), 'z');
      assert.deepEqual(
        records.slice(2).map((r) => Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, text(v)]))),
        [
          { ce_type: 'T', ce_id: 'id-0', 'content-type': 'application/json' },
          { ce_type: 'T', ce_id: 'id-1', 'content-type': 'application/json' },
          { ce_type: 'U', ce_id: 'id-2', 'content-type': 'application/json' },
          { ce_type: ['T', 'U'], ce_id: 'id-r' },
        ],
      );
      for (const r of records) assert.ok(Math.abs(Number(r.timestamp) - Date.now()) < 60_000, r.timestamp);
      await consumer.commit([{ topic, partition: 1, offset: '2', metadata: 'marker' }]);
      const committed = await admin.committed(groupId, topic);
      assert.deepEqual(
        committed.find((c) => c.partition === 1),
        { partition: 1, offset: '2', metadata: 'marker' },
      );
    } finally {
      await consumer.disconnect();
      await admin.disconnect();
    }
    assert.equal(await (await client.admin()).members(groupId), 0);
  });
});
