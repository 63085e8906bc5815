import { createHash } from 'node:crypto';
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos, PermissionViolationError } from '@nats-io/transport-node';
import { ConfigError, type NormalizedRetryPolicy, type NotAuthorizedError, TopologyError } from '@wharf/core';
import { isStreamNotFound, notAuthorized } from './errors.js';
import { ADAPTER_NAME, type ResolvedNatsOptions } from './options.js';
import { DECLARE_BACKOFF_MS, retrying } from './transient.js';

/**
 * What the adapter declares, per channel:
 * - stream `<PREFIX>-<channel>` (file storage, limits retention, discard new) on subject `<prefix>.<channel>`;
 *   what every group settled is purged by the adapter (retention.ts);
 * - stream `<PREFIX>-DLQ-<channel>` (file storage, limits retention) on `<prefix>.dlq.<channel>.<group>`;
 * - per group, a durable pull consumer named `<group>` on the channel stream (explicit ack, deliver new).
 * Channel and group names are escaped into single subject tokens / stream-name-safe strings.
 */
export interface ChannelNames {
  readonly stream: string;
  readonly subject: string;
  readonly dlqStream: string;
  /** Subject filter of all the channel's dead letters. */
  readonly dlqSubjects: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
/** Longest escaped name kept readable; longer ones end in a hash (stream names become file names). */
const MAX_ESCAPED = 120;

/** Checks a channel or group name (the core checks too; the adapter may be used on its own). */
export function checkName(name: unknown, what: 'channel' | 'group'): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `${what} name ${JSON.stringify(name)} cannot be mapped to a NATS subject: use 1-200 letters, digits, ".", "_" or "-", starting with a letter or digit (no spaces, "*" or ">")`,
    );
  }
  return name;
}

/**
 * Escapes a name into one subject token that is also a valid stream/consumer name: letters and digits
 * stay, `.`, `-` and `_` become `_2E`, `_2D`, `_5F`. The mapping is injective and the result holds no `-`,
 * so `<PREFIX>-<channel>` and `<PREFIX>-DLQ-<channel>` never collide.
 */
