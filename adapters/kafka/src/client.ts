/**
 * The one file that imports kafkajs. Everything else in the adapter talks to the small interface
 * below, so replacing kafkajs (unmaintained since 2023) with another client touches this file only.
 */
import { type Logger, withTimeout } from '@wharf/core';
import kafkajs from 'kafkajs';
import { classifyError } from './classify.js';
import type {
  ClientAdmin,
  ClientConfig,
  ClientConsumer,
  ClientProducer,
  ConsumerSettings,
  IncomingHeaders,
  KafkaClient,
  OffsetCommit,
  PauseTarget,
  ProducerSettings,
  TopicPartitions,
} from './client-types.js';
import { type EvictMember, memberEvictor } from './evict.js';

const { Kafka, Partitioners, logLevel, ConfigResourceTypes } = kafkajs;

export type * from './client-types.js';
export { classifyError };

// kafkajs logs messages that Wharf reports itself, better, or that are noise for us.
const QUIET = [/Limiting retries for the idempotent producer/, /KafkaJS v2\.0\.0 switched default partitioner/];

/**
 * The last "group authorization failed" a broker answered this client's FindCoordinator with.
 * kafkajs drops that error (its broker pool swallows it) and reports "Failed to find group
 * coordinator", which reads as an unreachable broker and was retried for good; its log line keeps it.
 */
interface GroupRefusal {
  last?: { at: number; message: string };
}

function logCreator(logger: Logger, refusal: GroupRefusal) {
  return () =>
    ({ level, log }: { namespace: string; level: number; log: { message: string; [k: string]: unknown } }) => {
      const { message, timestamp: _t, logger: _l, ...fields } = log;
      if (typeof fields.error === 'string' && /group authorization failed/i.test(fields.error)) {
        refusal.last = { at: Date.now(), message: fields.error };
      }
      const text = `[wharf] [kafka] kafkajs: ${message}`;
      if (QUIET.some((re) => re.test(message))) return logger.debug(text, fields);
      // kafkajs logs every retried connection failure as an error; Wharf raises typed errors for
      // what matters, so the client's own errors are warnings.
      if (level === logLevel.ERROR || level === logLevel.WARN) logger.warn(text, fields);
      else logger.debug(text, fields);
    };
}

export function createClient(config: ClientConfig): KafkaClient {
  const refusal: GroupRefusal = {};
  const base = {
    brokers: [...config.brokers],
    clientId: config.clientId,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    enforceRequestTimeout: true,
    retry: { retries: config.retries, initialRetryTime: 100, maxRetryTime: config.maxRetryTimeMs },
    logLevel: logLevel.WARN,
    logCreator: logCreator(config.logger, refusal),
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
      return wrapConsumer(kafka, settings, memberEvictor(kafka), refusal);
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
  /** Every producer's sends not ended yet, including those its caller gave up on (publishTimeoutMs). */
  const sending = new Map<kafkajs.Producer, Set<Promise<unknown>>>();
  /**
   * Disconnects, then again each time the sends it had running have ended. A kafkajs send that
   * retries after disconnect() connects the cluster again (sendMessages.js: `if
   * (!cluster.isConnected()) await cluster.connect()`), and nothing closes that connection: it kept
   * a saga process alive after its last close(), until the broker dropped the idle connection
   * (connections.max.idle.ms, 10 min) — seen after a broker kill -9 mid-run, where the replaced
   * producers' sends were still retrying. Sends end on their own (bounded retries and request timeout).
   */
  const shutDown = async (producer: kafkajs.Producer): Promise<void> => {
    const disconnect = (): Promise<void> => producer.disconnect().catch(() => undefined);
    await disconnect();
    await disconnectOnceIdle(disconnect, () => sending.get(producer));
  };
  const renew = (): void => {
    const old = current;
    spoiled = false;
    running = 0;
    current = create();
    retired.add(old);
    // Its abandoned sends stop with it (at worst a late write: a duplicate of a failed publish).
    void old
      .then(shutDown)
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
      const sends = sending.get(producer) ?? new Set<Promise<unknown>>();
      sending.set(producer, sends);
      const sent = producer.sendBatch({
        acks: settings.acks,
        timeout: settings.requestTimeoutMs,
        // Our records are kafkajs messages already; kafkajs 2.2.4 reads them and never mutates
        // them, so they are passed as they are rather than copied per record.
        topicMessages: batch.map(({ topic, records }) => ({
          topic,
          messages: records as kafkajs.Message[],
        })),
      });
      sends.add(sent);
      try {
        await sent;
      } catch (error) {
        if (mine === current) spoiled = true;
        throw error;
      } finally {
        if (mine === current) running--;
        sends.delete(sent);
        if (sends.size === 0) sending.delete(producer);
      }
    },
    disconnect: async () => {
      const others = [...retired].map((p) => p.then(shutDown).catch(() => undefined));
      await Promise.all([shutDown(await current), ...others]);
    },
  };
}

