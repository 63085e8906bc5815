import { brokersRequired, probeBroker } from '@wharf/conformance';
import { type LegacyProducer, type Logger, silentLogger } from '@wharf/core';
import { type ClientAdmin, createClient, type KafkaClient } from '../src/client.js';
import createKafkaAdapter, {
  conformanceHarness,
  type ForeignKafkaMessage,
  type KafkaAdapter,
  type KafkaAdapterOptions,
  Names,
} from '../src/index.js';

export const KAFKA_URL = process.env.WHARF_KAFKA_URL ?? 'kafka://127.0.0.1:9092';
const [host = '127.0.0.1', port = '9092'] = (KAFKA_URL.replace(/^kafkas?:\/\//, '').split(',')[0] ?? '').split(':');

/** Why the Kafka tests cannot run, or undefined when the broker answers. */
export const unavailable = await probeBroker('Kafka', host, Number(port));
if (unavailable && !brokersRequired()) {
  process.stdout.write(`[wharf] kafka tests skipped: ${unavailable} — start it with: bash scripts/kafka.sh up\n`);
}
/** Skip (locally) or fail (CI / WHARF_REQUIRE_BROKERS) when the broker is missing. */
export const skipKafka = unavailable !== undefined && !brokersRequired();

/**
 * Settings for tests: short session and heartbeat so rebalances and leaving members settle fast
 * (6 s is the broker's minimum session timeout), short long-polls so due retries are picked up quickly.
 */
export const FAST: KafkaAdapterOptions = {
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 300,
  rebalanceTimeoutMs: 10_000,
  maxWaitTimeMs: 100,
  commitIntervalMs: 200,
  releaseBackoffMs: 100,
  connectTimeoutMs: 10_000,
};

/** `WHARF_KAFKA_CLIENT=kafkajs` runs every adapter test on kafkajs instead of the default, @platformatic/kafka (a test's own `client` wins). */
const CLIENT = process.env.WHARF_KAFKA_CLIENT as KafkaAdapterOptions['client'];

export function adapter(options: KafkaAdapterOptions = {}, logger: Logger = silentLogger): KafkaAdapter {
  return createKafkaAdapter({ url: KAFKA_URL, logger, ...FAST, ...(CLIENT ? { client: CLIENT } : {}), ...options });
}

export const names = new Names('wharf');

let shared: { client: KafkaClient; admin: Promise<ClientAdmin> } | undefined;

/** A raw client for checks (not the adapter under test). */
export function rawClient(): { client: KafkaClient; admin: Promise<ClientAdmin> } {
  if (!shared) {
    const client = createClient({
      brokers: [`${host}:${port}`],
      clientId: 'wharf-kafka-tests',
      connectionTimeoutMs: 3_000,
      requestTimeoutMs: 30_000,
      retries: 5,
      maxRetryTimeMs: 2_000,
      logger: silentLogger,
    });
    shared = { client, admin: client.admin() };
  }
  return shared;
}

const harness = conformanceHarness(KAFKA_URL);

/** Deletes every topic and consumer group of a channel (and its groups). */
export const cleanupChannel: (channel: string, groups: readonly string[]) => Promise<void> = harness.cleanup;

/** Produces a record as a foreign (non-Wharf) producer would, straight to the channel topic. */
export const publishForeign: (channel: string, message: ForeignKafkaMessage) => Promise<void> = harness.publishForeign;

/** A plain kafkajs producer on a topic of its own, for the raw-mode cases. */
export const legacyProducer: () => LegacyProducer = harness.legacyProducer;
