import {
  type Decoded,
  type RawSubscribeOptions,
  TopologyMismatchError,
  type WireMessage,
  wrapPlainMessage,
} from '@wharf/core';
import type { ClientAdmin, IncomingHeaders, IncomingRecord, OutgoingRecord } from './client.js';
import { encode, headerText } from './codec.js';
import { ADAPTER_NAME } from './options.js';

/**
 * Raw mode on Kafka (see README, "Plain messages on existing topics"). A raw subscription reads a
 * topic another producer created; Wharf adopts it as it is and never creates it or alters its
 * configs. The group's consumer group, retry topics and dead-letter topic are Wharf's own as usual.
 */

/** The header a producer may set to give its message an id (else the id is the value's hash). */
export const MESSAGE_ID_HEADER = 'message-id';
/**
 * When the producer's record was stored, carried on retry copies: a retry topic's record has its own
 * timestamp, and the wrapped event's `time` must not change between attempts.
 */
export const RAW_TIME_HEADER = 'wharf-raw-time';

/** `raw.arguments` names that are not topic configs but read from the topic's metadata. */
const PARTITIONS = 'partitions';

/**
 * Checks that `topic` exists and, with `args`, that it has them: `partitions` (its partition count)
 * and any topic config by name (`cleanup.policy`, `retention.ms`…, compared as strings, as Kafka
 * describes them). Reads only: a mismatch is refused, never repaired.
 */
export async function adoptTopic(
  admin: ClientAdmin,
  topic: string,
  args: Readonly<Record<string, unknown>> | undefined,
): Promise<void> {
  const topics = await admin.listTopics();
  if (!topics.includes(topic)) {
    throw new TopologyMismatchError(
      ADAPTER_NAME,
      topic,
      `raw mode adopts the existing topic "${topic}", but it does not exist — start the producer that creates it first (kafka-topics.sh --list), or name the right topic in raw.queue`,
    );
  }
  if (args === undefined) return;
  const found: Record<string, unknown> = {};
  const configNames = Object.keys(args).filter((name) => name !== PARTITIONS);
  if (PARTITIONS in args) found[PARTITIONS] = (await admin.ends(topic)).length;
  if (configNames.length > 0) Object.assign(found, await admin.topicConfigs(topic, configNames));
  const differing = Object.entries(args).filter(([name, wanted]) =>
    name === PARTITIONS ? found[name] !== wanted : found[name] !== String(wanted),
  );
  if (differing.length > 0) {
    const has = Object.fromEntries(differing.map(([name]) => [name, found[name] ?? null]));
    throw new TopologyMismatchError(
      ADAPTER_NAME,
      topic,
      `the existing topic "${topic}" has other arguments than raw.arguments: it has ${JSON.stringify(has)} where raw.arguments says ${JSON.stringify(Object.fromEntries(differing))} — Wharf changed nothing; fix raw.arguments to match the topic (kafka-configs.sh --describe --topic ${topic}), or omit them to adopt it as it is`,
    );
  }
}

/**
 * A consumed plain record as an event: the id is the producer's `message-id` header (else the
 * value's hash), the time when the producer's record was stored, the key the partition key.
 */
export function decodePlain(raw: Pick<RawSubscribeOptions, 'type' | 'source'>, record: IncomingRecord): Decoded {
  const { headers } = record;
  const stored = Number(record.timestamp);
  const time =
    text(headers, RAW_TIME_HEADER) ??
    (Number.isFinite(stored) && stored > 0 ? new Date(stored).toISOString() : undefined);
  const value = record.value ?? Buffer.alloc(0);
  const wrapped = wrapPlainMessage(raw, {
    body: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    messageId: text(headers, MESSAGE_ID_HEADER),
    contentType: text(headers, 'content-type'),
    time,
  });
  if (!wrapped.ok || record.key === null || record.key.length === 0) return wrapped;
  let key: string;
  try {
    key = new TextDecoder('utf-8', { fatal: true }).decode(record.key);
  } catch {
    return wrapped; // a binary key is not a partition key attribute
  }
  const { message } = wrapped;
  return { ok: true, message: { attributes: { ...message.attributes, partitionkey: key }, body: message.body } };
}

/** A header as text, or undefined when absent or unreadable (a foreign producer's binary header). */
function text(headers: IncomingHeaders, name: string): string | undefined {
  try {
    return headerText(headers, name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The wrapped event's headers (`ce_*`, `content-type`), added to a raw dead letter so it reads back
 * as the event that failed (`wharf dlq`, `bus.visitDeadLetters`) while its value stays the producer's.
 */
export function eventHeaders(decoded: Decoded): Record<string, string> {
  if (!decoded.ok) return {};
  return encode(decoded.message).headers as Record<string, string>;
}

/**
 * What a raw publish sends: the value alone, keyed by the event's partition key, no headers. A
 * replay (`withId`) carries the event id as `message-id`, so the replayed event keeps its id.
 */
export function plainRecord(message: WireMessage, withId: boolean): OutgoingRecord {
  const body = message.body;
  const id = message.attributes.id;
  return {
    key: message.attributes.partitionkey ?? null,
    value: body.length === 0 ? null : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    headers: withId && id !== undefined ? { [MESSAGE_ID_HEADER]: id } : {},
  };
}
