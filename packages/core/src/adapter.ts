import type { DeadLetterInfo } from './dead-letter.js';
import type { WireMessage } from './envelope.js';
import type { IncidentSink } from './incident.js';
import type { Logger } from './logger.js';
import type { NormalizedRetryPolicy } from './policy.js';
import type { RawPublishOptions, RawSubscribeOptions } from './raw.js';

/**
 * What an adapter declares about its broker. Defaults live in {@link DEFAULT_CAPABILITIES};
 * an adapter spreads them and overrides, so a new flag breaks no adapter.
 */
export interface Capabilities {
  /** Events with the same `partitionkey` are handled in publish order on the happy path. */
  readonly orderedByKey: boolean;
  /** Publishing to a channel with no declared group fails with `UnroutableError` instead of storing it. */
  readonly rejectsUnroutable: boolean;
  /** The broker itself drops a republished event id within a window (e.g. JetStream `Nats-Msg-Id`). */
  readonly brokerDeduplication: boolean;
  /** Largest encoded event the broker accepts, in bytes. */
  readonly maxMessageBytes: number;
  /**
   * Raw mode: `subscribe` honours `SubscribeRequest.raw` (plain payloads from an existing queue,
   * wrapped with `wrapPlainMessage`) and `publish` honours `PublishRequestOptions.raw`.
   */
  readonly rawMessages: boolean;
}

export const DEFAULT_CAPABILITIES: Capabilities = Object.freeze({
  orderedByKey: false,
  rejectsUnroutable: false,
  brokerDeduplication: false,
  maxMessageBytes: 1024 * 1024 * 8,
  rawMessages: false,
});

/** A decoded message, or why it could not be decoded (it is then dead-lettered as `undecodable`). */
export type Decoded =
  | { readonly ok: true; readonly message: WireMessage }
  | { readonly ok: false; readonly error: Error };

/** What the core asks for when a handler failed and another attempt is due. */
export interface RetryInstruction {
  /** The attempt number the redelivery will carry (2 for the first retry). */
  readonly attempt: number;
  /** The policy's base delay for this retry: names the tier (TTL queue, retry topic). */
  readonly tierMs: number;
  /** The delay to apply, jitter included. */
  readonly delayMs: number;
  /** When the first attempt failed (ISO 8601); carried for dead-letter metadata. */
  readonly firstFailureAt: string;
}

/**
 * One message handed to the core. The core calls exactly one settlement method, once.
 * Each resolves only when the broker has applied it.
 */
export interface Delivery {
  readonly decoded: Decoded;
  /** 1-based attempt number, from our own header or the broker's delivery count. Never reset by a redelivery. */
  readonly attempt: number;
  /** When the first attempt failed, if an earlier attempt failed. */
  readonly firstFailureAt?: string;
  /** Settle as done. */
  ack(): Promise<void>;
  /** Hold the message in the broker for `delayMs`, then redeliver it to this group only; then settle the original. */
  retry(instruction: RetryInstruction): Promise<void>;
  /**
   * Write the message (payload, id and headers preserved) with `info` to this group's dead-letter
   * destination; settle the original only after the broker confirmed that write. Rejects, leaving
   * the original unsettled, when the write failed.
   */
  deadLetter(info: DeadLetterInfo): Promise<void>;
  /** Give the message back unsettled so it is redelivered (shutdown, failed dead-letter write). */
  release(): Promise<void>;
}

/** A subscription as the adapter sees it. */
export interface SubscribeRequest {
  readonly channel: string;
  readonly group: string;
  /** At most this many deliveries are outstanding (handed to `onDelivery` and not yet settled). */
  readonly concurrency: number;
  readonly policy: NormalizedRetryPolicy;
  /**
   * Report every event that leaves the normal path without a settlement the core asked for (a
   * broker delivery cap reached without a confirmed dead letter, a message removed unsettled, a
   * stalled consumer). The bus logs, counts and observes it. Absent when a test calls the adapter
   * directly: use `incidentSink(request, logger)`.
   */
  readonly incident?: IncidentSink | undefined;
  /**
   * Raw mode (only when `capabilities.rawMessages`): consume plain payloads from the existing queue
   * `raw.queue` (default: the channel name) instead of the group's own, adopting it as it is, and
   * decode each with `wrapPlainMessage`. Retries and dead letters still use the group's own
   * destinations; retries come back to the adopted queue.
   */
  readonly raw?: RawSubscribeOptions | undefined;
  /**
   * The broker may delete this group's queue (durable consumer) once it has had no consumer for
   * this long: a group that lives as long as one process (a reply inbox) and whose process died
   * without `close()`. RabbitMQ: `x-expires` on the group's queues; NATS: the consumer's
   * `inactive_threshold`. Adapters without such a mechanism ignore it.
   */
  readonly expireWhenIdleMs?: number | undefined;
}

/** Options of {@link Adapter.publish}. */
export interface PublishRequestOptions {
  /**
   * Raw mode (only when `capabilities.rawMessages`): send each message's body alone, persistent,
   * with its content type and its id as the broker's message id, and no event attributes, to the
   * existing queue `raw.queue` (default: the channel name).
   */
  readonly raw?: RawPublishOptions | undefined;
}

