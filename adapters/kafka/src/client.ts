/**
 * The one file that imports kafkajs. Everything else in the adapter talks to the small interface
 * below, so replacing kafkajs (unmaintained since 2023) with another client touches this file only.
 */
import type { ConnectionOptions } from 'node:tls';
import { type Logger, withTimeout } from '@wharf/core';
import kafkajs from 'kafkajs';
import { type EvictMember, memberEvictor } from './evict.js';

const { Kafka, Partitioners, logLevel, ConfigResourceTypes } = kafkajs;

/** Header values as they arrive: the wire allows repeated names, so a value may be a list. */
export type IncomingHeaders = Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>>;

/** A record to produce. */
export interface OutgoingRecord {
  /** Set to choose the partition; otherwise the key's hash (murmur2, as the Java client) picks it. */
  readonly partition?: number;
  readonly key: string | Buffer | null;
  readonly value: Buffer | null;
  /** A list value is written as the same header repeated (what a foreign record may have had). */
  readonly headers: Readonly<Record<string, Buffer | string | (Buffer | string)[]>>;
}

/** A consumed record. Offsets are decimal strings (64-bit). */
export interface IncomingRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IncomingHeaders;
  readonly timestamp: string;
}

export interface TopicSpec {
  readonly topic: string;
  readonly partitions: number;
  /** -1: the broker's default. */
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

/** A committed offset of a group; `offset` is "-1" when nothing is committed. */
export interface CommittedOffset {
  readonly partition: number;
  readonly offset: string;
  readonly metadata: string | null;
}

export interface PartitionEnd {
  readonly partition: number;
  /** First offset still stored. */
  readonly low: string;
  /** Offset the next record will get. */
  readonly high: string;
}

export interface OffsetCommit {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to consume. */
  readonly offset: string;
  readonly metadata?: string | null;
}

export interface TopicPartitions {
  readonly topic: string;
  readonly partitions: readonly number[];
}

/** Partitions of a topic to pause or resume; without `partitions`, the whole topic. */
export interface PauseTarget {
  readonly topic: string;
  readonly partitions?: readonly number[];
}

export interface ClientAdmin {
  /** Creates the topics that do not exist yet; resolves once they have leaders. */
  createTopics(specs: readonly TopicSpec[]): Promise<void>;
  listTopics(): Promise<string[]>;
  /**
   * Waits (with backoff, up to `timeoutMs`) until every partition of each topic has a leader in the
   * broker's metadata; resolves with the topics that still have none at the deadline (empty: all ready).
   */
  awaitLeaders(topics: readonly string[], timeoutMs: number): Promise<string[]>;
  deleteTopics(topics: readonly string[]): Promise<void>;
  deleteGroups(groups: readonly string[]): Promise<void>;
  committed(groupId: string, topic: string): Promise<CommittedOffset[]>;
  ends(topic: string): Promise<PartitionEnd[]>;
  /** Members of a consumer group right now (0 for a group with none, or unknown to the broker). */
  members(groupId: string): Promise<number>;
  /** The topic's `max.message.bytes`, or undefined when it cannot be read. */
  maxMessageBytes(topic: string): Promise<number | undefined>;
  disconnect(): Promise<void>;
}

export interface ClientProducer {
  /** Resolves once the broker acknowledged every record (acks as configured). */
  send(batch: readonly { topic: string; records: readonly OutgoingRecord[] }[]): Promise<void>;
  disconnect(): Promise<void>;
}

/** One fetched batch of one partition, handed to the consumer's handler. */
export interface FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly IncomingRecord[];
  /** Sends a heartbeat if one is due; rejects when the group is rebalancing or the broker is gone. */
  heartbeat(): Promise<void>;
  /** Marks `offset` consumed locally: the next fetch starts after it (nothing is committed). */
  resolve(offset: string): void;
  /** False once the consumer stops or this partition was sought elsewhere. */
  isActive(): boolean;
}

export interface ConsumerSettings {
  readonly groupId: string;
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxWaitTimeMs: number;
  /** Partitions whose batches are handled at the same time. */
  readonly partitionsConcurrently: number;
}

