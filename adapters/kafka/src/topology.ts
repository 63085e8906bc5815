/**
 * What the adapter declares on the broker and how it names it (`-` joins escaped components):
 *
 *   channel            -> topic           `<prefix>-<channel>`                     (`partitions`, default 3)
 *   group              -> consumer group  `<prefix>-<channel>-<group>`
 *   retry delay tier   -> topic           `<prefix>-<channel>-<group>-retry-<ms>`  (one per tier, group-private)
 *   dead letters       -> topic           `<prefix>-<channel>-<group>-dlt`
 *   dead-letter reader -> consumer group  `<prefix>-<channel>-<group>-dlt-reader`
 *
 * A new group starts from "now": declaring it commits the current end offsets for every partition
 * that has no committed offset yet, before any consumer joins.
 */
import { createHash } from 'node:crypto';
import {
  ConfigError,
  describeError,
  type Logger,
  type NormalizedRetryPolicy,
  retryTiers,
  TopologyError,
  withTimeout,
} from '@wharf/core';
import { type ClientAdmin, type CommittedOffset, classifyError, type KafkaClient, type TopicSpec } from './client.js';
import { missingTopics, toWharfError, whileUnreachable } from './errors.js';
import { ADAPTER_NAME, type ResolvedKafkaOptions } from './options.js';

