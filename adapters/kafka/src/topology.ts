/**
 * What the adapter declares on the broker and how it names it:
 *
 *   channel            -> topic           `<prefix>.<channel>`                     (`partitions`, default 3)
 *   group              -> consumer group  `<prefix>.<channel>.<group>`
 *   retry delay tier   -> topic           `<prefix>.<channel>.<group>.retry.<ms>`  (one per tier, group-private)
 *   dead letters       -> topic           `<prefix>.<channel>.<group>.dlt`
 *   dead-letter reader -> consumer group  `<prefix>.<channel>.<group>.dlt.reader`
 *
 * A new group starts from "now": declaring it commits the current end offsets for every partition
 * that has no committed offset yet, before any consumer joins.
 */
import { createHash } from 'node:crypto';
import { describeError, type Logger, type NormalizedRetryPolicy, retryTiers, TopologyError } from '@wharf/core';
import type { ClientAdmin, ClientConsumer, CommittedOffset, KafkaClient, TopicSpec } from './client.js';
import { missingTopics, toWharfError, within } from './errors.js';
import { ADAPTER_NAME, type ResolvedKafkaOptions } from './options.js';

const MAX_TOPIC = 249;

/** Keeps names within Kafka's 249 characters; a long name keeps its start and gets a hash. */
function fit(name: string): string {
  if (name.length <= MAX_TOPIC) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${name.slice(0, MAX_TOPIC - 17)}-${hash}`;
}

/** Broker object names for a channel and its groups. */
export class Names {
  constructor(readonly prefix: string) {}
  channel(channel: string): string {
    return fit(`${this.prefix}.${channel}`);
  }
  group(channel: string, group: string): string {
    return fit(`${this.prefix}.${channel}.${group}`);
  }
  retry(channel: string, group: string, tierMs: number): string {
    // The suffix must survive fit(): hash the base, keep the tier readable.
    const base = `${this.prefix}.${channel}.${group}`;
    const suffix = `.retry.${tierMs}`;
    return base.length + suffix.length <= MAX_TOPIC
      ? base + suffix
      : fit(base).slice(0, MAX_TOPIC - suffix.length) + suffix;
  }
  deadLetter(channel: string, group: string): string {
    const base = `${this.prefix}.${channel}.${group}`;
    return base.length + 4 <= MAX_TOPIC ? `${base}.dlt` : `${fit(base).slice(0, MAX_TOPIC - 4)}.dlt`;
  }
  deadLetterReader(channel: string, group: string): string {
    return `${this.deadLetter(channel, group)}.reader`;
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

  /** Makes sure the channel topic exists (created with `partitions`, or checked with requireTopics). */
  ensureChannel(channel: string): Promise<void> | undefined {
    if (this.#known.has(this.names.channel(channel))) return undefined; // the hot path: no promise
    return this.ensure([this.#spec(this.names.channel(channel), this.options.partitions)]);
  }

  async ensure(specs: readonly TopicSpec[]): Promise<void> {
    const missing = specs.filter((s) => !this.#known.has(s.topic));
    if (missing.length === 0) return;
    const key = missing.map((s) => s.topic).join('\n');
    let work = this.#pending.get(key);
    if (!work) {
      work = this.#ensure(missing).finally(() => this.#pending.delete(key));
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
    } catch (error) {
      if (error instanceof TopologyError) throw error;
      const mapped = toWharfError(error, { where: this.options.where, doing });
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
    options: { initialiseOffsets: boolean } = { initialiseOffsets: true },
  ): Promise<string[]> {
    const channelTopic = this.names.channel(channel);
    const { retries, dlt } = this.names.groupTopics(channel, group, policy);
    await this.ensure([
      this.#spec(channelTopic, this.options.partitions),
      ...[...retries.values()].map((t) => this.#spec(t, this.options.retryPartitions)),
      this.#spec(dlt, this.options.retryPartitions),
    ]);
    const topics = [channelTopic, ...retries.values()];
    const groupId = this.names.group(channel, group);
    const key = `${groupId}\n${topics.join('\n')}`;
    // A subscriber initialises offsets itself when it joins (see Subscriber), saving a join here.
    if (options.initialiseOffsets && !this.#initialised.has(key)) {
      await this.#startFromNow(groupId, topics);
      this.#initialised.add(key);
    }
    return topics;
  }

  async #startFromNow(groupId: string, topics: readonly string[]): Promise<void> {
    const admin = await this.admin();
    const doing = `initialising the offsets of consumer group ${groupId}`;
    try {
      const missing = await this.#uncommitted(admin, groupId, topics);
      if (missing.length === 0) return;
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
        await within(joined, this.options.connectTimeoutMs * 3, () => new Error(`joining ${groupId} timed out`));
        consumer.pause(topicList.map((topic) => ({ topic })));
        // End offsets read after joining: anything published once declare() resolves is kept.
        const again = await this.#uncommitted(admin, groupId, topics);
        const commits = [];
        for (const { topic, partition } of again) {
          const ends = await admin.ends(topic);
          const high = ends.find((e) => e.partition === partition)?.high ?? '0';
          commits.push({ topic, partition, offset: high });
        }
        if (commits.length > 0) await consumer.commit(commits);
      } finally {
        await consumer.disconnect().catch(() => undefined);
      }
    } catch (error) {
      throw toWharfError(error, { where: this.options.where, doing });
    }
  }

  /** Commits the end offsets of `partitions` that have no committed offset yet, through a group member. */
  async commitEndsWhereMissing(
    consumer: ClientConsumer,
    assignment: readonly { topic: string; partitions: readonly number[] }[],
    committedOf: (topic: string) => Promise<readonly CommittedOffset[]>,
  ): Promise<void> {
    const admin = await this.admin();
    const commits: { topic: string; partition: number; offset: string }[] = [];
    for (const { topic, partitions } of assignment) {
      const committed = await committedOf(topic);
      const missing = partitions.filter((p) => Number(committed.find((c) => c.partition === p)?.offset ?? -1) < 0);
      if (missing.length === 0) continue;
      const ends = await admin.ends(topic);
      for (const partition of missing) {
        commits.push({ topic, partition, offset: ends.find((e) => e.partition === partition)?.high ?? '0' });
      }
    }
    if (commits.length > 0) await consumer.commit(commits);
  }

  async #uncommitted(
    admin: ClientAdmin,
    groupId: string,
    topics: readonly string[],
  ): Promise<{ topic: string; partition: number }[]> {
    const out: { topic: string; partition: number }[] = [];
    for (const topic of topics) {
      for (const c of await admin.committed(groupId, topic)) {
        if (Number(c.offset) < 0) out.push({ topic, partition: c.partition });
      }
    }
    return out;
  }
}