export interface ClientConsumer {
  /** Subscribes, starts the fetch loop and calls `onBatch` per partition batch (never throws out of it). */
  run(topics: readonly string[], onBatch: (batch: FetchedBatch) => Promise<void>): Promise<void>;
  /** Called after every (re)join with this member's partitions. */
  onAssigned(listener: (assignment: readonly TopicPartitions[]) => void): void;
  /** Called when the client gave up and, if `restarting`, starts again by itself. */
  onCrash(listener: (error: Error, restarting: boolean) => void): void;
  pause(targets: readonly PauseTarget[]): void;
  resume(targets: readonly PauseTarget[]): void;
  seek(topic: string, partition: number, offset: string): void;
  /** Commits with this member's generation; rejects if the group moved on. */
  commit(offsets: readonly OffsetCommit[]): Promise<void>;
  /** Stops fetching, leaves the group and closes connections. */
  disconnect(): Promise<void>;
}

export interface ClientConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl?: boolean | ConnectionOptions;
  readonly sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Retries of one operation (connect, produce, commit) before it fails. */
  readonly retries: number;
  readonly maxRetryTimeMs: number;
  readonly logger: Logger;
}

export interface ProducerSettings {
  readonly idempotent: boolean;
  readonly acks: -1 | 1 | 0;
  readonly retries: number;
  readonly maxRetryTimeMs: number;
  readonly requestTimeoutMs: number;
}

/** A connected client factory. */
export interface KafkaClient {
  admin(): Promise<ClientAdmin>;
  producer(settings: ProducerSettings): Promise<ClientProducer>;
  consumer(settings: ConsumerSettings): ClientConsumer;
  /** The native kafkajs `Kafka` instance (for `Adapter.raw()`). */
  readonly native: unknown;
}

/** What went wrong, independent of the client library. */
export type ErrorKind =
  | 'unreachable'
  | 'auth'
  | 'too-large'
  | 'unknown-topic'
  | 'topic-exists'
  | 'rebalancing'
  | 'group-not-empty'
  | 'other';

// kafkajs logs messages that Wharf reports itself, better, or that are noise for us.
const QUIET = [/Limiting retries for the idempotent producer/, /KafkaJS v2\.0\.0 switched default partitioner/];

function logCreator(logger: Logger) {
  return () =>
    ({ level, log }: { namespace: string; level: number; log: { message: string; [k: string]: unknown } }) => {
      const { message, timestamp: _t, logger: _l, ...fields } = log;
      const text = `[wharf] [kafka] kafkajs: ${message}`;
      if (QUIET.some((re) => re.test(message))) return logger.debug(text, fields);
      // kafkajs logs every retried connection failure as an error; Wharf raises typed errors for
      // what matters, so the client's own errors are warnings.
      if (level === logLevel.ERROR || level === logLevel.WARN) logger.warn(text, fields);
      else logger.debug(text, fields);
    };
}

export function createClient(config: ClientConfig): KafkaClient {
  const base = {
    brokers: [...config.brokers],
    clientId: config.clientId,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    enforceRequestTimeout: true,
    retry: { retries: config.retries, initialRetryTime: 100, maxRetryTime: config.maxRetryTimeMs },
    logLevel: logLevel.WARN,
    logCreator: logCreator(config.logger),
    ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
    ...(config.sasl !== undefined ? { sasl: config.sasl as kafkajs.SASLOptions } : {}),
  } satisfies kafkajs.KafkaConfig;
  const kafka = new Kafka(base);

  return {
    native: kafka,
    async admin() {
      const admin = kafka.admin();
      await admin.connect();
      return wrapAdmin(admin);
    },
    async producer(settings) {
      return safeProducer(base, settings);
    },
    consumer(settings) {
      return wrapConsumer(kafka, settings, memberEvictor(kafka));
    },
  };
}

/**
 * Keyless records get their partition once, from kafkajs' round robin, and keep it on every retry.
 * kafkajs runs the partitioner again on each retry of a send, so a retried keyless record moves to
 * another partition, while the idempotent producer's sequence number of the first partition was
 * rolled back (see safeProducer): the next record sent there reuses a sequence number the broker may
 * have stored already, and the broker answers such a batch as a duplicate, without writing it.
 */