/** A running subscription. */
export interface AdapterSubscription {
  /** Stop taking new messages; messages fetched but not handed over return to the broker. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A group's backlog as the broker counts it, by state. Counts are of events (messages), read from the
 * broker at the time of the call; each adapter's README says which counts its broker can give and how.
 */
export interface GroupBacklog {
  /** Waiting to be handed to a subscriber of the group. */
  readonly ready: number;
  /** Handed to a subscriber and not yet settled (0 where the broker cannot tell them from `ready`, or at all). */
  readonly inFlight: number;
  /** Held by the broker for a later retry (TTL retry queues, retry topics, `nak` delays). */
  readonly delayed: number;
  /** In the group's dead-letter destination. */
  readonly deadLetters: number;
  /** Subscribers attached to the group, where the broker knows them. */
  readonly consumers?: number;
  /**
   * The most subscribers of the group that can receive events at once, where the broker limits it
   * (Kafka: the channel topic's partition count); more replicas than this would idle.
   */
  readonly maxConsumers?: number;
}

/** A message read from a dead-letter destination. */
export interface StoredDeadLetter {
  readonly decoded: Decoded;
  /** The dead-letter headers (`wharf-dl-*`) as strings. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * A broker driver. Constructing one does no I/O. Adapters supply broker primitives;
 * the core decides every settlement. The conformance suite has a case for each rule below.
 */
export interface Adapter {
  /** Short broker name for messages and metrics: `memory`, `rabbitmq`, `kafka`, `nats`. */
  readonly name: string;
  readonly capabilities: Capabilities;
  /**
   * - resolves once the broker is reachable and authenticated, or rejects with
   *   `BrokerUnreachableError` / `AuthenticationError` within a bounded time;
   * - called once by the core before any other member.
   */
  connect(): Promise<void>;
  /**
   * - resolves only after the broker durably accepted every message (confirm, acks=all, PubAck);
   * - rejects with a typed error (`PublishError`, `UnroutableError`, `MessageTooLargeError`) otherwise;
   * - messages with the same `partitionkey` attribute are stored in array order.
   */
  publish(channel: string, messages: readonly WireMessage[], options?: PublishRequestOptions): Promise<void>;
  /**
   * - idempotently creates what the groups need so that events published from now on are kept
   *   for each group, whether or not a subscriber is running (queues, consumer offsets, durables).
   */
  declare(channel: string, groups: readonly string[], policy: NormalizedRetryPolicy): Promise<void>;
  /**
   * - declares the group, then hands messages to `onDelivery`, never more than `concurrency` unsettled;
   * - subscribers of one group compete (each message to one); each group gets every message;
   * - a message is redelivered until settled; nothing is settled before the core says so;
   * - retries go back to this group only.
   */
  subscribe(request: SubscribeRequest, onDelivery: (delivery: Delivery) => Promise<void>): Promise<AdapterSubscription>;
  /**
   * Optional. Publishes to one group of the channel only, confirmed like `publish`. Replays of dead
   * letters use it so that other groups, which handled the event already, do not see it again.
   * Without it, replays go to the whole channel and other groups rely on their dedup stores.
   */
  publishToGroup?(channel: string, group: string, messages: readonly WireMessage[]): Promise<void>;
  /**
   * - visits up to `limit` dead letters of the channel's group, oldest first;
   * - a dead letter is removed only when `visit` resolves `true` (after a confirmed replay).
   */
  readDeadLetters(
    channel: string,
    group: string,
    options: { limit: number },
    visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
  ): Promise<void>;
  /**
   * Optional. Reports the group's backlog ({@link GroupBacklog}).
   * - read-only: never creates a queue, topic, stream, consumer or offset, and never moves one;
   * - rejects with `UnknownGroupError` when the group was never declared on the channel;
   * - `policy` is the group's retry policy: where the broker cannot list a group's retry tiers
   *   (RabbitMQ over AMQP), the tiers it names are the ones counted as `delayed`.
   */
  backlog?(channel: string, group: string, policy: NormalizedRetryPolicy): Promise<GroupBacklog>;
  /**
   * Optional. Deletes what `declare` and `subscribe` created for one group of the channel alone (its
   * queue, retry tiers and dead-letter queue / durable consumer / consumer group, retry and
   * dead-letter topics), with the events held for it; the channel and its other groups stay.
   * - idempotent: a group that does not exist resolves;
   * - called only once no subscriber of the group runs. The core calls it on close for the groups
   *   that live as long as one bus (its reply inboxes); without it they stay on the broker.
   */
  deleteGroup?(channel: string, group: string, policy: NormalizedRetryPolicy): Promise<void>;
  /**
   * - after it resolves no `onDelivery` call starts and connections are closed;
   * - unsettled messages are redelivered by the broker later; idempotent.
   */
  close(): Promise<void>;
  /** The native client, for what Wharf does not cover. */
  raw(): unknown;
}

/** What every adapter factory receives. */
export interface AdapterInit {
  /** The broker URL; may hold credentials — never log it unredacted. */
  readonly url: string;
  readonly logger: Logger;
}

/** An adapter package's default export. */
export type AdapterFactory<Options extends object = Record<string, unknown>> = (init: AdapterInit & Options) => Adapter;
