import { createHash } from 'node:crypto';
import type { Decoded } from './adapter.js';
import { JSON_CONTENT_TYPE } from './envelope.js';
import { ConfigError } from './errors.js';

/**
 * Raw mode of a subscription: the messages are plain payloads from a producer that knows nothing of
 * CloudEvents (no `ce_`/`cloudEvents_` attributes), and each is wrapped into an event on delivery.
 * The same option maps onto each broker's own place: a RabbitMQ queue, a Kafka topic, a NATS subject.
 */
export interface RawSubscribeOptions {
  /**
   * The existing queue (topic, subject) to consume, adopted as the producer declared it; default: the
   * channel name. Wharf never declares or changes it (see the adapter's README for how it adopts one).
   */
  readonly queue?: string;
  /** The CloudEvents `type` every wrapped message gets (the contract's message name, if one is configured). */
  readonly type: string;
  /** The CloudEvents `source` every wrapped message gets. */
  readonly source: string;
  /**
   * Arguments the existing queue must have (RabbitMQ: `x-dead-letter-exchange`, `x-queue-type`…).
   * When given, the queue is declared with them and a queue that exists with other arguments fails
   * with `TopologyMismatchError`; when absent, the queue is only checked to exist.
   */
  readonly arguments?: Readonly<Record<string, unknown>>;
}

/**
 * On a raw subscription's dead letter: the adopted queue (subject, topic) it came from, so a replay
 * from any process (`wharf dlq replay` too, which runs no raw subscription) sends it back there as a
 * plain message, not to a channel nobody reads. The same header on every adapter.
 */
export const RAW_QUEUE_HEADER = 'wharf-dl-raw-queue';

/** Raw mode of a publish: the event's data alone, as a legacy consumer expects it. */
export interface RawPublishOptions {
  /** The existing queue (topic, subject) to publish to; default: the channel name. */
  readonly queue?: string;
}

/** Options of `Bus.publish`. */
export interface PublishOptions {
  /**
   * Publish the event's data as a plain payload (no CloudEvents attributes), persistent, to an
   * existing queue, for consumers that predate Wharf. Needs an adapter with `capabilities.rawMessages`.
   */
  readonly raw?: RawPublishOptions;
}

/** What a broker knows of a plain message besides its body. */
export interface PlainMessage {
  readonly body: Uint8Array;
  /** The producer's message id (AMQP `message-id`), if it set one. */
  readonly messageId?: string | undefined;
  /** The producer's content type; default `application/json`. */
  readonly contentType?: string | undefined;
  /** When the producer sent it (RFC 3339), if the broker carries it. */
  readonly time?: string | undefined;
}

/**
 * Wraps a plain message into an event: `type` and `source` from configuration; `id` the producer's
 * message id, else `sha256:<hex of the body>`, so the same message redelivered (or retried) keeps
 * its id and dedup recognises it. Two distinct messages with identical bodies and no message id
 * share an id, and the second is skipped as a duplicate: producers that can should set a message id.
 * Never throws; the body is parsed by the core later (a non-JSON body is dead-lettered as `undecodable`).
 */
export function wrapPlainMessage(raw: Pick<RawSubscribeOptions, 'type' | 'source'>, message: PlainMessage): Decoded {
  const id =
    message.messageId !== undefined && message.messageId !== ''
      ? message.messageId
      : `sha256:${createHash('sha256').update(message.body).digest('hex')}`;
  const attributes: Record<string, string> = {
    specversion: '1.0',
    id,
    source: raw.source,
    type: raw.type,
    datacontenttype: message.contentType ?? JSON_CONTENT_TYPE,
  };
  if (message.time !== undefined) attributes.time = message.time;
  return { ok: true, message: { attributes, body: message.body } };
}

/** Throws `ConfigError` unless `raw` is a usable subscribe option. */
export function checkRawSubscribe(raw: RawSubscribeOptions): void {
  if (raw === null || typeof raw !== 'object')
    throw new ConfigError('core', 'raw must be an object with type and source');
  for (const name of ['type', 'source'] as const) {
    if (typeof raw[name] !== 'string' || raw[name].length === 0) {
      throw new ConfigError('core', `raw.${name} must be a non-empty string: it becomes every wrapped event's ${name}`);
    }
  }
  if (raw.queue !== undefined && (typeof raw.queue !== 'string' || raw.queue.length === 0)) {
    throw new ConfigError('core', 'raw.queue must be a non-empty string when given');
  }
  if (raw.arguments !== undefined && (raw.arguments === null || typeof raw.arguments !== 'object')) {
    throw new ConfigError('core', 'raw.arguments must be an object of queue arguments when given');
  }
}

/**
 * A producer that knows nothing of Wharf, with the broker's raw client, on a queue (topic, subject)
 * of its own that it creates as a legacy system would. The raw-mode conformance cases adopt it;
 * each adapter's `conformanceHarness` gives one.
 */
export interface LegacyProducer {
  /** What `raw.queue` names: the queue, topic or subject. */
  readonly queue: string;
  /** Creates the queue (topic, stream on the subject) with the producer's own settings. */
  declare(): Promise<void>;
  /** Sends a plain, persistent body, awaiting the broker's confirm; `messageId` in the broker's native place. */
  publish(body: string, options?: { readonly messageId?: string }): Promise<void>;
  /** Deletes the queue and closes the client. Called after the case's buses are closed. */
  close(): Promise<void>;
}
