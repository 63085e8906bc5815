import {
  type AdapterSubscription,
  type DeadLetterInfo,
  DeadLetterWriteError,
  type Decoded,
  type Delivery,
  deadLetterHeaders,
  describeError,
  type Logger,
  RAW_QUEUE_HEADER,
  type RetryInstruction,
  retryHeaders,
  type SubscribeRequest,
  withTimeout,
} from '@wharf/core';
import type {
  ClientAdmin,
  ClientConsumer,
  CommittedOffset,
  FetchedBatch,
  IncomingRecord,
  KafkaClient,
} from './client.js';
import { copyHeaders, DUE_HEADER, decode, ORIGIN_HEADER } from './codec.js';
import { OffsetCommits } from './commits.js';
import { countDelivery, crashLoopInfo, type ProbeContext, uncountDelivery } from './crash-loop.js';
import { attemptOf, commitTarget, Item, type RecordWriter, Slots } from './delivery.js';
import { whileUnreachable } from './errors.js';
import { type Reporter, reporter } from './incidents.js';
import { ADAPTER_NAME, type ResolvedKafkaOptions } from './options.js';
import { dueOf, PartitionPauses } from './pauses.js';
import type { Publisher } from './publisher.js';
import { adoptTopic, decodePlain, eventHeaders, RAW_TIME_HEADER } from './raw.js';
import { startsFromNow, type Topology } from './topology.js';

/** Why a batch stopped early. */
interface BatchControl {
  interrupted: boolean;
}

export interface SubscriberDeps {
  readonly options: ResolvedKafkaOptions;
  readonly client: KafkaClient;
  readonly topology: Topology;
  readonly publisher: Publisher;
  readonly admin: () => Promise<ClientAdmin>;
  readonly logger: Logger;
}

/**
 * One subscription = one kafkajs consumer in the group `<prefix>.<channel>.<group>`, reading the
 * channel topic and the group's retry topics. Partitions are handled in parallel; within a
 * partition, records of one key run one after another and different keys run side by side, never
 * more than `concurrency` at once. A batch's offsets are committed when its records are settled,
 * up to the first one that is not (released, interrupted): that one and what follows come again.
 */
