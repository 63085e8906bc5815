/**
 * The client interface on @platformatic/kafka 1.x, the one file besides `platformatic-consumer.ts`
 * that imports it. Chosen with the adapter option `client: 'platformatic'` (or `?client=platformatic`).
 */
import {
  Admin,
  type BaseOptions,
  ConfigResourceTypes,
  type MessageToProduce,
  murmur2,
  Producer,
} from '@platformatic/kafka';
import { classifyError } from './classify.js';
import type {
  ClientAdmin,
  ClientConfig,
  ClientProducer,
  CommittedOffset,
  KafkaClient,
  OutgoingRecord,
  PartitionEnd,
  ProducerSettings,
} from './client-types.js';
import { CE_PREFIX, CONTENT_TYPE, REPEATING_ATTRIBUTES } from './codec.js';
import { headerNameBytes, LastBytes } from './header-bytes.js';
import { platformaticConsumer } from './platformatic-consumer.js';

/** Base options of every @platformatic/kafka client this adapter opens. */
export function baseOptions(config: ClientConfig, clientId = config.clientId): BaseOptions {
  return {
    clientId,
    bootstrapBrokers: [...config.brokers],
    connectTimeout: config.connectionTimeoutMs,
    // \`timeout\` is only what the request asks the broker to wait; the client's own bound on an
    // unanswered request is the connection's \`requestTimeout\`, 30 s by default. Without it a request
    // lost in a network black hole held the producer and the consumer ~26 s after the network healed.
    timeout: config.requestTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    retries: config.retries,
    // A fixed delay: the library has no cap for a growing one, so this is the adapter's cap. None
    // after a refused password: the library retries it (its connection error wraps the
    // non-retriable one in `cause`, which its retry check does not read), and waiting only delays
    // the AuthenticationError.
    retryDelay: (_client, _operation, _attempt, _retries, error) =>
      classifyError(error) === 'auth' ? 0 : Math.min(config.maxRetryTimeMs, 250),
    // The adapter creates the topics it needs, with their settings; a typo must not create one.
    autocreateTopics: false,
    ...(config.ssl === true ? { tls: {} } : typeof config.ssl === 'object' ? { tls: config.ssl } : {}),
    ...(config.sasl !== undefined
      ? {
          sasl: {
            mechanism: config.sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512',
            username: config.sasl.username,
            password: config.sasl.password,
          },
        }
      : {}),
  };
}

export function createPlatformaticClient(config: ClientConfig): KafkaClient {
  const admins = new Set<Admin>();
  return {
    get native() {
      return { kind: 'platformatic', options: baseOptions(config), admins: [...admins] };
    },
    async admin() {
      const admin = new Admin(baseOptions(config));
      admins.add(admin);
      admin.once('client:close', () => admins.delete(admin));
      // The library connects lazily; a metadata request proves the brokers answer, as kafkajs' connect().
      try {
        await admin.metadata({ topics: [] });
      } catch (error) {
        await admin.close().catch(() => undefined);
        throw error;
      }
      return wrapAdmin(admin);
    },
    async producer(settings) {
      return wrapProducer(config, settings);
    },
    consumer(settings) {
      return platformaticConsumer(baseOptions(config), settings, config.logger);
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Right after a topic is created, a KRaft broker answers for it with retriable errors for a moment. */
async function retrying<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const kind = classifyError(error);
      const retriable = (error as { canRetry?: boolean }).canRetry === true || kind === 'unknown-topic';
      if (!retriable || attempt >= 8 || kind === 'unreachable') throw error;
      await sleep(Math.min(1_000, 50 * 2 ** attempt));
    }
  }
}