function stickyPartitioner(): kafkajs.ICustomPartitioner {
  return () => {
    const roundRobin = Partitioners.DefaultPartitioner();
    const chosen = new WeakMap<object, number>();
    return (args) => {
      if (args.message.key !== null && args.message.key !== undefined) return roundRobin(args);
      const known = chosen.get(args.message);
      if (known !== undefined && args.partitionMetadata.some((p) => p.partitionId === known)) return known;
      const partition = roundRobin(args);
      chosen.set(args.message, partition);
      return partition;
    };
  };
}

/**
 * The idempotent producer, replaced by a new one (a new producer id, sequence numbers from 0) after
 * any send that failed or is still running when the next one starts (a publish that timed out).
 *
 * kafkajs gives a partition's sequence numbers back when a produce request fails, including when
 * the outcome is unknown: a request that timed out, or whose connection closed (a broker shutting
 * down), may have been stored. The next batch for that partition then carries the same sequence
 * number and the broker acknowledges it as a duplicate of the stored one without writing it: the
 * publish resolves and its event is lost (a clean broker restart lost `tick-11` that way). A new
 * producer id cannot collide with what the old one wrote; a late write of the old one is at most a
 * duplicate of an event whose publish was reported as failed (consumers deduplicate by id).
 */
async function safeProducer(base: kafkajs.KafkaConfig, settings: ProducerSettings): Promise<ClientProducer> {
  // A producer gets its own client so its bounded retries and single in-flight request do not
  // apply to admin or consumer requests.
  const own = new Kafka({
    ...base,
    retry: { retries: settings.retries, initialRetryTime: 100, maxRetryTime: settings.maxRetryTimeMs },
    requestTimeout: settings.requestTimeoutMs,
  });
  const create = async (): Promise<kafkajs.Producer> => {
    const producer = own.producer({
      createPartitioner: stickyPartitioner(),
      allowAutoTopicCreation: false,
      idempotent: settings.idempotent,
      // The idempotent producer keeps ordering only with one request in flight per connection.
      ...(settings.idempotent ? { maxInFlightRequests: 1 } : {}),
      retry: { retries: settings.retries, initialRetryTime: 100, maxRetryTime: settings.maxRetryTimeMs },
    });
    await producer.connect();
    return producer;
  };
  let current: Promise<kafkajs.Producer> = create();
  await current;
  /** Sends of the current producer not answered yet. */
  let running = 0;
  /** The current producer failed a send: the next send uses a new one. */
  let spoiled = false;
  /** Replaced producers whose disconnect may not have finished (their abandoned sends may reconnect). */
  const retired = new Set<Promise<kafkajs.Producer>>();
  const renew = (): void => {
    const old = current;
    spoiled = false;
    running = 0;
    current = create();
    retired.add(old);
    // Its abandoned sends stop with it (at worst a late write: a duplicate of a failed publish).
    void old
      .then((p) => p.disconnect())
      .catch(() => undefined)
      .finally(() => retired.delete(old));
    // A failed connect is retried by the next send.
    current.catch(() => {
      spoiled = true;
    });
  };
  return {
    async send(batch) {
      if (settings.idempotent && (spoiled || running > 0)) renew();
      const mine = current;
      const producer = await mine;
      running++;
      try {
        await producer.sendBatch({
          acks: settings.acks,
          timeout: settings.requestTimeoutMs,
          // Our records are kafkajs messages already; kafkajs 2.2.4 reads them and never mutates
          // them, so they are passed as they are rather than copied per record.
          topicMessages: batch.map(({ topic, records }) => ({
            topic,
            messages: records as kafkajs.Message[],
          })),
        });
      } catch (error) {
        if (mine === current) spoiled = true;
        throw error;
      } finally {
        if (mine === current) running--;
      }
    },
    disconnect: async () => {
      const others = [...retired].map((p) => p.then((producer) => producer.disconnect()).catch(() => undefined));
      await Promise.all([(await current).disconnect(), ...others]);
    },
  };
}

