/**
 * The raw-client baseline for `wharf bench`: plain kafkajs used the way its docs recommend, with
 * the same topic layout, bytes, durability (acks=all) and publish window as the bus — batched sends
 * with a bounded number of requests in flight, and `eachBatch` that resolves each offset, heartbeats
 * and commits once per batch. It is the one place besides client.ts that imports kafkajs: it
 * measures that client by definition.
 */
import { randomUUID } from 'node:crypto';
import {
  type BenchOptions,
  type BenchResult,
  parseBrokerUrl,
  payloadAge,
  stampPayload,
  startMeasurement,
} from '@wharf/core';
import kafkajs from 'kafkajs';
import { Names } from './topology.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

/**
 * Produce requests in flight at once. Two keeps the pipe full (one request is written while the other
 * waits for its acks) with batches of half the window. Five (the Java client's
 * `max.in.flight.requests.per.connection` default) made 5 smaller requests per window: with the broker
 * on the same 2 cores, per-request CPU decided: in paired runs against the earlier one-request-at-a-time
 * loop, five moved 0.80–0.89 of it (and cost 4–10 µs more CPU per event), two 1.00–1.01.
 */
const MAX_REQUESTS = 2;

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
    // The producer done by hand, because kafkajs has no accumulator: messages go out in batches
    // (`sendBatch`, one produce request per broker), at most MAX_REQUESTS requests in flight and at
    // most `window` events unacknowledged in all, like the bus. A batch is cut as soon as a request
    // slot is free, so the window stays full: ceil(window / MAX_REQUESTS) events each.
    // The same CloudEvents binary-mode headers the bus writes, so the bytes on the wire match.
    const source = 'urn:wharf:bench';
    const batchSize = Math.max(1, Math.ceil(options.window / MAX_REQUESTS));
    const message = (): kafkajs.Message => ({
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
    });
    let unacked = 0;
    let requests = 0;
    let failure: { error: unknown } | undefined;
    let wake: (() => void) | undefined;
    const settled = (count: number, error?: unknown): void => {
      unacked -= count;
      requests--;
      if (error !== undefined) failure ??= { error };
      const resume = wake;
      wake = undefined;
      resume?.();
    };
    const until = async (ready: () => boolean): Promise<void> => {
      while (!ready()) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    };
    for (let sent = 0; sent < options.events; ) {
      await until(() => requests < MAX_REQUESTS && unacked < options.window);
      if (failure) throw failure.error;
      const count = Math.min(batchSize, options.window - unacked, options.events - sent);
      const messages = Array.from({ length: count }, message);
      sent += count;
      unacked += count;
      requests++;
      producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] }).then(
        () => settled(count),
        (error: unknown) => settled(count, error),
      );
    }
    await until(() => requests === 0);
    if (failure) throw failure.error;
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