function wrapAdmin(admin: Admin): ClientAdmin {
  const partitionsOf = async (topic: string): Promise<number[]> => {
    const metadata = await retrying(() => admin.metadata({ topics: [topic], forceUpdate: true }));
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
    return Array.from({ length: count }, (_, i) => i);
  };
  const self: ClientAdmin = {
    async createTopics(specs) {
      // One request per topic: the library gives every topic of a request the same partitions and configs.
      await Promise.all(
        specs.map(async (s) => {
          try {
            await retrying(() =>
              admin.createTopics({
                topics: [s.topic],
                partitions: s.partitions,
                replicas: s.replicationFactor,
                configs: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
              }),
            );
          } catch (error) {
            // Another process created it a moment ago.
            if (classifyError(error) !== 'topic-exists') throw error;
          }
        }),
      );
      await self.awaitLeaders(
        specs.map((s) => s.topic),
        30_000,
      );
    },
    listTopics: () => retrying(() => admin.listTopics()),
    async awaitLeaders(topics, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let lacking = [...topics];
      for (let attempt = 0; lacking.length > 0; attempt++) {
        try {
          const { topics: found } = await admin.metadata({ topics: lacking, forceUpdate: true });
          lacking = lacking.filter((topic) => {
            const partitions = found.get(topic)?.partitions ?? [];
            return partitions.length === 0 || partitions.some((p) => p === undefined || p.leader < 0);
          });
        } catch (error) {
          const kind = classifyError(error);
          const retriable = kind === 'unknown-topic' || (error as { canRetry?: boolean }).canRetry === true;
          if (!retriable || kind === 'unreachable') throw error;
        }
        if (lacking.length === 0 || Date.now() >= deadline) break;
        await sleep(Math.min(1_000, 25 * 2 ** attempt, Math.max(0, deadline - Date.now())));
      }
      return lacking;
    },
    async deleteTopics(topics) {
      if (topics.length > 0) await admin.deleteTopics({ topics: [...topics] });
    },
    async deleteGroups(groups) {
      if (groups.length > 0) await admin.deleteGroups({ groups: [...groups] });
    },
    async committed(groupId, topic): Promise<CommittedOffset[]> {
      const partitions = await partitionsOf(topic);
      const [group] = await retrying(() =>
        admin.listConsumerGroupOffsets({
          groups: [{ groupId, topics: [{ name: topic, partitionIndexes: partitions }] }],
        }),
      );
      const found = group?.topics.find((t) => t.name === topic)?.partitions ?? [];
      return found.map((p) => ({
        partition: p.partitionIndex,
        offset: String(p.committedOffset),
        metadata: p.metadata ?? null,
      }));
    },
    async ends(topic): Promise<PartitionEnd[]> {
      const partitions = await partitionsOf(topic);
      // Timestamps -2 and -1 ask for the earliest and the latest offset.
      const at = (timestamp: bigint) =>
        retrying(() =>
          admin.listOffsets({
            topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }],
          }),
        );
      const [low, high] = await Promise.all([at(-2n), at(-1n)]);
      const offsetOf = (list: typeof low, partition: number): string =>
        String(list[0]?.partitions.find((p) => p.partitionIndex === partition)?.offset ?? 0n);
      return partitions.map((partition) => ({
        partition,
        low: offsetOf(low, partition),
        high: offsetOf(high, partition),
      }));
    },
    async members(groupId) {
      const groups = await retrying(() => admin.describeGroups({ groups: [groupId] }));
      return groups.get(groupId)?.members.size ?? 0;
    },
    async maxMessageBytes(topic) {
      const [resource] = await admin.describeConfigs({
        resources: [
          { resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['max.message.bytes'] },
        ],
      });
      const value = resource?.configs.find((c) => c.name === 'max.message.bytes')?.value;
      return value === undefined || value === null ? undefined : Number(value);
    },
    async topicConfigs(topic, names) {
      const [resource] = await admin.describeConfigs({
        resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: [...names] }],
      });
      const out: Record<string, string> = {};
      for (const c of resource?.configs ?? []) if (c.value !== undefined && c.value !== null) out[c.name] = c.value;
      return out;
    },
    disconnect: () => admin.close(),
  };
  return self;
}