/**
 * Right after a topic is created, a KRaft broker answers metadata and offset requests for it with
 * retriable errors for a moment (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER); kafkajs'
 * admin does not retry all of them, so admin calls are retried here, briefly.
 */
async function retrying<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const retriable =
        (error as { retriable?: boolean }).retriable === true || classifyError(error) === 'unknown-topic';
      if (!retriable || attempt >= 8 || classifyError(error) === 'unreachable') throw error;
      await sleep(Math.min(1_000, 50 * 2 ** attempt));
    }
  }
}

async function awaitLeaders(admin: kafkajs.Admin, topics: readonly string[], timeoutMs: number): Promise<string[]> {
  // A topic another process created a moment ago is listed before a KRaft broker's metadata has
  // leaders for its partitions; meanwhile it answers UNKNOWN_TOPIC_OR_PARTITION, which kafkajs'
  // consumer does not retry when it subscribes (issue 13: "This server does not host this
  // topic-partition"). So declaring waits here until the metadata is complete.
  const deadline = Date.now() + timeoutMs;
  let lacking = [...topics];
  for (let attempt = 0; lacking.length > 0; attempt++) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics: lacking });
      lacking = lacking.filter((topic) => {
        const partitions = found.find((t) => t.name === topic)?.partitions ?? [];
        return partitions.length === 0 || partitions.some((p) => p.leader < 0 || p.partitionErrorCode !== 0);
      });
    } catch (error) {
      const retriable =
        classifyError(error) === 'unknown-topic' || (error as { retriable?: boolean }).retriable === true;
      if (!retriable || classifyError(error) === 'unreachable') throw error;
    }
    if (lacking.length === 0 || Date.now() >= deadline) break;
    await sleep(Math.min(1_000, 25 * 2 ** attempt, Math.max(0, deadline - Date.now())));
  }
  return lacking;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function wrapAdmin(admin: kafkajs.Admin): ClientAdmin {
  // kafkajs keeps one metadata cache per client, and a refresh replaces it with the answer for the
  // topics that refresh asked about: two calls at once (ends() of two topics) can leave one of them
  // out, and fetchTopicOffsets then fails with "Cannot destructure property 'partitions' of
  // 'low.pop(...)'" (seen with 6 processes declaring 5 channels each). Calls that read or refresh
  // the cache run one at a time.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = chain.then(work, work);
    chain = run.catch(() => undefined);
    return run;
  };
  return {
    async createTopics(specs) {
      if (specs.length === 0) return;
      try {
        await retrying(() =>
          admin.createTopics({
            waitForLeaders: true,
            topics: specs.map((s) => ({
              topic: s.topic,
              numPartitions: s.partitions,
              replicationFactor: s.replicationFactor,
              configEntries: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
            })),
          }),
        );
      } catch (error) {
        // Several topics at once: kafkajs rejects the whole call if one already exists (a race with
        // another process); the others were created, so only "exists" errors are ignored.
        if (classifyError(error) !== 'topic-exists') throw error;
      }
    },
    listTopics: () => retrying(() => admin.listTopics()),
    awaitLeaders: (topics, timeoutMs) => serial(() => awaitLeaders(admin, topics, timeoutMs)),
    async deleteTopics(topics) {
      if (topics.length > 0) await admin.deleteTopics({ topics: [...topics] });
    },
    async deleteGroups(groups) {
      if (groups.length > 0) await admin.deleteGroups([...groups]);
    },
    async committed(groupId, topic) {
      const [entry] = await retrying(() => admin.fetchOffsets({ groupId, topics: [topic] }));
      return (entry?.partitions ?? []).map((p) => ({
        partition: p.partition,
        offset: p.offset,
        metadata: p.metadata ?? null,
      }));
    },
    async ends(topic) {
      const list = await serial(() => retrying(() => admin.fetchTopicOffsets(topic)));
      return list.map((p) => ({ partition: p.partition, low: p.low, high: p.high }));
    },
    async members(groupId) {
      const { groups } = await retrying(() => admin.describeGroups([groupId]));
      return groups[0]?.members.length ?? 0;
    },
    async maxMessageBytes(topic) {
      const result = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }],
      });
      const value = result.resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue;
      return value === undefined ? undefined : Number(value);
    },
    disconnect: () => admin.disconnect(),
  };
}

