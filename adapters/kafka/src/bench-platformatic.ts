/**
 * The raw-client baseline of `wharf bench --client platformatic`: plain @platformatic/kafka used the
 * way its docs show, with the bus's topic layout, bytes, durability (acks=all) and publish window:
 * batched `send`s with a bounded number of requests in flight, and the consumer's MessagesStream
 * with autocommit off and the offsets committed in batches.
 */
import { Admin, Consumer, MessagesStreamFallbackModes, MessagesStreamModes, Producer } from '@platformatic/kafka';
import { type BenchOptions, type BenchResult, parseBrokerUrl, payloadAge, startMeasurement } from '@wharf/core';
import { BENCH_MAX_MESSAGE_BYTES, produceWindowed } from './bench-shared.js';
import { Names } from './topology.js';

/** Records received between two offset commits (one commit in flight at most). */
const COMMIT_EVERY = 100;

export async function rawPlatformaticBaseline(options: BenchOptions): Promise<BenchResult> {
  const bootstrapBrokers = parseBrokerUrl(options.url).hosts.map((h) => `${h.host}:${h.port ?? 9092}`);
  const base = { clientId: 'wharf-bench-raw', bootstrapBrokers, autocreateTopics: false };
  const topic = new Names('wharf').channel(`${options.channel}-raw`);
  const groupId = `${topic}.bench`;
  const admin = new Admin(base);
  const producer = new Producer({ ...base, acks: -1 });
  const consumer = new Consumer({ ...base, groupId, maxWaitTime: 250, heartbeatInterval: 1_000, autocommit: false });
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: 3,
      replicas: -1,
      configs: [{ name: 'max.message.bytes', value: String(BENCH_MAX_MESSAGE_BYTES) }],
    });
    await leaders(admin, topic);
    const stream = await consumer.consume({
      topics: [topic],
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode: MessagesStreamFallbackModes.EARLIEST,
      autocommit: false,
    });
    let received = 0;
    let sinceCommit = 0;
    let committing: Promise<void> | undefined;
    const pending = new Map<number, bigint>();
    const commit = (): void => {
      if (committing !== undefined || pending.size === 0) return;
      const offsets = [...pending].map(([partition, offset]) => ({ topic, partition, offset, leaderEpoch: -1 }));
      pending.clear();
      sinceCommit = 0;
      committing = consumer.commit({ offsets }).finally(() => {
        committing = undefined;
      });
    };
    let measure: ReturnType<typeof startMeasurement> | undefined;
    const finished = new Promise<void>((resolve, reject) => {
      stream.on('error', reject);
      stream.on('data', (message) => {
        if (message.value) measure?.record(payloadAge(message.value));
        pending.set(message.partition, message.offset + 1n);
        if (++sinceCommit >= COMMIT_EVERY) commit();
        if (++received === options.events) resolve();
      });
    });
    // Measured like `wharf bench` measures the bus: from once the topic exists and the consumer joined.
    measure = startMeasurement(options.events);
    await produceWindowed(options, (records) =>
      producer.send({
        messages: records.map((r) => ({
          topic,
          value: r.value,
          headers: new Map(Object.entries(r.headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
        })),
      }),
    );
    await finished;
    const result = measure.finish();
    await committing?.catch(() => undefined);
    commit();
    await committing;
    await stream.close();
    return result;
  } finally {
    await new Promise<void>((resolve) => consumer.close(true, () => resolve()));
    await producer.close().catch(() => undefined);
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.deleteGroups({ groups: [groupId] }).catch(() => undefined);
    await admin.close().catch(() => undefined);
  }
}

/** A topic created a moment ago has no leaders in a KRaft broker's metadata for a moment. */
async function leaders(admin: Admin, topic: string): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true }).catch(() => undefined);
    const partitions = metadata?.topics.get(topic)?.partitions ?? [];
    if (partitions.length > 0 && partitions.every((p) => p !== undefined && p.leader >= 0)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
