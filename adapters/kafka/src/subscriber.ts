import {
  type AdapterSubscription,
  ATTEMPT_HEADER,
  CrashLoopError,
  type DeadLetterInfo,
  DeadLetterWriteError,
  type Delivery,
  deadLetterHeaders,
  deadLetterInfo,
  describeError,
  FIRST_FAILURE_HEADER,
  type Logger,
  type RetryInstruction,
  readAttempt,
  retryHeaders,
  type SubscribeRequest,
} from '@wharf/core';
import type {
  ClientAdmin,
  ClientConsumer,
  CommittedOffset,
  FetchedBatch,
  IncomingRecord,
  KafkaClient,
} from './client.js';
import { copyHeaders, DUE_HEADER, decode, headerText, ORIGIN_HEADER } from './codec.js';
import { within } from './errors.js';
import { ADAPTER_NAME, type ResolvedKafkaOptions } from './options.js';
import type { Publisher } from './publisher.js';
import type { Topology } from './topology.js';

type ItemState = 'queued' | 'running' | 'done' | 'released' | 'skipped';

/** One record of a batch on its way through the handler. */
interface Item {
  readonly offset: bigint;
  state: ItemState;
}

/** Why a batch stopped early. */
interface BatchControl {
  interrupted: boolean;
}

const MARKER = /^wharf:offset=(\d+);deliveries=(\d+)$/;

/** Offset-commit metadata that counts deliveries of the record at the committed offset. */
export function deliveryMarker(offset: bigint, deliveries: number): string | null {
  return deliveries > 0 ? `wharf:offset=${offset};deliveries=${deliveries}` : null;
}

/** Deliveries of the record at `offset` so far, from a commit's metadata. */
export function parseDeliveryMarker(metadata: string | null | undefined, offset: bigint): number {
  const m = metadata ? MARKER.exec(metadata) : null;
  return m && BigInt(m[1] as string) === offset ? Number(m[2]) : 0;
}