export function escapeName(name: string): string {
  const escaped = name.replace(
    /[^A-Za-z0-9]/g,
    (c) => `_${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
  if (escaped.length <= MAX_ESCAPED) return escaped;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${escaped.slice(0, MAX_ESCAPED - 18)}_H${hash}`;
}

export function channelNames(
  options: Pick<ResolvedNatsOptions, 'subjectPrefix' | 'streamPrefix'>,
  channel: string,
): ChannelNames {
  const token = escapeName(checkName(channel, 'channel'));
  return {
    stream: `${options.streamPrefix}-${token}`,
    subject: `${options.subjectPrefix}.${token}`,
    dlqStream: `${options.streamPrefix}-DLQ-${token}`,
    dlqSubjects: `${options.subjectPrefix}.dlq.${token}.*`,
  };
}

export function dlqSubject(
  options: Pick<ResolvedNatsOptions, 'subjectPrefix'>,
  channel: string,
  group: string,
): string {
  return `${options.subjectPrefix}.dlq.${escapeName(checkName(channel, 'channel'))}.${escapeName(checkName(group, 'group'))}`;
}

export function durableName(group: string): string {
  return escapeName(checkName(group, 'group'));
}

/** Deliveries the server allows: the policy's attempts, the crash allowance, and one for our own dead-lettering. */
export function maxDeliver(policy: NormalizedRetryPolicy, options: ResolvedNatsOptions): number {
  return policy.maxAttempts + options.extraDeliveries + 1;
}

function streamConfig(options: ResolvedNatsOptions, names: ChannelNames): Partial<StreamConfig> & { name: string } {
  return {
    name: names.stream,
    subjects: [names.subject],
    storage: StorageType.File,
    // Limits retention, not interest: nats-server 2.9 loses events of interest streams across its own restart.
    // While it shuts down, it stops a stream's consumers before the stream stops taking messages, and a message
    // that arrives then finds no interest: it is skipped, yet acknowledged with a sequence number (and its
    // Nats-Msg-Id recorded), so the publisher's PubAck is a lie. After a restart, a group can also be moved past
    // messages it never received once another group acked them. With limits retention neither happens; what
    // every group settled is purged by the adapter instead (retention.ts). See README, "Broker restarts".
    retention: RetentionPolicy.Limits,
    // Reject publishes at the limits instead of silently dropping the oldest events.
    discard: DiscardPolicy.New,
    max_bytes: options.maxStreamBytes,
    max_msgs: options.maxStreamMessages,
    max_age: nanos(options.maxAgeMs),
    // The server refuses a duplicate window longer than max_age.
    duplicate_window: nanos(
      options.maxAgeMs > 0 ? Math.min(options.duplicateWindowMs, options.maxAgeMs) : options.duplicateWindowMs,
    ),
    num_replicas: options.replicas,
  };
}

function dlqConfig(options: ResolvedNatsOptions, names: ChannelNames): Partial<StreamConfig> & { name: string } {
  return {
    name: names.dlqStream,
    subjects: [names.dlqSubjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New,
    duplicate_window: nanos(options.duplicateWindowMs),
    num_replicas: options.replicas,
    allow_direct: true,
  };
}

const STREAM_NAME_IN_USE = 10058;
const SUBJECTS_OVERLAP = 10065;
const CONSUMER_EXISTS = 10148;
const CONSUMER_NAME_EXISTS = 10013;

/**
 * The JetStream API request the user may not publish (a "Permissions Violation" on `$JS.API.…`), as the
 * typed refusal: it would recur on every try, and "cannot create the stream" would hide that it is about rights.
 */
function refusal(error: unknown): NotAuthorizedError | undefined {
  let current: unknown = error;
  for (let i = 0; i < 4 && current instanceof Error; i++) {
    if (current instanceof PermissionViolationError) return notAuthorized(current.operation, current.subject, error);
    current = current.cause;
  }
  return undefined;
}

/** Creates a stream unless it exists; resolves with the retention policy the stream actually has. */
async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
): Promise<RetentionPolicy | undefined> {
  try {
    const info = await jsm.streams.add(config);
    return info.config.retention;
  } catch (error) {
    // An existing stream is kept as it is: an operator may have tuned it on purpose.
    if (error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE) {
      return (await jsm.streams.info(config.name)).config.retention;
    }
    // Seen once in the start-up race test under load (six processes creating the same stream): "subjects overlap
    // with an existing stream" for a subject only this stream claims. If a stream of our own name holds the
    // subject, it is ours, made by another process meanwhile; otherwise the overlap is real.
    if (error instanceof JetStreamApiError && error.code === SUBJECTS_OVERLAP) {
      for (const wait of [100, 250, 500, 1_000]) {
        await new Promise((r) => setTimeout(r, wait));
        try {
          const info = await jsm.streams.info(config.name);
          if (config.subjects?.every((subject) => info.config.subjects?.includes(subject)))
            return info.config.retention;
          break;
        } catch (lookup) {
          if (!isStreamNotFound(lookup)) throw lookup;
        }
      }
    }
    throw error;
  }
}

/** A declared channel: its names, and whether the adapter purges what its groups settled. */
export interface DeclaredChannel extends ChannelNames {
  /**
   * The channel stream has limits retention (the adapter's own): settled events are purged by the adapter.
   * `false` for a stream kept from an older version or made by an operator with another retention policy.
   */
  readonly purgeSettled: boolean;
}

/** Declares a channel's stream and dead-letter stream; cached by the caller. */
export async function ensureChannel(
  jsm: JetStreamManager,
  options: ResolvedNatsOptions,
  channel: string,
): Promise<DeclaredChannel> {
  const names = channelNames(options, channel);
  let retention: RetentionPolicy | undefined;
  try {
    // Tried again on a timeout: several processes declaring at once on a loaded machine can keep the JetStream API
    // busy past one request's timeout (issue 13). Creating an existing stream is harmless.
    retention = await retrying(() => ensureStream(jsm, streamConfig(options, names)), DECLARE_BACKOFF_MS);
    await retrying(() => ensureStream(jsm, dlqConfig(options, names)), DECLARE_BACKOFF_MS);
  } catch (error) {
    throw (
      refusal(error) ??
      new TopologyError(
        ADAPTER_NAME,
        `cannot create the JetStream streams ${names.stream} / ${names.dlqStream} for channel "${channel}": ${(error as Error).message} — check the account's JetStream limits and that no other stream claims subject ${names.subject}`,
        { cause: error },
      )
    );
  }
  return { ...names, purgeSettled: retention === RetentionPolicy.Limits };
}

/**
 * Declares only a channel's dead-letter stream: a raw subscription consumes an adopted stream, so the
 * channel stream of its own would hold nothing.
 */
export async function ensureDeadLetterStream(
  jsm: JetStreamManager,
  options: ResolvedNatsOptions,
  channel: string,
): Promise<ChannelNames> {
  const names = channelNames(options, channel);
  try {
    await retrying(() => ensureStream(jsm, dlqConfig(options, names)), DECLARE_BACKOFF_MS);
  } catch (error) {
    throw (
      refusal(error) ??
      new TopologyError(
        ADAPTER_NAME,
        `cannot create the JetStream dead-letter stream ${names.dlqStream} for channel "${channel}": ${(error as Error).message} — check the account's JetStream limits`,
        { cause: error },
      )
    );
  }
  return names;
}

/**
 * Declares a group's durable pull consumer. A new consumer starts at "now" (deliver policy `new`); an
 * existing one keeps its position and gets its limits updated to the current policy.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  options: ResolvedNatsOptions,
  names: ChannelNames,
  group: string,
  policy: NormalizedRetryPolicy,
  maxAckPending: number,
  inactiveMs?: number,
): Promise<string> {
  const durable = durableName(group);
  const config: Partial<ConsumerConfig> = {
    // A group that lives as long as one process (SubscribeRequest.expireWhenIdleMs): the server deletes
    // the consumer once no pull came for that long, so a process killed without close leaves none
    // holding back the channel's retention purge.
    ...(inactiveMs === undefined ? {} : { inactive_threshold: nanos(inactiveMs) }),
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.New,
    ack_wait: nanos(options.ackWaitMs),
    max_deliver: maxDeliver(policy, options),
    max_ack_pending: maxAckPending,
    // The channel's own (only) subject: it filters nothing, but it spares the consumer's pending state when
    // the adapter purges settled events (nats-server < 2.9.15 resets it otherwise; see retention.ts).
    filter_subject: names.subject,
    // Leave the consumer's retries to the core: no server-side BackOff (it would only apply to ack timeouts).
  };
  try {
    // Tried again on a timeout, like the streams; a consumer created by a try that timed out is found (or updated
    // to the same config) by the next one.
    await retrying(() => jsm.consumers.add(names.stream, config), DECLARE_BACKOFF_MS);
    return durable;
  } catch (error) {
    const code = error instanceof JetStreamApiError ? error.code : 0;
    if (code !== CONSUMER_EXISTS && code !== CONSUMER_NAME_EXISTS) {
      throw (
        refusal(error) ??
        new TopologyError(
          ADAPTER_NAME,
          `cannot create the durable consumer ${durable} on stream ${names.stream}: ${(error as Error).message}`,
          { cause: error },
        )
      );
    }
  }
  try {
    const info = await retrying(() => jsm.consumers.info(names.stream, durable), DECLARE_BACKOFF_MS);
    const current = info.config;
    const wanted = { ack_wait: config.ack_wait, max_deliver: config.max_deliver, max_ack_pending: maxAckPending };
    // A consumer made by an older version has no filter subject: add it, or the retention purge must skip the
    // channel on nats-server < 2.9.15 (retention.ts). An operator's own filter is left as it is.
    const filter = current.filter_subject ? {} : { filter_subject: names.subject };
    if (
      current.ack_wait !== wanted.ack_wait ||
      current.max_deliver !== wanted.max_deliver ||
      (current.max_ack_pending ?? 0) < maxAckPending ||
      !current.filter_subject
    ) {
      const update = {
        ...wanted,
        ...filter,
        max_ack_pending: Math.max(current.max_ack_pending ?? 0, maxAckPending),
      };
      await retrying(() => jsm.consumers.update(names.stream, durable, update), DECLARE_BACKOFF_MS);
    }
  } catch (error) {
    throw (
      refusal(error) ??
      new TopologyError(
        ADAPTER_NAME,
        `the consumer ${durable} on stream ${names.stream} exists with a different configuration and cannot be updated: ${(error as Error).message} — delete it (nats consumer rm ${names.stream} ${durable}) to recreate it`,
        { cause: error },
      )
    );
  }
  return durable;
}