/** Evicting a crashed member: per attempt, and attempts before joining without it. */
const EVICT_TIMEOUT_MS = 3_000;
const EVICT_ATTEMPTS = 8;

/** Delays before restarting a crashed consumer: doubling from the first, reset by a join. */
const RESTART_FIRST_MS = 500;
// The next attempt after the broker is back waits up to this: with 10 s, a broker restart of
// ~25 s cost 9.5-13 s more before the consumer joined again (chaos broker-restart / broker-kill).
// An attempt while the broker is away is a refused connection: cheap.
const RESTART_MAX_MS = 2_000;

/**
 * Every crashed consumer is restarted here, as a new kafkajs consumer, never by kafkajs itself:
 * - kafkajs restarts a crash only when it deems it "retriable", and one a broker restart causes is
 *   not (`KafkaJSNonRetriableError: Failed to find group coordinator` when a rebalance notice
 *   arrives while the broker shuts down, tulios/kafkajs#1630, #1445): that consumer stays stopped
 *   for good, silently;
 * - kafkajs' own restart runs from a timer whose promise nobody awaits (`setTimeout(() =>
 *   start(onCrash))` in consumer/index.js): a failure there is an unhandled rejection that takes
 *   the process down (a KafkaJSConnectionError after a broker kill -9).
 * So `restartOnFailure` says no, and the wrapper starts a fresh consumer (a growing delay, reset by
 * a join) unless it was disconnected on purpose or the brokers refused our credentials.
 *
 * Exported for tests (with a fake kafkajs); the adapter gets it through `createClient`.
 */