/**
 * Keyed records go where the Java client (and kafkajs) put them, so both clients of this adapter
 * and foreign producers agree on a key's partition; the library's default differs (`murmur2 >>> 0`
 * instead of `& 0x7fffffff`). Keyless records take turns (the modulo is the library's).
 */
function javaCompatiblePartitioner(): (message: MessageToProduce, key: Buffer | undefined) => number {
  let next = 0;
  return (_message, key) => (key !== undefined && key !== null ? murmur2(key) & 0x7fffffff : next++ & 0x7fffffff);
}

/** Headers whose values usually repeat between records (see header-bytes.ts); ids and times never do. */
const REPEATING_VALUES = new Map<string, LastBytes>(
  [...REPEATING_ATTRIBUTES.map((a) => CE_PREFIX + a), CONTENT_TYPE].map((name) => [name, new LastBytes()]),
);

function toMessage(topic: string, record: OutgoingRecord): MessageToProduce {
  const headers = new Map<Buffer, Buffer>();
  for (const name in record.headers) {
    const value = record.headers[name] as Buffer | string | (Buffer | string)[];
    if (Array.isArray(value)) {
      // Distinct Buffer keys: a Map keeps each, so a repeated header name is written repeatedly.
      for (const one of value) headers.set(Buffer.from(name), typeof one === 'string' ? Buffer.from(one) : one);
    } else {
      const bytes =
        typeof value !== 'string' ? value : (REPEATING_VALUES.get(name)?.bytes(value) ?? Buffer.from(value));
      headers.set(headerNameBytes(name), bytes);
    }
  }
  return {
    topic,
    ...(record.key !== null ? { key: typeof record.key === 'string' ? Buffer.from(record.key) : record.key } : {}),
    // A tombstone: the library writes an absent value as null.
    value: record.value ?? (undefined as unknown as Buffer),
    headers,
    ...(record.partition !== undefined ? { partition: record.partition } : {}),
  };
}

/**
 * The idempotent producer, replaced by a new one (a new producer id) after a failed send, for the
 * reason `safeProducer` in client.ts gives: after a send whose outcome is unknown, the sequence
 * numbers of the old id may collide with what the broker stored, and a later record would be taken
 * for a duplicate and dropped.
 */
async function wrapProducer(config: ClientConfig, settings: ProducerSettings): Promise<ClientProducer> {
  const create = (): Producer =>
    new Producer({
      ...baseOptions(config),
      timeout: settings.requestTimeoutMs,
      requestTimeout: settings.requestTimeoutMs,
      retries: settings.retries,
      retryDelay: Math.min(settings.maxRetryTimeMs, 250),
      idempotent: settings.idempotent,
      acks: settings.acks,
      partitioner: javaCompatiblePartitioner(),
    });
  let current = create();
  // Connect now, as kafkajs' connect() does: an unreachable broker fails here, not on the first send,
  // and the first publish does not wait for a producer id.
  await current.metadata({ topics: [] });
  if (settings.idempotent) await current.initIdempotentProducer({ acks: settings.acks });
  let spoiled = false;
  const retired = new Set<Producer>();
  return {
    async send(batch) {
      if (settings.idempotent && spoiled) {
        const old = current;
        current = create();
        spoiled = false;
        retired.add(old);
        void old
          .close()
          .catch(() => undefined)
          .finally(() => retired.delete(old));
      }
      const mine = current;
      const messages = batch.flatMap(({ topic, records }) => records.map((r) => toMessage(topic, r)));
      try {
        await mine.send({ messages, acks: settings.acks });
      } catch (error) {
        if (mine === current) spoiled = true;
        throw error;
      }
    },
    async disconnect() {
      await Promise.all([current.close(), ...[...retired].map((p) => p.close().catch(() => undefined))]);
    },
  };
}