/**
 * Disconnects again each time the calls still `running` have ended: a kafkajs call that retries
 * after disconnect() connects the cluster again (the producer's sendMessages.js, the admin's
 * metadata refresh), and nothing would close that connection (see safeProducer).
 */
async function disconnectOnceIdle(
  disconnect: () => Promise<void>,
  running: () => ReadonlySet<Promise<unknown>> | undefined,
): Promise<void> {
  for (let calls = running(); calls !== undefined && calls.size > 0; calls = running()) {
    await Promise.allSettled([...calls]);
    await disconnect();
  }
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

/** kafkajs' admin behind the adapter's interface, with its retries (also the bench's, for the same races). */
export function wrapAdmin(admin: kafkajs.Admin): ClientAdmin {
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
  // As with the producer (see safeProducer's shutDown): a kafkajs admin call that retries after
  // disconnect() refreshes metadata through a new connection, which then stays open. Calls still
  // running when it disconnects are waited for, and it disconnects again.
  const running = new Set<Promise<unknown>>();
  const wrapped: ClientAdmin = {
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
    async topicConfigs(topic, names) {
      const result = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: [...names] }],
      });
      const out: Record<string, string> = {};
      for (const e of result.resources[0]?.configEntries ?? []) {
        if (e.configValue !== null && e.configValue !== undefined) out[e.configName] = e.configValue;
      }
      return out;
    },
    async disconnect() {
      await admin.disconnect();
      await disconnectOnceIdle(
        () => admin.disconnect().catch(() => undefined),
        () => running,
      );
    },
  };
  return new Proxy(wrapped, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function' || key === 'disconnect') return value;
      return (...args: unknown[]): unknown => {
        const result: unknown = value.apply(target, args);
        if (result instanceof Promise) {
          running.add(result);
          const done = (): void => {
            running.delete(result);
          };
          result.then(done, done);
        }
        return result;
      };
    },
  });
}

/** Crashes a restart cannot mend: the brokers refused the credentials, the certificates or the group. */
const REFUSALS = new Set(['auth', 'tls', 'not-authorized']);

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
  refusal?: GroupRefusal,
): ClientConsumer {
  /** "Failed to find group coordinator" right after a broker refused the group: that refusal, typed. */
  const explain = (error: Error): Error => {
    const last = refusal?.last;
    if (error.name !== 'KafkaJSGroupCoordinatorNotFound' || last === undefined || Date.now() - last.at > 10_000) {
      return error;
    }
    return Object.assign(new Error(`${last.message} (consumer group ${settings.groupId})`, { cause: error }), {
      name: 'KafkaJSProtocolError',
      type: 'GROUP_AUTHORIZATION_FAILED',
    });
  };
  const create = (): kafkajs.Consumer =>
    kafka.consumer({
      groupId: settings.groupId,
      sessionTimeout: settings.sessionTimeoutMs,
      rebalanceTimeout: settings.rebalanceTimeoutMs,
      heartbeatInterval: settings.heartbeatIntervalMs,
      maxWaitTimeInMs: settings.maxWaitTimeMs,
      allowAutoTopicCreation: false,
      // Capped like RESTART_MAX_MS, for the same reason: the retry after the broker is back waits up
      // to this (chaos broker-restart recovered in 4.6 / 4.7 s, median / max of 3, with 5 s).
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 2_000, restartOnFailure: async () => false },
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
        .catch((failure: unknown) => {
          // A failed start (the broker still away) is a crash of the new consumer too: try again
          // later, unless the brokers refused it (an ACL revoked meanwhile): that stops for good.
          const error = explain(failure as Error);
          const again = !REFUSALS.has(classifyError(error));
          for (const listener of crashListeners) listener(error, again);
          if (again) restart();
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
    // A request that timed out went into a dead connection (a network black hole that swallowed part
    // of a frame leaves the stream out of step): kafkajs keeps that connection and waits on it, so
    // the consumer stopped delivering, silently and for good (chaos proxy-blackhole, once in CI: no
    // delivery for 30 s, the member evicted by the coordinator, kafkajs still waiting). Handled as a
    // crash: a fresh consumer, fresh connections, the old member evicted.
    c.on(c.events.REQUEST_TIMEOUT, (event) => {
      if (c !== consumer || disconnecting || config === undefined || restartTimer !== undefined) return;
      const { apiName, broker } = event.payload;
      const error = new Error(`request ${apiName} to ${broker} timed out`);
      error.name = 'KafkaJSRequestTimeoutError';
      stale = memberId ?? stale;
      memberId = undefined;
      restart();
      for (const listener of crashListeners) listener(error, true);
    });
    c.on(CRASH, (event) => {
      if (c !== consumer) return;
      const { restart: restartedByKafkajs } = event.payload;
      const error = explain(event.payload.error);
      let restarting = restartedByKafkajs;
      if (!restartedByKafkajs && !disconnecting && config !== undefined && !REFUSALS.has(classifyError(error))) {
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