/** Kafka's limit on a topic name (and, for symmetry, on the consumer groups we name). */
export const MAX_TOPIC_NAME = 249;
/** The longest suffix after the group: `-retry-<ms>` with the largest delay the core accepts (2^31 - 1 ms). */
const MAX_SUFFIX = '-retry-2147483647'.length;
const HASH_CHARS = 16;
/** The names the core accepts; the first character must be a letter or digit (see `escapeName`). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** Checks a channel or group name (the core checks too; the adapter may be used on its own). */
export function checkName(name: unknown, what: 'channel' | 'group'): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `${what} name ${JSON.stringify(name)} cannot be mapped to a Kafka topic: use 1-200 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  return name;
}

/**
 * Escapes one name component: letters, digits and `.` stay, `-` becomes `--` and `_` becomes `-.`.
 * So in an escaped name a `-` followed by a letter or digit is always a separator, and the result
 * holds no `_`: Kafka refuses a topic whose name equals an existing one with `.` and `_` swapped
 * (their metric names would collide), which can therefore never happen between Wharf's own topics.
 */
export function escapeName(name: string): string {
  return name.replace(/[-_]/g, (c) => (c === '-' ? '--' : '-.'));
}

/** Reverses `escapeName`. */
export function unescapeName(escaped: string): string {
  return escaped.replace(/-([-.])/g, (_, c: string) => (c === '-' ? '-' : '_'));
}

/**
 * Splits a name built by `Names` into its escaped components (undo each with `unescapeName`), or
 * returns undefined when no `Names` could have built it. The inverse of joining: tests use it to
 * show the mapping is injective, cleanup to find a channel's topics.
 */
export function splitName(name: string): string[] | undefined {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i] as string;
    if (c === '-') {
      const next = name[i + 1];
      if (next === '-' || next === '.') {
        current += c + next;
        i++;
      } else if (next !== undefined && /[A-Za-z0-9]/.test(next) && current !== '') {
        parts.push(current);
        current = '';
      } else {
        return undefined;
      }
    } else if (/[A-Za-z0-9.]/.test(c)) {
      current += c;
    } else {
      return undefined;
    }
  }
  if (current === '') return undefined;
  parts.push(current);
  return parts;
}

/**
 * Broker object names for a channel and its groups: `<prefix>-<channel>[-<group>[-<kind>...]]`,
 * every component escaped by `escapeName`, so different (prefix, channel, group, kind) tuples
 * never share a name (`splitName` recovers the components).
 *
 * Length: every name fits Kafka's 249 characters. Each of channel and group gets half of what the
 * prefix and the longest suffix leave (111 characters with the prefix `wharf`); an escaped
 * component longer than that keeps its start and ends in `--<sha-256 of the name>`, one character
 * longer than the longest plain component. So a hashed component never equals a plain one, and two
 * hashed ones are equal only if 64 bits of SHA-256 are.
 */
export class Names {
  readonly #prefix: string;
  /** The longest plain escaped component; a hashed one is one character longer. */
  readonly componentLimit: number;
  readonly #escaped = new Map<string, string>();
  readonly #channels = new Map<string, string>();

  constructor(readonly prefix: string) {
    this.#prefix = escapeName(prefix);
    this.componentLimit = Math.floor((MAX_TOPIC_NAME - this.#prefix.length - 2 - MAX_SUFFIX) / 2) - 1;
  }

  /** The escaped (and, if too long, shortened) component for a channel or group name. */
  component(name: string, what: 'channel' | 'group'): string {
    let out = this.#escaped.get(name);
    if (out !== undefined) return out;
    const escaped = escapeName(checkName(name, what));
    out = escaped.length <= this.componentLimit ? escaped : this.#shorten(name, escaped);
    if (this.#escaped.size >= 10_000) this.#escaped.clear(); // names repeat; the cache is for the hot path
    this.#escaped.set(name, out);
    return out;
  }

  #shorten(name: string, escaped: string): string {
    const length = this.componentLimit + 1;
    // Keep whole escapes (`--`, `-.`) so the start still reads back; the hash takes what is left.
    let keep = 0;
    while (keep < escaped.length) {
      const step = escaped[keep] === '-' ? 2 : 1;
      if (keep + step > length - 2 - HASH_CHARS) break;
      keep += step;
    }
    const hash = createHash('sha256').update(name).digest('hex');
    return `${escaped.slice(0, keep)}--${hash.slice(0, length - keep - 2)}`;
  }

  channel(channel: string): string {
    // Cached whole: every publish asks, and one string per channel keeps its hash for kafkajs' lookups.
    let topic = this.#channels.get(channel);
    if (topic === undefined) {
      topic = `${this.#prefix}-${this.component(channel, 'channel')}`;
      if (this.#channels.size >= 10_000) this.#channels.clear();
      this.#channels.set(channel, topic);
    }
    return topic;
  }
  group(channel: string, group: string): string {
    return `${this.channel(channel)}-${this.component(group, 'group')}`;
  }
  retry(channel: string, group: string, tierMs: number): string {
    if (!Number.isSafeInteger(tierMs) || tierMs < 0) {
      throw new ConfigError(ADAPTER_NAME, `a retry delay tier must be a whole number of ms, got ${tierMs}`);
    }
    return `${this.group(channel, group)}-retry-${tierMs}`;
  }
  deadLetter(channel: string, group: string): string {
    return `${this.group(channel, group)}-dlt`;
  }
  deadLetterReader(channel: string, group: string): string {
    return `${this.deadLetter(channel, group)}-reader`;
  }
  /** True when `name` (a topic or consumer group) is the channel's topic or belongs to one of its groups. */
  ofChannel(name: string, channel: string): boolean {
    const parts = splitName(name);
    return parts?.[0] === this.#prefix && parts[1] === this.component(channel, 'channel');
  }
  /** The group's private topics: its retry tiers and its dead-letter topic. */
  groupTopics(
    channel: string,
    group: string,
    policy: NormalizedRetryPolicy,
  ): { retries: Map<number, string>; dlt: string } {
    const retries = new Map<number, string>();
    for (const tier of retryTiers(policy)) retries.set(tier, this.retry(channel, group, tier));
    return { retries, dlt: this.deadLetter(channel, group) };
  }
}

/** Creates (or checks) topics and initialises group offsets; remembers what it did. */
export class Topology {
  readonly names: Names;
  readonly #known = new Set<string>();
  readonly #pending = new Map<string, Promise<void>>();
  readonly #initialised = new Set<string>();

  constructor(
    readonly options: ResolvedKafkaOptions,
    readonly client: KafkaClient,
    readonly admin: () => Promise<ClientAdmin>,
    readonly logger: Logger,
  ) {
    this.names = new Names(options.topicPrefix);
  }

