/**
 * The raw-client baselines for `wharf bench`: the client library the bus runs on, used plainly. Here
 * kafkajs, the way its docs recommend, with the same topic layout, bytes, durability (acks=all) and
 * publish window as the bus — batched sends with a bounded number of requests in flight, and
 * `eachBatch` that resolves each offset, heartbeats and commits once per batch. It is the one place
 * besides client.ts that imports kafkajs: it measures that client by definition.
 * Without `?client=kafkajs` in the URL the bus runs on @platformatic/kafka, and so does the raw side
 * (bench-platformatic.ts).
 */
import { type BenchOptions, type BenchResult, parseBrokerUrl, payloadAge, startMeasurement } from '@wharf/core';
import kafkajs from 'kafkajs';
import { rawPlatformaticBaseline } from './bench-platformatic.js';
import { BENCH_MAX_MESSAGE_BYTES, produceWindowed } from './bench-shared.js';
import { wrapAdmin } from './client.js';
import { Names } from './topology.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

/** The raw client of the kind the bus runs on (the URL's `?client=`, as `wharf bench --client` sets it). */
export async function rawBaseline(options: BenchOptions): Promise<BenchResult> {
  return parseBrokerUrl(options.url).params.get('client') === 'kafkajs'
    ? rawKafkajsBaseline(options)
    : rawPlatformaticBaseline(options);
}

async function rawKafkajsBaseline(options: BenchOptions): Promise<BenchResult> {
  const brokers = parseBrokerUrl(options.url).hosts.map((h) => `${h.host}:${h.port ?? 9092}`);
  const kafka = new Kafka({ brokers, clientId: 'wharf-bench-raw', logLevel: logLevel.NOTHING });
  const topic = new Names('wharf').channel(`${options.channel}-raw`);
  const groupId = `${topic}.bench`;
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 250, heartbeatInterval: 1_000 });
  try {
    await producer.connect();
    await consumer.connect();
    let received = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    let measure: ReturnType<typeof startMeasurement> | undefined;
    // Through the adapter's admin wrapper: kafkajs' waitForLeaders gives up when a KRaft broker answers
    // UNKNOWN_TOPIC_OR_PARTITION for a moment after the create (seen failing a test set-up in CI).
    const wrapped = wrapAdmin(admin);
    await wrapped.createTopics([
      {
        topic,
        partitions: 3,
        replicationFactor: -1,
        configs: { 'max.message.bytes': String(BENCH_MAX_MESSAGE_BYTES) },
      },
    ]);
    const lacking = await wrapped.awaitLeaders([topic], 30_000);
    if (lacking.length > 0) throw new Error(`the bench topic ${topic} has no leader after 30 s`);
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    // Manual acknowledgement, Kafka style: offsets committed after the batch was handled.
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 3,
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        for (const message of batch.messages) {
          if (message.value) measure?.record(payloadAge(message.value));
          resolveOffset(message.offset);
          if (++received === options.events) done();
        }
        await consumer.commitOffsets([
          { topic, partition: batch.partition, offset: String(BigInt(batch.lastOffset()) + 1n) },
        ]);
        await heartbeat();
      },
    });
    // Measured like `wharf bench` measures the bus: the clock starts once the topic exists and the
    // consumer joined its group (the bus bench starts it after subscribe, which does both).
    measure = startMeasurement(options.events);
    // The producer done by hand, because kafkajs has no accumulator: one `sendBatch` per batch
    // (one produce request per broker).
    await produceWindowed(options, (records) =>
      producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: records.map((r) => ({ key: null, ...r })) }] }),
    );
    await finished;
    return measure.finish();
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}