export function wrapConsumer(
  kafka: Pick<kafkajs.Kafka, 'consumer'>,
  settings: ConsumerSettings,
  evict?: EvictMember,
): ClientConsumer {
  const create = (): kafkajs.Consumer =>
    kafka.consumer({
      groupId: settings.groupId,
      sessionTimeout: settings.sessionTimeoutMs,
      rebalanceTimeout: settings.rebalanceTimeoutMs,
      heartbeatInterval: settings.heartbeatIntervalMs,
      maxWaitTimeInMs: settings.maxWaitTimeMs,
      allowAutoTopicCreation: false,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000, restartOnFailure: async () => false },
    });
  let consumer = create();
  let topicList: readonly string[] = [];
  let config: kafkajs.ConsumerRunConfig | undefined;
  let disconnecting = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartDelay = RESTART_FIRST_MS;
  // The member id of the last consumer that joined; after it crashed, the one to evict (see evict.ts).
  let memberId: string | undefined;
  let stale: string | undefined;
  const crashListeners: ((error: Error, restarting: boolean) => void)[] = [];
  const assignedListeners: ((assignment: readonly TopicPartitions[]) => void)[] = [];
  // Commits the broker acknowledged, by topic|partition|offset, until their caller looked. kafkajs
  // resolves a commit without sending it (or after a failed attempt) once its runner stopped (crash,
  // disconnect): such a commit must not count as done.
  const acknowledged = new Map<string, number>();

  const start = async (): Promise<void> => {
    await consumer.connect();
    // Metadata for a topic created a moment ago (by another process) may still lack a partition:
    // kafkajs does not retry UNKNOWN_TOPIC_OR_PARTITION here, so this does, briefly.
    await retrying(() => consumer.subscribe({ topics: [...topicList], fromBeginning: true }));
    await consumer.run(config);
  };

  const restart = (): void => {
    const delay = restartDelay;
    restartDelay = Math.min(restartDelay * 2, RESTART_MAX_MS);
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (disconnecting || config === undefined) return;
      const old = consumer;
      consumer = create();
      attach(consumer);
      // The crashed one disconnected itself already; this only makes sure (kafkajs shares the call).
      void old.disconnect().catch(() => undefined);
      evictStale()
        .then(start)
        .catch((error: unknown) => {
          // A failed start (the broker still away) is a crash of the new consumer too: try again later.
          for (const listener of crashListeners) listener(error as Error, true);
          restart();
        });
    }, delay);
  };

  // The crashed member leaves before its replacement joins, so the join is not held for its
  // session. A failed eviction fails this start attempt (the broker is still away, or its
  // coordinator still loading), so the next attempt tries again; after a few, the replacement joins
  // anyway and waits the session out. `UNKNOWN_MEMBER_ID`: it left already (or expired).
  let evictFailures = 0;
  const evictStale = async (): Promise<void> => {
    const target = stale;
    if (evict === undefined || target === undefined) return;
    try {
      await withTimeout(
        evict(settings.groupId, target),
        EVICT_TIMEOUT_MS,
        () => new Error(`no answer within ${EVICT_TIMEOUT_MS} ms`),
      );
    } catch (error) {
      if ((error as { type?: unknown }).type !== 'UNKNOWN_MEMBER_ID' && ++evictFailures < EVICT_ATTEMPTS) throw error;
    }
    stale = undefined;
    evictFailures = 0;
  };

  const attach = (c: kafkajs.Consumer): void => {
    const { CRASH, GROUP_JOIN, COMMIT_OFFSETS } = c.events;
    c.on(GROUP_JOIN, (event) => {
      if (c !== consumer) return;
      restartDelay = RESTART_FIRST_MS;
      memberId = event.payload.memberId;
      // A restart that was already starting when disconnect() ran: leave again.
      if (disconnecting) {
        void c.disconnect().catch(() => undefined);
        return;
      }
      const assignment = Object.entries(event.payload.memberAssignment).map(([topic, partitions]) => ({
        topic,
        partitions,
      }));
      for (const listener of assignedListeners) listener(assignment);
    });
    c.on(CRASH, (event) => {
      if (c !== consumer) return;
      const { error, restart: restartedByKafkajs } = event.payload;
      let restarting = restartedByKafkajs;
      if (!restartedByKafkajs && !disconnecting && config !== undefined && classifyError(error) !== 'auth') {
        restarting = true;
        stale = memberId ?? stale;
        memberId = undefined;
        restart();
      }
      for (const listener of crashListeners) listener(error, restarting);
    });
    c.on(COMMIT_OFFSETS, (event) => {
      for (const { topic, partitions } of event.payload.topics) {
        for (const { partition, offset } of partitions) {
          const key = `${topic}|${partition}|${String(offset)}`;
          acknowledged.set(key, (acknowledged.get(key) ?? 0) + 1);
        }
      }
    });
  };
  attach(consumer);

  /** Whether the broker acknowledged a commit of this offset since the caller sent it (consumes one acknowledgement). */
  const wasAcknowledged = (o: OffsetCommit): boolean => {
    const key = `${o.topic}|${o.partition}|${o.offset}`;
    const count = acknowledged.get(key) ?? 0;
    if (count === 0) return false;
    if (count === 1) acknowledged.delete(key);
    else acknowledged.set(key, count - 1);
    return true;
  };
  /** pause/resume/seek throw while kafkajs is between a crash and its restart; the restart starts from the committed offsets, unpaused. */
  const whileRunning = (work: () => void): void => {
    try {
      work();
    } catch (error) {
      if (!/not initialized/i.test((error as Error).message)) throw error;
    }
  };

  return {
    async run(topics, onBatch) {
      topicList = topics;
      config = {
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: settings.partitionsConcurrently,
        eachBatch: async ({ batch, heartbeat, resolveOffset, isRunning, isStale }) => {
          await onBatch({
            topic: batch.topic,
            partition: batch.partition,
            records: batch.messages.map((m) => ({
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              key: m.key ?? null,
              value: m.value ?? null,
              headers: (m.headers ?? {}) as IncomingHeaders,
              timestamp: m.timestamp,
            })),
            heartbeat,
            resolve: resolveOffset,
            isActive: () => isRunning() && !isStale(),
          });
        },
      };
      await start();
    },
    onAssigned(listener) {
      assignedListeners.push(listener);
    },
    onCrash(listener) {
      crashListeners.push(listener);
    },
    pause: (targets) => whileRunning(() => consumer.pause(targets.map(toKafkaTarget))),
    resume: (targets) => whileRunning(() => consumer.resume(targets.map(toKafkaTarget))),
    seek: (topic, partition, offset) => whileRunning(() => consumer.seek({ topic, partition, offset })),
    async commit(offsets) {
      await consumer.commitOffsets(offsets.map((o) => ({ ...o, metadata: o.metadata ?? null })));
      // Check every offset (each check consumes its acknowledgement), then fail if one was missing.
      const missing = offsets.filter((o) => !wasAcknowledged(o));
      if (missing.length > 0) {
        throw new Error(
          `the offset commit was not sent: the consumer of ${settings.groupId} stopped (it restarts and resumes from the last committed offsets)`,
        );
      }
    },
    async disconnect() {
      disconnecting = true;
      clearTimeout(restartTimer);
      restartTimer = undefined;
      await consumer.disconnect();
    },
  };
}