export class Subscriber implements AdapterSubscription {
  readonly #deps: SubscriberDeps;
  readonly #request: SubscribeRequest;
  readonly #onDelivery: (delivery: Delivery) => Promise<void>;
  readonly #slots: Slots;
  readonly #groupId: string;
  readonly #report: Reporter;
  readonly #retryTopics = new Map<number, string>();
  readonly #retryTopicSet = new Set<string>();
  readonly #dlt: string;
  readonly #batches = new Set<Promise<void>>();
  readonly #commits: OffsetCommits;
  readonly #pauses: PartitionPauses;
  readonly #writer: RecordWriter = {
    retry: (record, instruction) => this.#writeRetry(record, instruction),
    deadLetter: (record, info) => this.#writeDeadLetter(record, info),
  };
  /** The record decoder: CloudEvents, or plain messages wrapped (raw mode). */
  readonly #decode: (record: IncomingRecord) => Decoded;
  #consumer: ClientConsumer | undefined;
  #topics: string[] = [];
  // Per assignment (reset on every rebalance): generation, probed partitions, committed offsets read.
  #generation = 0;
  #probed = new Set<string>();
  #committedInfo = new Map<string, Promise<CommittedOffset[]>>();
  /** Where this subscriber started reading partitions that had no committed offset (kept across assignments). */
  readonly #starts = new Map<string, bigint>();
  /**
   * Settles once the partitions of this assignment that had no committed offset got their start
   * committed; maps `topic|partition` to that offset (records before it were published before the
   * subscription and are not delivered).
   */
  #initialised: Promise<Map<string, bigint>> = Promise.resolve(new Map());
  #stopping = false;
  /** A crash was reported and the consumer has not joined since. */
  #stalled = false;
  #closed: Promise<void> | undefined;
  /** Set when close gave up waiting for handlers: batches stop waiting for them. */
  #abandoned = false;
  /** Batches waiting for their handlers or their commit; close wakes them when it gives up. */
  readonly #waiting = new Set<() => void>();

  constructor(deps: SubscriberDeps, request: SubscribeRequest, onDelivery: (delivery: Delivery) => Promise<void>) {
    this.#deps = deps;
    this.#request = request;
    this.#onDelivery = onDelivery;
    this.#slots = new Slots(request.concurrency);
    const names = deps.topology.names;
    this.#groupId = names.group(request.channel, request.group);
    this.#report = reporter(request, deps.logger, this.#groupId);
    const consumer = (): ClientConsumer => this.#consumer as ClientConsumer;
    // Not fatal: the events after the last committed offset are delivered again (deduplicated by id).
    this.#commits = new OffsetCommits(consumer, (offsets, error) => {
      const list = offsets.map((o) => `${o.topic}/${o.partition}@${o.target}`);
      this.#report(
        'settle-failed',
        `settled events could not be committed (${list.join(', ')}); the events after the last committed offsets are delivered again`,
        { error, details: { offsets: list } },
      );
    });
    this.#pauses = new PartitionPauses(consumer);
    const { retries, dlt } = names.groupTopics(request.channel, request.group, request.policy);
    for (const [tier, topic] of retries) {
      this.#retryTopics.set(tier, topic);
      this.#retryTopicSet.add(topic);
    }
    this.#dlt = dlt;
    const raw = request.raw;
    this.#decode = raw === undefined ? decode : (record) => decodePlain(raw, record);
  }

  /** Declares the group, joins it and resolves once partitions are assigned (or the join takes too long). */
  async start(): Promise<void> {
    const { options, topology, client, logger } = this.#deps;
    const { channel, group, policy, concurrency } = this.#request;
    const raw = this.#request.raw;
    const adopted = raw === undefined ? undefined : (raw.queue ?? channel);
    if (adopted !== undefined) await adoptTopic(await this.#deps.admin(), adopted, raw?.arguments);
    this.#topics = await topology.declareGroup(channel, group, policy, { initialiseOffsets: false, adopted });
    const consumer = client.consumer({
      groupId: this.#groupId,
      sessionTimeoutMs: options.sessionTimeoutMs,
      rebalanceTimeoutMs: options.rebalanceTimeoutMs,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      maxWaitTimeMs: options.maxWaitTimeMs,
      partitionsConcurrently: Math.max(1, Math.min(concurrency, 64)),
    });
    this.#consumer = consumer;
    let joined: () => void = () => {};
    const firstJoin = new Promise<void>((resolve) => {
      joined = resolve;
    });
    consumer.onAssigned((assignment) => {
      this.#generation++;
      this.#stalled = false;
      this.#commits.reset();
      this.#probed = new Set();
      this.#committedInfo = new Map();
      logger.debug(`[wharf] [kafka] ${this.#groupId} assigned`, { assignment });
      // A new group starts from "now": commit the end offsets where nothing is committed yet,
      // without a separate join. The partitions are not paused meanwhile (kafkajs sleeps a whole
      // maxWaitTimeMs when every partition is paused, which delayed the first events of every
      // subscription): kafkajs may fetch from the earliest offset before this commit lands, so
      // the first batch of each such partition waits for it and skips the records before it.
      // Partitions with a committed offset are never skipped into (after a restart, for one).
      this.#initialised = this.#initialiseOffsets(consumer, assignment)
        .catch((error: unknown) => {
          logger.warn(
            `[wharf] [kafka] could not initialise the offsets of ${this.#groupId}; reading from the earliest`,
            { error: describeError(error).message },
          );
          return new Map<string, bigint>();
        })
        .finally(joined);
    });
    // A crash that is not restarted before the first join is a refusal (an ACL on the group, the
    // credentials): subscribe() fails with it rather than return a subscription that never delivers.
    let refusedWith: unknown;
    let refused: (error: unknown) => void = () => {};
    const refusal = new Promise<never>((_, reject) => {
      refused = (error) => {
        refusedWith ??= error;
        reject(error);
      };
    });
    refusal.catch(() => undefined);
    let hasJoined = false;
    void firstJoin.then(() => {
      hasJoined = true;
    });
    consumer.onCrash((error, restarting) => {
      if (!restarting && !hasJoined) refused(error);
      // One incident per outage: while the brokers stay away every restart attempt crashes again
      // (every 0.5-10 s per subscription); those are warnings until the consumer joined again.
      if (this.#stalled && restarting) {
        logger.warn(
          `[wharf] [kafka] the consumer of ${this.#groupId} could not start again yet (${describeError(error).message}); retrying`,
        );
        return;
      }
      this.#stalled = true;
      // Its unsettled records come again from the last committed offsets once it is back.
      this.#report(
        'stalled',
        `the consumer stopped (${describeError(error).message}) on brokers ${options.where}; ${
          restarting
            ? 'it is restarted and resumes from the committed offsets'
            : 'it stopped for good — subscribe again'
        }`,
        { error, details: { restarting } },
      );
    });
    await whileUnreachable(
      () => consumer.run(this.#topics, (batch) => this.#track(this.#onBatch(batch))),
      options.connectTimeoutMs,
      undefined,
      () => this.#stopping,
    );
    try {
      await withTimeout(
        Promise.race([firstJoin, refusal]),
        options.sessionTimeoutMs + options.connectTimeoutMs,
        () => new Error('join timeout'),
      );
    } catch (error) {
      if (refusedWith !== undefined && error === refusedWith) throw error;
      logger.warn(`[wharf] [kafka] ${this.#groupId} has not joined its group yet; it keeps trying in the background`);
    }
  }

  /**
   * A new group starts from "now": for the assigned partitions that have no committed offset,
   * commits where this subscriber starts reading them (the end offset, the first time), and returns
   * those offsets by `topic|partition`. Records before them were published before the subscription.
   */
  async #initialiseOffsets(
    consumer: ClientConsumer,
    assignment: readonly { topic: string; partitions: readonly number[] }[],
  ): Promise<Map<string, bigint>> {
    const commits = await startsFromNow(
      await this.#deps.admin(),
      (topic) => this.#committedOf(topic),
      assignment,
      this.#starts,
    );
    if (commits.length > 0) await consumer.commit(commits);
    return new Map(commits.map((c) => [`${c.topic}|${c.partition}`, BigInt(c.offset)]));
  }

  #track(work: Promise<void>): Promise<void> {
    this.#batches.add(work);
    return work.finally(() => this.#batches.delete(work));
  }

  /**
   * Waits for `work` unless close gives up on the running handlers first. Not a `Promise.race` with
   * one never-settling promise: each race leaves a reaction on it, which a long-running subscription
   * would accumulate batch after batch.
   */
  #unlessAbandoned(work: Promise<unknown>): Promise<void> {
    if (this.#abandoned) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.#waiting.delete(wake);
        resolve();
      };
      this.#waiting.add(wake);
      work.then(wake, wake);
    });
  }

  /** Whether records of this batch may still be handed over (`isActive` is checked before the loop). */
  #dispatching(control: BatchControl, generation: number): boolean {
    return !this.#stopping && !control.interrupted && generation === this.#generation;
  }

  async #onBatch(fetched: FetchedBatch): Promise<void> {
    if (this.#stopping || fetched.records.length === 0) return;
    const generation = this.#generation;
    const tp = `${fetched.topic}|${fetched.partition}`;
    const control: BatchControl = { interrupted: false };
    const isRetry = this.#retryTopicSet.has(fetched.topic);
    const items: Item[] = [];
    let batch = fetched;
    let dueAt: number | undefined;
    let lastCommitAt = Date.now();
    // kafkajs heartbeats only between batches: keep the membership alive while handlers run, and
    // commit what is settled now and then so a long batch does not hold everything back.
    const beat = setInterval(() => {
      fetched.heartbeat().catch(() => {
        control.interrupted = true;
      });
      if (Date.now() - lastCommitAt >= this.#deps.options.commitIntervalMs) {
        lastCommitAt = Date.now();
        const target = commitTarget(items);
        if (target !== undefined && generation === this.#generation) {
          void this.#commits.queued(fetched.topic, fetched.partition, target);
        }
      }
    }, this.#deps.options.heartbeatIntervalMs);
    try {
      let start = 0;
      if (!this.#probed.has(tp)) {
        // The first batch of a partition in this assignment: kafkajs may have fetched it before the
        // offset initialisation landed (a new group reads from "now", see onAssigned).
        const from = (await this.#initialised).get(tp);
        if (!this.#dispatching(control, generation)) return;
        if (from !== undefined && BigInt(fetched.records[0]?.offset ?? from) < from) {
          const records = fetched.records.filter((r) => BigInt(r.offset) >= from);
          if (records.length === 0) {
            (this.#consumer as ClientConsumer).seek(fetched.topic, fetched.partition, String(from));
            return;
          }
          batch = { ...fetched, records };
        }
        const first = batch.records[0] as IncomingRecord;
        const due = isRetry ? dueOf(first) : 0;
        if (due > Date.now()) dueAt = due;
        else {
          this.#probed.add(tp);
          const item = new Item(first, this.#writer, this.#decode);
          items.push(item);
          start = 1;
          await this.#probe(first, item, control, generation);
          if (item.state !== 'done') start = batch.records.length;
        }
      }
      const chains = new Map<string, Promise<void>>();
      const running: Promise<void>[] = [];
      // Checked once: this loop never awaits, so whether kafkajs still runs the batch (not stale, not
      // rebalancing) cannot change between its records; asking per record cost ~1.5 µs each.
      const active = batch.isActive();
      for (let i = start; i < batch.records.length && dueAt === undefined && active; i++) {
        if (!this.#dispatching(control, generation)) break;
        const record = batch.records[i] as IncomingRecord;
        if (isRetry) {
          const due = dueOf(record);
          if (due > Date.now()) {
            dueAt = due;
            break;
          }
        }
        const item = new Item(record, this.#writer, this.#decode);
        items.push(item);
        const key = record.key === null ? undefined : record.key.toString('latin1');
        const before = key === undefined ? undefined : chains.get(key);
        const run = this.#run(item, before, control, generation, 0);
        if (key !== undefined) chains.set(key, run);
        running.push(run);
      }
      await this.#unlessAbandoned(Promise.all(running));
    } finally {
      clearInterval(beat);
    }
    await this.#finish(batch, items, generation, dueAt);
  }

  /**
   * The first record of a partition after an assignment may be one a previous consumer died on:
   * count this delivery first (see crash-loop.ts), and dead-letter it without running the handler
   * once the count exceeds the policy's attempts.
   */
  async #probe(record: IncomingRecord, item: Item, control: BatchControl, generation: number): Promise<void> {
    const ctx: ProbeContext = {
      consumer: this.#consumer as ClientConsumer,
      commits: this.#commits,
      committedOf: (topic) => this.#committedOf(topic),
      report: this.#report,
      logger: this.#deps.logger,
      groupId: this.#groupId,
    };
    const deliveries = await countDelivery(ctx, record);
    const attempt = attemptOf(record, deliveries - 1);
    if (attempt > this.#request.policy.maxAttempts) {
      await this.#crashLoop(record, item, attempt);
    } else {
      await this.#run(item, undefined, control, generation, deliveries - 1);
    }
    if (item.state === 'done') {
      await this.#commits.now(record.topic, record.partition, BigInt(record.offset) + 1n);
    } else if (item.state === 'released' || item.state === 'skipped') {
      await uncountDelivery(ctx, record, deliveries);
    }
  }

  async #crashLoop(record: IncomingRecord, item: Item, attempt: number): Promise<void> {
    const { channel, group } = this.#request;
    try {
      await this.#writeDeadLetter(record, crashLoopInfo(record, attempt, channel, group));
      item.state = 'done';
      this.#deps.logger.warn(`[wharf] [kafka] dead-lettered an event on ${channel}/${group}: crash loop`, {
        offset: record.offset,
        topic: record.topic,
      });
    } catch (writeError) {
      item.state = 'released';
      this.#report(
        'dead-letter-failed',
        `a crash-looping event could not be dead-lettered to ${this.#dlt}; it is released and comes again`,
        { record, error: writeError },
      );
    }
  }

  #committedOf(topic: string): Promise<CommittedOffset[]> {
    let info = this.#committedInfo.get(topic);
    if (!info) {
      info = this.#deps.admin().then((admin) => admin.committed(this.#groupId, topic));
      info.catch(() => this.#committedInfo.delete(topic));
      this.#committedInfo.set(topic, info);
    }
    return info;
  }

  async #run(
    item: Item,
    before: Promise<void> | undefined,
    control: BatchControl,
    generation: number,
    extraAttempts: number,
  ): Promise<void> {
    if (before) await before;
    if (!this.#dispatching(control, generation)) {
      item.state = 'skipped';
      return;
    }
    if (!this.#slots.tryAcquire() && !(await this.#slots.acquire())) {
      item.state = 'skipped';
      return;
    }
    try {
      if (!this.#dispatching(control, generation)) {
        item.state = 'skipped';
        return;
      }
      const settling = this.#onDelivery(item.open(extraAttempts));
      // A handler that finished synchronously was settled before onDelivery returned: its slot is
      // free now, so the loop hands the next record over at once instead of each waiting for the
      // previous one's promise chain (~2-3 µs per event consuming a backlog). The core finishes its
      // bookkeeping by itself; only a failure of it is still reported here.
      if (item.state === 'running') await settling;
      else settling.then(undefined, this.#unexpected);
    } catch (error) {
      this.#unexpected(error);
    } finally {
      this.#slots.release();
    }
    // The core settles every delivery; one it did not is treated as given back.
    if (item.state === 'running') item.state = 'released';
  }

  readonly #unexpected = (error: unknown): void => {
    this.#report('other', `a delivery failed unexpectedly on consumer group ${this.#groupId}`, { error });
  };

  #retryTopic(tierMs: number): string {
    const exact = this.#retryTopics.get(tierMs);
    if (exact) return exact;
    // Any of the group's retry topics works (the due time travels in a header); prefer the closest tier.
    let best: [number, string] | undefined;
    for (const entry of this.#retryTopics) {
      if (!best || Math.abs(entry[0] - tierMs) < Math.abs(best[0] - tierMs)) best = entry;
    }
    if (!best) throw new Error(`[wharf] [kafka] ${this.#groupId} has no retry topic (maxAttempts is 1)`);
    return best[1];
  }

  async #writeRetry(record: IncomingRecord, instruction: RetryInstruction): Promise<void> {
    const headers = {
      ...copyHeaders(record.headers, (name) => name.startsWith('wharf-')),
      ...retryHeaders(instruction),
    };
    headers[DUE_HEADER] = String(Date.now() + instruction.delayMs);
    headers[ORIGIN_HEADER] = origin(record);
    if (this.#request.raw !== undefined) {
      const decoded = this.#decode(record);
      const time = decoded.ok ? decoded.message.attributes.time : undefined;
      if (time !== undefined) headers[RAW_TIME_HEADER] = time;
    }
    const topic = this.#retryTopic(instruction.tierMs);
    await this.#deps.publisher.send(
      topic,
      [{ key: record.key, value: record.value, headers }],
      `scheduling a retry on ${topic}`,
    );
  }

  async #writeDeadLetter(record: IncomingRecord, info: DeadLetterInfo): Promise<void> {
    const headers = copyHeaders(record.headers, (name) => name === DUE_HEADER || name.startsWith('wharf-dl-'));
    // Raw mode: the wrapped event's attributes too, so the dead letter reads back as the event that failed.
    const raw = this.#request.raw;
    if (raw !== undefined) {
      Object.assign(headers, eventHeaders(this.#decode(record)));
      headers[RAW_QUEUE_HEADER] = raw.queue ?? this.#request.channel;
    }
    Object.assign(headers, deadLetterHeaders(info));
    headers[ORIGIN_HEADER] ??= origin(record);
    try {
      await this.#deps.publisher.send(
        this.#dlt,
        [{ key: record.key, value: record.value, headers }],
        `dead-lettering to ${this.#dlt}`,
      );
    } catch (error) {
      throw new DeadLetterWriteError(
        ADAPTER_NAME,
        `writing to the dead-letter topic ${this.#dlt} failed: ${describeError(error).message}; the event stays unsettled`,
        { cause: error },
      );
    }
  }

  async #finish(
    batch: FetchedBatch,
    items: readonly Item[],
    generation: number,
    dueAt: number | undefined,
  ): Promise<void> {
    if (generation !== this.#generation) return; // the partition may belong to another member now
    const consumer = this.#consumer as ClientConsumer;
    // The batch ends when its commit was answered, so kafkajs fetches again one commit round trip
    // later: meanwhile more records arrive and the next fetch brings them together. Returning at
    // once made a tight fetch loop of small fetches, which cost ~8 µs of client CPU per event (raw
    // kafkajs too) for ~3 ms less latency. Batches of one fetch share the commit request (see
    // OffsetCommits.queued), and the records are settled already: only the next fetch waits.
    const target = commitTarget(items);
    const committing = target === undefined ? undefined : this.#commits.queued(batch.topic, batch.partition, target);
    const undone = items.find((i) => i.state !== 'done');
    const partition = [{ topic: batch.topic, partitions: [batch.partition] }];
    if (undone) {
      // Fetch again from the first unsettled record: never commit past it.
      consumer.seek(batch.topic, batch.partition, undone.offset);
      const backoff = this.#deps.options.releaseBackoffMs;
      if (undone.state === 'released' && backoff > 0 && !this.#stopping)
        this.#pauses.until(partition, Date.now() + backoff);
      return;
    }
    const last = items[items.length - 1];
    if (last) batch.resolve(last.offset);
    if (dueAt !== undefined && !this.#stopping) this.#pauses.until(partition, dueAt);
    if (committing) await this.#unlessAbandoned(committing);
  }

  stop(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#stopping = true;
    this.#slots.cancel();
    this.#pauses.stop();
    const consumer = this.#consumer;
    try {
      consumer?.pause(this.#topics.map((topic) => ({ topic })));
    } catch {
      // not running yet (or crashed): nothing to pause
    }
    // Leaving the group waits for the running batches: their handlers are settled by the core and
    // their offsets committed first; stop() itself returns at once (the core waits for handlers).
    this.#closed = (async () => {
      await Promise.allSettled([...this.#batches]);
      await Promise.allSettled(this.#commits.inFlight());
      await consumer?.disconnect().catch(() => undefined);
    })();
    return Promise.resolve();
  }

  /** Resolves once the consumer left the group; after `timeoutMs` it is disconnected regardless. */
  async closed(timeoutMs: number): Promise<void> {
    await this.stop();
    const closing = this.#closed as Promise<void>;
    try {
      await withTimeout(closing, timeoutMs, () => new Error('close timeout'));
    } catch {
      this.#deps.logger.warn(
        `[wharf] [kafka] handlers on ${this.#groupId} did not finish within ${timeoutMs} ms; leaving the group anyway (their events are redelivered)`,
      );
      this.#abandoned = true;
      for (const wake of [...this.#waiting]) wake();
      await withTimeout(
        this.#consumer?.disconnect() ?? Promise.resolve(),
        10_000,
        () => new Error('disconnect timeout'),
      ).catch(() => undefined);
    }
  }
}

function origin(record: IncomingRecord): string {
  return `${record.topic}/${record.partition}@${record.offset}`;
}
