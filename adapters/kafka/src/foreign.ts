import { randomBytes } from 'node:crypto';
import { type LegacyProducer, type Logger, silentLogger } from '@wharf/core';
import type { ClientAdmin, ClientProducer } from './client.js';
import { openClient } from './clients.js';
import { type KafkaAdapterOptions, resolveOptions } from './options.js';
import { Names } from './topology.js';

/** A record as a non-Wharf producer writes it. */
export interface ForeignKafkaMessage {
  readonly body: Uint8Array;
  /** Record headers, as plain strings. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Written as the `content-type` header, as the CloudEvents Kafka binding does. */
  readonly contentType?: string;
  /** The record key; none by default. */
  readonly key?: string;
}

export interface KafkaConformanceHarness {
  /** Writes a record with the raw client to the channel's topic (which must exist), as a foreign producer would. */
  publishForeign(channel: string, message: ForeignKafkaMessage): Promise<void>;
  /** Deletes the channel's topic, its groups' retry and dead-letter topics, and the groups' consumer groups. */
  cleanup(channel: string, groups: readonly string[]): Promise<void>;
  /**
   * A producer as legacy Kafka code is written: a one-partition topic of its own, and JSON values with
   * acks=all, the message id in a `message-id` header.
   */
  legacyProducer(): LegacyProducer;
}

/**
 * What the conformance suite needs beyond the adapter, with the raw client: a foreign producer for
 * the undecodable and structured-mode cases, and the deletion of what a case declared. Topic names
 * come from the same `Names` as the adapter's (`topicPrefix` from `options` or the URL).
 * `wharf conformance --broker kafka://…` picks it up; the adapter's own tests use it too.
 * Each call opens and closes its own connections, so there is nothing to close.
 */
export function conformanceHarness(
  url: string,
  options: KafkaAdapterOptions = {},
  logger: Logger = silentLogger,
): KafkaConformanceHarness {
  const o = resolveOptions(url, options);
  const names = new Names(o.topicPrefix);
  const client = openClient(o.client, {
    brokers: o.brokers,
    clientId: `${o.clientId}-harness`,
    ...(o.ssl !== undefined ? { ssl: o.ssl } : {}),
    ...(o.sasl !== undefined ? { sasl: o.sasl } : {}),
    connectionTimeoutMs: 3_000,
    requestTimeoutMs: 30_000,
    retries: 5,
    maxRetryTimeMs: 2_000,
    logger,
  });
  const withAdmin = async <T>(work: (admin: ClientAdmin) => Promise<T>): Promise<T> => {
    const admin = await client.admin();
    try {
      return await work(admin);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };
  const producer = () =>
    client.producer({ idempotent: false, acks: -1, retries: 5, maxRetryTimeMs: 2_000, requestTimeoutMs: 30_000 });
  return {
    legacyProducer: () => legacyTopic(withAdmin, producer),
    async publishForeign(channel, message) {
      const sender = await producer();
      try {
        const headers: Record<string, string> = { ...message.headers };
        if (message.contentType !== undefined) headers['content-type'] = message.contentType;
        await sender.send([
          {
            topic: names.channel(channel),
            records: [{ key: message.key ?? null, value: Buffer.from(message.body), headers }],
          },
        ]);
      } finally {
        await sender.disconnect().catch(() => undefined);
      }
    },
    cleanup: (channel, groups) =>
      withAdmin(async (admin) => {
        // Matched by components, not by a string prefix: channel `a` must not take channel `a-b`'s topics.
        const topics = (await admin.listTopics()).filter((t) => names.ofChannel(t, channel));
        await admin.deleteTopics(topics).catch(() => undefined);
        const ids = groups.flatMap((g) => [names.group(channel, g), names.deadLetterReader(channel, g)]);
        await admin.deleteGroups(ids).catch(() => undefined);
      }),
  };
}

function legacyTopic(
  withAdmin: <T>(work: (admin: ClientAdmin) => Promise<T>) => Promise<T>,
  open: () => Promise<ClientProducer>,
): LegacyProducer {
  const topic = `legacy-orders-${randomBytes(4).toString('hex')}`;
  let producer: ClientProducer | undefined;
  return {
    queue: topic,
    async declare() {
      await withAdmin((admin) =>
        admin.createTopics([{ topic, partitions: 1, replicationFactor: -1, configs: { 'cleanup.policy': 'delete' } }]),
      );
      producer = await open();
    },
    async publish(body, options = {}) {
      if (producer === undefined) throw new Error('declare() first');
      const headers: Record<string, string> = {};
      if (options.messageId !== undefined) headers['message-id'] = options.messageId;
      await producer.send([{ topic, records: [{ key: null, value: Buffer.from(body), headers }] }]);
    },
    async close() {
      await producer?.disconnect().catch(() => undefined);
      await withAdmin((admin) => admin.deleteTopics([topic])).catch(() => undefined);
    },
  };
}