/** A counting semaphore whose waiters can be cancelled (on stop). */
class Slots {
  #free: number;
  readonly #waiters: ((ok: boolean) => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  acquire(): Promise<boolean> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next(true);
    else this.#free++;
  }
  cancel(): void {
    for (const waiter of this.#waiters.splice(0)) waiter(false);
  }
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
  readonly #retryTopics = new Map<number, string>();
  readonly #retryTopicSet = new Set<string>();
  readonly #dlt: string;
  readonly #batches = new Set<Promise<void>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #consumer: ClientConsumer | undefined;
  #topics: string[] = [];
  // Per assignment (reset on every rebalance): generation, committed offsets, probed partitions.
  #generation = 0;
  #committed = new Map<string, bigint>();
  #probed = new Set<string>();
  #committedInfo = new Map<string, Promise<CommittedOffset[]>>();
  #stopping = false;
  #closed: Promise<void> | undefined;
  /** Resolved when close gave up waiting for handlers: batches stop waiting for them. */
  #abandon: () => void = () => {};
  readonly #abandoned = new Promise<void>((resolve) => {
    this.#abandon = resolve;
  });

  constructor(deps: SubscriberDeps, request: SubscribeRequest, onDelivery: (delivery: Delivery) => Promise<void>) {
    this.#deps = deps;
    this.#request = request;
    this.#onDelivery = onDelivery;
    this.#slots = new Slots(request.concurrency);
    const names = deps.topology.names;
    this.#groupId = names.group(request.channel, request.group);
    const { retries, dlt } = names.groupTopics(request.channel, request.group, request.policy);
    for (const [tier, topic] of retries) {
      this.#retryTopics.set(tier, topic);
      this.#retryTopicSet.add(topic);
    }
    this.#dlt = dlt;
  }

  /** Declares the group, joins it and resolves once partitions are assigned (or the join takes too long). */
  async start(): Promise<void> {
    const { options, topology, client, logger } = this.#deps;
    const { channel, group, policy, concurrency } = this.#request;
    this.#topics = await topology.declareGroup(channel, group, policy, { initialiseOffsets: false });
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
      this.#committed = new Map();
      this.#probed = new Set();
      this.#committedInfo = new Map();
      logger.debug(`[wharf] [kafka] ${this.#groupId} assigned`, { assignment });
      // Runs before kafkajs' first fetch of this generation: hold the partitions until every one
      // has a committed offset, so a new group starts from "now" without a separate join.
      const generation = this.#generation;
      const targets = assignment.map((a) => ({ topic: a.topic, partitions: [...a.partitions] }));
      consumer.pause(targets);
      topology
        .commitEndsWhereMissing(consumer, assignment, (topic) => this.#committedOf(topic))
        .catch((error: unknown) => {
          logger.warn(
            `[wharf] [kafka] could not initialise the offsets of ${this.#groupId}; reading from the earliest`,
            {
              error: describeError(error).message,
            },
          );
        })
        .finally(() => {
          if (generation === this.#generation && !this.#stopping) consumer.resume(targets);
          joined();
        });
    });
    consumer.onCrash((error, restarting) => {
      const message = `[wharf] [kafka] the consumer of ${channel}/${group} lost the brokers ${options.where}: ${describeError(error).message}`;
      if (restarting) logger.warn(`${message}; it reconnects by itself`);
      else logger.error(`${message}; it stopped — subscribe again`);
    });
    await consumer.run(this.#topics, (batch) => this.#track(this.#onBatch(batch)));
    try {
      await within(firstJoin, options.sessionTimeoutMs + options.connectTimeoutMs, () => new Error('join timeout'));
    } catch {
      logger.warn(`[wharf] [kafka] ${this.#groupId} has not joined its group yet; it keeps trying in the background`);
    }
  }

  #track(work: Promise<void>): Promise<void> {
    this.#batches.add(work);
    return work.finally(() => this.#batches.delete(work));
  }

  /** Whether records of this batch may still be handed over (`isActive` is checked per record in the loop). */
  #dispatching(control: BatchControl, generation: number): boolean {
    return !this.#stopping && !control.interrupted && generation === this.#generation;
  }

  async #onBatch(batch: FetchedBatch): Promise<void> {
    if (this.#stopping || batch.records.length === 0) return;
    const generation = this.#generation;
    const control: BatchControl = { interrupted: false };
    const isRetry = this.#retryTopicSet.has(batch.topic);
    const items: Item[] = [];
    let dueAt: number | undefined;
    let lastCommitAt = Date.now();
    // kafkajs heartbeats only between batches: keep the membership alive while handlers run, and
    // commit what is settled now and then so a long batch does not hold everything back.
    const beat = setInterval(() => {
      batch.heartbeat().catch(() => {
        control.interrupted = true;
      });
      if (Date.now() - lastCommitAt >= this.#deps.options.commitIntervalMs) {
        lastCommitAt = Date.now();
        const target = commitTarget(items);
        if (target !== undefined && generation === this.#generation) {
          void this.#commit(batch.topic, batch.partition, target);
        }
      }
    }, this.#deps.options.heartbeatIntervalMs);
    try {
      let start = 0;
      const tp = `${batch.topic}|${batch.partition}`;
      if (!this.#probed.has(tp)) {
        const first = batch.records[0] as IncomingRecord;
        const due = isRetry ? dueOf(first) : 0;
        if (due > Date.now()) dueAt = due;
        else {
          this.#probed.add(tp);
          const item: Item = { offset: BigInt(first.offset), state: 'queued' };
          items.push(item);
          start = 1;
          await this.#probe(batch, first, item, control, generation);
          if (item.state !== 'done') start = batch.records.length;
        }
      }
      const chains = new Map<string, Promise<void>>();
      const running: Promise<void>[] = [];
      for (let i = start; i < batch.records.length && dueAt === undefined; i++) {
        if (!this.#dispatching(control, generation) || !batch.isActive()) break;
        const record = batch.records[i] as IncomingRecord;
        if (isRetry) {
          const due = dueOf(record);
          if (due > Date.now()) {
            dueAt = due;
            break;
          }
        }
        const item: Item = { offset: BigInt(record.offset), state: 'queued' };
        items.push(item);
        const key = record.key === null ? undefined : record.key.toString('latin1');
        const before = key === undefined ? undefined : chains.get(key);
        const run = this.#run(record, item, before, control, generation, 0);
        if (key !== undefined) chains.set(key, run);
        running.push(run);
      }
      await Promise.race([Promise.all(running), this.#abandoned]);
    } finally {
      clearInterval(beat);
    }
    await this.#finish(batch, items, generation, dueAt);
  }

  /**
   * The first record of a partition after an assignment may be one a previous consumer died on.
   * Before handing it over, count this delivery in the offset commit's metadata (persisted by the
   * broker, read back by whoever gets the partition next), so a record that crashes its consumer
   * every time still reaches the dead-letter topic after `maxAttempts` deliveries.
   */
  async #probe(
    batch: FetchedBatch,
    record: IncomingRecord,
    item: Item,
    control: BatchControl,
    generation: number,
  ): Promise<void> {
    const consumer = this.#consumer as ClientConsumer;
    const offset = BigInt(record.offset);
    let deliveries = 1;
    try {
      const committed = (await this.#committedOf(batch.topic)).find((c) => c.partition === batch.partition);
      if (committed && BigInt(committed.offset) === offset) {
        deliveries = parseDeliveryMarker(committed.metadata, offset) + 1;
      }
      await consumer.commit([
        {
          topic: batch.topic,
          partition: batch.partition,
          offset: record.offset,
          metadata: deliveryMarker(offset, deliveries),
        },
      ]);
      this.#committed.set(`${batch.topic}|${batch.partition}`, offset);
    } catch (error) {
      this.#deps.logger.debug(`[wharf] [kafka] could not record a delivery count on ${this.#groupId}`, {
        error: describeError(error).message,
      });
    }
    const attempt = readAttempt(headerText(record.headers, ATTEMPT_HEADER)) + deliveries - 1;
    if (attempt > this.#request.policy.maxAttempts) {
      await this.#crashLoop(record, item, attempt);
    } else {
      await this.#run(record, item, undefined, control, generation, deliveries - 1);
    }
    if (item.state === 'done') {
      await this.#commit(batch.topic, batch.partition, offset + 1n);
    } else if (item.state === 'released' || item.state === 'skipped') {
      // Given back (shutdown) or never handed over: not an attempt, so the count goes back.
      await consumer
        .commit([
          {
            topic: batch.topic,
            partition: batch.partition,
            offset: record.offset,
            metadata: deliveryMarker(offset, deliveries - 1),
          },
        ])
        .catch(() => undefined);
    }
  }

  async #crashLoop(record: IncomingRecord, item: Item, attempt: number): Promise<void> {
    const { channel, group } = this.#request;
    const error = new CrashLoopError(
      `the consumer stopped ${attempt - 1} times while handling this event (crash loop); dead-lettered without another attempt`,
    );
    const info = deadLetterInfo({
      reason: 'retries-exhausted',
      error,
      channel,
      group,
      attempts: attempt - 1,
      firstFailureAt: headerText(record.headers, FIRST_FAILURE_HEADER),
    });
    try {
      await this.#writeDeadLetter(record, info);
      item.state = 'done';
      this.#deps.logger.warn(`[wharf] [kafka] dead-lettered an event on ${channel}/${group}: crash loop`, {
        offset: record.offset,
        topic: record.topic,
      });
    } catch (writeError) {
      item.state = 'released';
      this.#deps.logger.error(`[wharf] [kafka] dead-letter write failed on ${channel}/${group}`, {
        error: describeError(writeError).message,
      });
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
    record: IncomingRecord,
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
    if (!(await this.#slots.acquire())) {
      item.state = 'skipped';
      return;
    }
    try {
      if (!this.#dispatching(control, generation)) {
        item.state = 'skipped';
        return;
      }
      item.state = 'running';
      await this.#onDelivery(this.#delivery(record, item, extraAttempts));
    } catch (error) {
      this.#deps.logger.error(`[wharf] [kafka] a delivery on ${this.#groupId} failed unexpectedly`, {
        error: describeError(error).message,
      });
    } finally {
      this.#slots.release();
    }
    // The core settles every delivery; one it did not is treated as given back.
    if (item.state === 'running') item.state = 'released';
  }

  #delivery(record: IncomingRecord, item: Item, extraAttempts: number): Delivery {
    const firstFailureAt = safeHeader(record, FIRST_FAILURE_HEADER);
    const settle = (what: string): void => {
      if (item.state !== 'running') {
        throw new Error(`[wharf] [kafka] cannot ${what}: this delivery was already settled (${item.state})`);
      }
    };
    return {
      decoded: decode(record),
      attempt: readAttempt(safeHeader(record, ATTEMPT_HEADER)) + extraAttempts,
      ...(firstFailureAt !== undefined ? { firstFailureAt } : {}),
      ack: async () => {
        settle('ack');
        item.state = 'done';
      },
      retry: async (instruction) => {
        settle('retry');
        await this.#writeRetry(record, instruction);
        item.state = 'done';
      },
      deadLetter: async (info) => {
        settle('dead-letter');
        await this.#writeDeadLetter(record, info);
        item.state = 'done';
      },
      release: async () => {
        settle('release');
        item.state = 'released';
      },
    };
  }

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
    const topic = this.#retryTopic(instruction.tierMs);
    await this.#deps.publisher.send(
      topic,
      [{ key: record.key, value: record.value, headers }],
      `scheduling a retry on ${topic}`,
    );
  }

  async #writeDeadLetter(record: IncomingRecord, info: DeadLetterInfo): Promise<void> {
    const headers = copyHeaders(record.headers, (name) => name === DUE_HEADER || name.startsWith('wharf-dl-'));
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
    const target = commitTarget(items);
    if (target !== undefined) await this.#commit(batch.topic, batch.partition, target);
    const undone = items.find((i) => i.state !== 'done');
    const partition = [{ topic: batch.topic, partitions: [batch.partition] }];
    if (undone) {
      // Fetch again from the first unsettled record: never commit past it.
      consumer.seek(batch.topic, batch.partition, String(undone.offset));
      const backoff = this.#deps.options.releaseBackoffMs;
      if (undone.state === 'released' && backoff > 0 && !this.#stopping)
        this.#pauseUntil(partition, Date.now() + backoff);
      return;
    }
    const last = items[items.length - 1];
    if (last) batch.resolve(String(last.offset));
    if (dueAt !== undefined && !this.#stopping) this.#pauseUntil(partition, dueAt);
  }

  /** Pauses a partition until `at` (a retry record's due time): the broker holds it, no handler sleeps. */
  #pauseUntil(partition: { topic: string; partitions: number[] }[], at: number): void {
    const consumer = this.#consumer as ClientConsumer;
    consumer.pause(partition);
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        if (!this.#stopping) consumer.resume(partition);
      },
      Math.max(0, at - Date.now()),
    );
    this.#timers.add(timer);
  }

  async #commit(topic: string, partition: number, target: bigint): Promise<void> {
    const key = `${topic}|${partition}`;
    const last = this.#committed.get(key);
    if (last !== undefined && target <= last) return;
    this.#committed.set(key, target);
    try {
      await (this.#consumer as ClientConsumer).commit([{ topic, partition, offset: String(target) }]);
    } catch (error) {
      if (this.#committed.get(key) === target) this.#committed.delete(key);
      // Not fatal: the events after the last committed offset are delivered again (deduplicated by id).
      this.#deps.logger.warn(
        `[wharf] [kafka] could not commit ${topic}/${partition}@${target} for ${this.#groupId}; those events may be delivered again`,
        { error: describeError(error).message },
      );
    }
  }

  stop(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#stopping = true;
    this.#slots.cancel();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
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
      await consumer?.disconnect().catch(() => undefined);
    })();
    return Promise.resolve();
  }

  /** Resolves once the consumer left the group; after `timeoutMs` it is disconnected regardless. */
  async closed(timeoutMs: number): Promise<void> {
    await this.stop();
    const closing = this.#closed as Promise<void>;
    try {
      await within(closing, timeoutMs, () => new Error('close timeout'));
    } catch {
      this.#deps.logger.warn(
        `[wharf] [kafka] handlers on ${this.#groupId} did not finish within ${timeoutMs} ms; leaving the group anyway (their events are redelivered)`,
      );
      this.#abandon();
      await within(
        this.#consumer?.disconnect() ?? Promise.resolve(),
        10_000,
        () => new Error('disconnect timeout'),
      ).catch(() => undefined);
    }
  }
}

/** The offset after the leading run of settled records, or undefined when the first is not settled. */
function commitTarget(items: readonly Item[]): bigint | undefined {
  let target: bigint | undefined;
  for (const item of items) {
    if (item.state !== 'done') break;
    target = item.offset + 1n;
  }
  return target;
}

function dueOf(record: IncomingRecord): number {
  const value = Number(safeHeader(record, DUE_HEADER));
  return Number.isFinite(value) ? value : 0;
}

function safeHeader(record: IncomingRecord, name: string): string | undefined {
  try {
    return headerText(record.headers, name);
  } catch {
    return undefined;
  }
}

function origin(record: IncomingRecord): string {
  return `${record.topic}/${record.partition}@${record.offset}`;
}