  #spec(topic: string, partitions: number): TopicSpec {
    return {
      topic,
      partitions,
      replicationFactor: this.options.replicationFactor,
      // Room for headers above the body limit the bus enforces; the default 1 MiB would refuse 1 MiB events.
      configs: { 'max.message.bytes': String(this.options.maxMessageBytes + 256 * 1024) },
    };
  }

  /** Creates (or checks) a channel's topic, given by its name; `undefined` when it is known to exist. */
  ensureChannel(topic: string): Promise<void> | undefined {
    if (this.#known.has(topic)) return undefined; // the hot path: no promise
    return this.ensure([this.#spec(topic, this.options.partitions)]);
  }

  async ensure(specs: readonly TopicSpec[]): Promise<void> {
    const missing = specs.filter((s) => !this.#known.has(s.topic));
    if (missing.length === 0) return;
    const key = missing.map((s) => s.topic).join('\n');
    let work = this.#pending.get(key);
    if (!work) {
      // A broker restarting while a service starts: wait for it (bounded) rather than fail.
      work = whileUnreachable(() => this.#ensure(missing), this.options.connectTimeoutMs).finally(() =>
        this.#pending.delete(key),
      );
      this.#pending.set(key, work);
    }
    await work;
  }

  async #ensure(specs: readonly TopicSpec[]): Promise<void> {
    const admin = await this.admin();
    const doing = `declaring topics ${specs.map((s) => s.topic).join(', ')}`;
    try {
      const existing = new Set(await admin.listTopics());
      const absent = specs.filter((s) => !existing.has(s.topic));
      if (absent.length > 0) {
        if (this.options.requireTopics) throw missingTopics(absent.map((s) => s.topic));
        await admin.createTopics(absent);
        this.logger.debug(`[wharf] [kafka] created topics ${absent.map((s) => s.topic).join(', ')}`);
      }
      // Listed is not ready: right after its creation (here or in another process) a topic's
      // partitions may have no leader in the metadata yet, and subscribing then fails.
      const timeoutMs = this.options.connectTimeoutMs;
      const leaderless = await admin.awaitLeaders(
        specs.map((s) => s.topic),
        timeoutMs,
      );
      if (leaderless.length > 0) {
        throw new TopologyError(
          ADAPTER_NAME,
          `${doing}: ${leaderless.join(', ')} still had a partition without a leader after ${timeoutMs} ms (connectTimeoutMs) — check the brokers' health (kafka-topics.sh --describe)`,
        );
      }
    } catch (error) {
      if (error instanceof TopologyError) throw error;
      const mapped = toWharfError(error, {
        where: this.options.where,
        doing,
        tls: this.options.tls,
        topics: specs.map((spec) => spec.topic),
      });
      if (mapped.code === 'ERR_WHARF_PUBLISH') {
        throw new TopologyError(ADAPTER_NAME, `${doing} failed: ${describeError(error).message}`, { cause: error });
      }
      throw mapped;
    }
    for (const s of specs) this.#known.add(s.topic);
  }

  /** Forgets a topic (after it was deleted, or a produce said it is unknown). */
  forget(topic: string): void {
    this.#known.delete(topic);
  }

  /**
   * Declares a group: its retry and dead-letter topics exist and every partition it reads has a
   * committed offset, so events published from now on are kept for it and earlier ones are not delivered.
   */
  async declareGroup(
    channel: string,
    group: string,
    policy: NormalizedRetryPolicy,
    options: { initialiseOffsets: boolean; adopted?: string | undefined } = { initialiseOffsets: true },
  ): Promise<string[]> {
    // Raw mode: the adopted topic (checked by raw.ts, never created here) stands in for the channel's.
    const channelTopic = options.adopted ?? this.names.channel(channel);
    const { retries, dlt } = this.names.groupTopics(channel, group, policy);
    await this.ensure([
      ...(options.adopted === undefined ? [this.#spec(channelTopic, this.options.partitions)] : []),
      ...[...retries.values()].map((t) => this.#spec(t, this.options.retryPartitions)),
      this.#spec(dlt, this.options.retryPartitions),
    ]);
    const topics = [channelTopic, ...retries.values()];
    const groupId = this.names.group(channel, group);
    const key = `${groupId}\n${topics.join('\n')}`;
    // A subscriber initialises offsets itself when it joins (see Subscriber), saving a join here.
    if (options.initialiseOffsets && !this.#initialised.has(key)) {
      await whileUnreachable(() => this.#startFromNow(groupId, topics), this.options.connectTimeoutMs);
      this.#initialised.add(key);
    }
    return topics;
  }

  async #startFromNow(groupId: string, topics: readonly string[]): Promise<void> {
    const admin = await this.admin();
    const doing = `initialising the offsets of consumer group ${groupId}`;
    const deadline = Date.now() + this.options.connectTimeoutMs * 3;
    try {
      for (let attempt = 0; ; attempt++) {
        const missing = await this.#uncommitted(admin, groupId, topics);
        if (missing.length === 0) return;
        try {
          await this.#commitStarts(admin, groupId, topics, missing);
          return;
        } catch (error) {
          // Replicas declaring together join the same group: another member's join makes our short
          // membership's commit stale (ILLEGAL_GENERATION). Look again: the other one may have
          // initialised the offsets already; otherwise join again.
          if (classifyError(error) !== 'rebalancing' || Date.now() >= deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 100 * 2 ** attempt)));
        }
      }
    } catch (error) {
      throw toWharfError(error, { where: this.options.where, doing, tls: this.options.tls, group: groupId, topics });
    }
  }

  async #commitStarts(
    admin: ClientAdmin,
    groupId: string,
    topics: readonly string[],
    missing: readonly { topic: string }[],
  ): Promise<void> {
    // Kafka stores offsets only for a group member (or through a group with no members, which
    // kafkajs' admin does with a slow fetch cycle): join briefly, commit the end offsets, leave.
    const consumer = this.client.consumer({
      groupId,
      sessionTimeoutMs: this.options.sessionTimeoutMs,
      rebalanceTimeoutMs: this.options.rebalanceTimeoutMs,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      maxWaitTimeMs: this.options.maxWaitTimeMs,
      partitionsConcurrently: 1,
    });
    try {
      const joined = new Promise<void>((resolve) => consumer.onAssigned(() => resolve()));
      const topicList = [...new Set(missing.map((m) => m.topic))];
      // Nothing is consumed: batches are left unresolved and the group is left at once.
      await consumer.run(topicList, async () => {});
      await withTimeout(joined, this.options.connectTimeoutMs * 3, () => new Error(`joining ${groupId} timed out`));
      consumer.pause(topicList.map((topic) => ({ topic })));
      // End offsets read after joining: anything published once declare() resolves is kept.
      const commits = await startsFromNow(
        admin,
        (topic) => admin.committed(groupId, topic),
        topics.map((topic) => ({ topic })),
      );
      if (commits.length > 0) await consumer.commit(commits);
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
  }

  async #uncommitted(
    admin: ClientAdmin,
    groupId: string,
    topics: readonly string[],
  ): Promise<{ topic: string; partition: number }[]> {
    const out: { topic: string; partition: number }[] = [];
    for (const topic of topics) {
      for (const partition of uncommitted(await admin.committed(groupId, topic))) out.push({ topic, partition });
    }
    return out;
  }
}

/** The partitions with no committed offset (Kafka answers -1): of `partitions`, or of all those listed. */
export function uncommitted(committed: readonly CommittedOffset[], partitions?: readonly number[]): number[] {
  const offsetOf = (partition: number): number =>
    Number(committed.find((c) => c.partition === partition)?.offset ?? -1);
  return (partitions ?? committed.map((c) => c.partition)).filter((partition) => offsetOf(partition) < 0);
}

/**
 * A new group starts from "now": the commits that start each partition without a committed offset at
 * its end offset (read once per topic). `known` remembers a start by `topic|partition` once read, and
 * a later call keeps it: if the first commit was lost (a crash, a rebalance), events published since
 * the subscription began are still not skipped.
 */
export async function startsFromNow(
  admin: ClientAdmin,
  committedOf: (topic: string) => Promise<readonly CommittedOffset[]>,
  targets: readonly { topic: string; partitions?: readonly number[] }[],
  known: Map<string, bigint> = new Map(),
): Promise<{ topic: string; partition: number; offset: string }[]> {
  const commits: { topic: string; partition: number; offset: string }[] = [];
  for (const { topic, partitions } of targets) {
    const missing = uncommitted(await committedOf(topic), partitions);
    if (missing.length === 0) continue;
    const unknown = missing.filter((partition) => !known.has(`${topic}|${partition}`));
    const ends = unknown.length > 0 ? await admin.ends(topic) : [];
    for (const partition of missing) {
      const tp = `${topic}|${partition}`;
      let start = known.get(tp);
      if (start === undefined) {
        start = BigInt(ends.find((e) => e.partition === partition)?.high ?? '0');
        known.set(tp, start);
      }
      commits.push({ topic, partition, offset: String(start) });
    }
  }
  return commits;
}