function toKafkaTarget(target: PauseTarget): { topic: string; partitions?: number[] } {
  return target.partitions === undefined
    ? { topic: target.topic }
    : { topic: target.topic, partitions: [...target.partitions] };
}

function rootCause(error: unknown): unknown {
  let e = error as { cause?: unknown; originalError?: unknown } | undefined;
  for (let i = 0; i < 10 && e; i++) {
    const next = e.originalError ?? e.cause;
    if (!next) break;
    e = next as typeof e;
  }
  return e;
}

/** Maps a kafkajs error (or one it wraps) onto a library-independent kind. */
export function classifyError(error: unknown): ErrorKind {
  const seen: unknown[] = [error, rootCause(error)];
  for (const candidate of seen) {
    const e = candidate as { name?: string; type?: string; code?: string } | undefined;
    if (!e) continue;
    if (e.type === 'MESSAGE_TOO_LARGE' || e.type === 'RECORD_LIST_TOO_LARGE') return 'too-large';
    if (e.type === 'UNKNOWN_TOPIC_OR_PARTITION' || e.name === 'KafkaJSTopicMetadataNotLoaded') return 'unknown-topic';
    if (e.type === 'TOPIC_ALREADY_EXISTS') return 'topic-exists';
    if (e.type === 'REBALANCE_IN_PROGRESS' || e.type === 'ILLEGAL_GENERATION' || e.type === 'UNKNOWN_MEMBER_ID')
      return 'rebalancing';
    if (e.type === 'NON_EMPTY_GROUP') return 'group-not-empty';
    if (e.name === 'KafkaJSSASLAuthenticationError' || e.type === 'SASL_AUTHENTICATION_FAILED') return 'auth';
    if (
      // A broker that is starting (or just restarted) has no group coordinator yet: not ready, as unreachable.
      e.name === 'KafkaJSGroupCoordinatorNotFound' ||
      e.type === 'COORDINATOR_NOT_AVAILABLE' ||
      e.type === 'COORDINATOR_LOAD_IN_PROGRESS' ||
      e.name === 'KafkaJSConnectionError' ||
      e.name === 'KafkaJSBrokerNotFound' ||
      e.name === 'KafkaJSNoBrokerAvailableError' ||
      e.name === 'KafkaJSRequestTimeoutError' ||
      e.name === 'KafkaJSConnectionClosedError' ||
      e.code === 'ECONNREFUSED' ||
      e.code === 'ENOTFOUND' ||
      e.code === 'ETIMEDOUT' ||
      e.code === 'EHOSTUNREACH'
    )
      return 'unreachable';
  }
  // createTopics wraps per-topic errors in an aggregate.
  const errors = (error as { errors?: unknown[] } | undefined)?.errors;
  if (Array.isArray(errors) && errors.length > 0) {
    const kinds = new Set(errors.map(classifyError));
    if (kinds.size === 1) return [...kinds][0] as ErrorKind;
  }
  return 'other';
}
