/**
 * The raw-client baseline for `wharf bench`: plain kafkajs used the way its docs recommend, with
 * the same topic layout, bytes, durability (acks=all) and publish window as the bus. It is the
 * one place besides client.ts that imports kafkajs: it measures that client by definition.
 */
import { randomUUID } from 'node:crypto';
import {
  type BenchOptions,
  type BenchResult,
  parseBrokerUrl,
  payloadAge,
  stampPayload,
  startMeasurement,
  windowed,
} from '@wharf/core';
import kafkajs from 'kafkajs';
import { Names } from './topology.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

export async function rawBaseline(options: BenchOptions): Promise<BenchResult> {
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
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          numPartitions: 3,
          configEntries: [{ name: 'max.message.bytes', value: String(8 * 1024 * 1024 + 256 * 1024) }],
        },
      ],
    });
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
    // The same CloudEvents binary-mode headers the bus writes, so the bytes on the wire match.
    // Batching as the bus does it (and as the Java client's accumulator does): messages that arrive
    // while a request is in flight go together in the next one; kafkajs has no accumulator itself.
    // The queue is taken one event-loop turn after the first message (or the last acknowledgement),
    // so the messages sent together by the loop below go in one request, not the first one alone.
    const source = 'urn:wharf:bench';
    let queue: { message: kafkajs.Message; done: (error?: unknown) => void }[] = [];
    let sending = false;
    const flush = async (): Promise<void> => {
      while (queue.length > 0) {
        await new Promise((resolve) => setImmediate(resolve));
        const batch = queue;
        queue = [];
        try {
          await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: batch.map((b) => b.message) }] });
          for (const b of batch) b.done();
        } catch (error) {
          for (const b of batch) b.done(error);
        }
      }
      sending = false;
    };
    const send = (message: kafkajs.Message): Promise<void> =>
      new Promise((resolve, reject) => {
        queue.push({ message, done: (error) => (error ? reject(error) : resolve()) });
        if (!sending) {
          sending = true;
          void flush();
        }
      });
    // The same pacing loop as the bus bench, so the loops are not what differs.
    await windowed(options.events, options.window, () =>
      send({
        key: null,
        value: Buffer.from(stampPayload(options.size)),
        headers: {
          ce_specversion: '1.0',
          ce_id: randomUUID(),
          ce_source: source,
          ce_time: new Date().toISOString(),
          ce_type: 'BenchEvent',
          'content-type': 'application/octet-stream',
        },
      }),
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
