/**
 * The consumer of the client interface on @platformatic/kafka. The library's group membership
 * (join, sync, heartbeats, rejoin on a rebalance) is used as it is; fetching is this module's own
 * loop over `Consumer.fetch`, because the library's MessagesStream cannot pause or seek one
 * partition, and hands out records one by one where the adapter works in per-partition batches.
 */
import {
  Base,
  type BaseOptions,
  Consumer,
  type fetchV17,
  type GroupAssignment,
  offsetCommitV8,
  TimeoutError,
} from '@platformatic/kafka';
import { ATTEMPT_HEADER, FIRST_FAILURE_HEADER, type Logger, WELL_KNOWN_ATTRIBUTES, withTimeout } from '@wharf/core';
import { classifyError } from './classify.js';
import type {
  ClientConsumer,
  ConsumerSettings,
  FetchedBatch,
  IncomingHeaders,
  IncomingRecord,
  TopicPartitions,
} from './client-types.js';
import { CE_PREFIX, CONTENT_TYPE, DUE_HEADER, ORIGIN_HEADER } from './codec.js';
import { HeaderNames } from './header-bytes.js';

/** Delays before restarting a crashed consumer: doubling from the first, reset by a join. */
const RESTART_FIRST_MS = 500;
const RESTART_MAX_MS = 2_000;
/** Control batches (transaction markers) are skipped. */
const IS_CONTROL = 0b100000;
/** Offsets up to here are exact as numbers. */
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Closes a consumer for good: leaves the group when it can, within `ms`, else closes its connections
 * anyway. The library's `close()` keeps the connections open when leaving fails (a coordinator that
 * restarted answers with an error), and those sockets kept a process alive after its bus had closed.
 */
async function closeConsumer(c: Consumer, ms: number): Promise<void> {
  try {
    const left = new Promise<void>((resolve, reject) => c.close(true, (error) => (error ? reject(error) : resolve())));
    await withTimeout(left, ms, () => new TimeoutError(`leaving the group unanswered after ${ms} ms`));
  } catch {
    await Base.prototype.close.call(c).catch(() => undefined);
  }
}

interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to fetch; undefined until the committed offset is known. */
  next: bigint | undefined;
  /** Bumped by every seek: a batch fetched before it is stale. */
  epoch: number;
}

const keyOf = (topic: string, partition: number): string => `${topic}|${partition}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

class RebalancingError extends Error {
  readonly apiId = 'REBALANCE_IN_PROGRESS';
}

/** The header names Wharf writes, read back without a new string per record (see header-bytes.ts). */
const NAMES = new HeaderNames([
  ...WELL_KNOWN_ATTRIBUTES.map((a) => CE_PREFIX + a),
  CONTENT_TYPE,
  ATTEMPT_HEADER,
  FIRST_FAILURE_HEADER,
  DUE_HEADER,
  ORIGIN_HEADER,
]);

function toHeaders(pairs: readonly [Buffer | null, Buffer | null][]): IncomingHeaders {
  const headers: Record<string, Buffer | Buffer[]> = {};
  for (const [name, value] of pairs) {
    if (name === null) continue;
    const key = NAMES.text(name);
    const v = value ?? Buffer.alloc(0);
    const known = headers[key];
    headers[key] = known === undefined ? v : Array.isArray(known) ? [...known, v] : [known, v];
  }
  return headers;
}

export function platformaticConsumer(base: BaseOptions, settings: ConsumerSettings, logger: Logger): ClientConsumer {
  const create = (): Consumer =>
    new Consumer({
      ...base,
      // One connection carries the fetches and the group's requests, and the coordinator may hold a
      // JoinGroup until a member that died is dropped (its session timeout): the bound on an
      // unanswered request leaves room for that, where the other clients' bound is the request timeout.
      requestTimeout: settings.sessionTimeoutMs + (base.requestTimeout ?? 5_000),
      groupId: settings.groupId,
      sessionTimeout: settings.sessionTimeoutMs,
      rebalanceTimeout: settings.rebalanceTimeoutMs,
      heartbeatInterval: settings.heartbeatIntervalMs,
      maxWaitTime: settings.maxWaitTimeMs,
      autocommit: false,
    });
  let consumer: Consumer | undefined;
  let topicList: readonly string[] = [];
  let onBatch: ((batch: FetchedBatch) => Promise<void>) | undefined;
  let stopped = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartDelay = RESTART_FIRST_MS;
  /**
   * The member id of the consumer a crash replaced. The new consumer joins with it: the coordinator
   * then sees a member rejoining instead of a new one, and does not wait for the old member (which
   * never left: the broker was gone) until its session expires. With a new id, rejoining after a
   * broker restart took ~10 s; kafkajs, which keeps its member id, took ~1 s. An id the coordinator
   * no longer knows gets UNKNOWN_MEMBER_ID, and the library joins again without one.
   */
  let memberId: string | null = null;
  /** Bumped by every join and every crash: batches and offsets of an older one are stale. */
  let generation = 0;
  let rebalancing = false;
  let assigned = new Map<string, PartitionState>();
  const pausedTopics = new Set<string>();
  const pausedPartitions = new Set<string>();
  const crashListeners: ((error: Error, restarting: boolean) => void)[] = [];
  const assignedListeners: ((assignment: readonly TopicPartitions[]) => void)[] = [];
  let loop: Promise<void> | undefined;
  // The loop idles while no partition can be fetched (offsets loading, all paused); whatever makes
  // one fetchable wakes it at once: a fixed sleep there delayed the first records after every join.
  let wake: (() => void) | undefined;
  const wakeUp = (): void => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const idle = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(wakeUp, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const isPaused = (s: PartitionState): boolean =>
    pausedTopics.has(s.topic) || pausedPartitions.has(keyOf(s.topic, s.partition));

  const crash = (error: Error): void => {
    if (stopped) return;
    generation++;
    assigned = new Map();
    const restarting = classifyError(error) !== 'auth';
    for (const listener of crashListeners) listener(error, restarting);
    const old = consumer;
    consumer = undefined;
    memberId = old?.memberId ?? memberId;
    if (old !== undefined) void closeConsumer(old, bound);
    if (!restarting) return;
    const delay = restartDelay;
    restartDelay = Math.min(restartDelay * 2, RESTART_MAX_MS);
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!stopped) void join().catch((e: unknown) => crash(e as Error));
    }, delay);
  };

  /** Where each newly assigned partition starts: its committed offset, else the earliest. */
  const loadOffsets = async (c: Consumer, gen: number, assignments: readonly GroupAssignment[]): Promise<void> => {
    const topics = assignments.map((a) => ({ topic: a.topic, partitions: [...a.partitions] }));
    const committed = await c.listCommittedOffsets({ topics });
    const earliest = await c.listOffsets({ topics: topics.map((t) => t.topic), timestamp: -2n });
    if (gen !== generation) return;
    for (const { topic, partitions } of topics) {
      for (const partition of partitions) {
        const state = assigned.get(keyOf(topic, partition));
        // A seek that came first wins.
        if (state === undefined || state.next !== undefined) continue;
        const offset = committed.get(topic)?.[partition] ?? -1n;
        state.next = offset >= 0n ? offset : (earliest.get(topic)?.[partition] ?? 0n);
      }
    }
    wakeUp();
  };

  const attach = (c: Consumer): void => {
    c.on('consumer:group:join', (payload) => {
      if (c !== consumer) return;
      generation++;
      rebalancing = false;
      restartDelay = RESTART_FIRST_MS;
      const assignments = payload.assignments ?? [];
      const next = new Map<string, PartitionState>();
      for (const { topic, partitions } of assignments) {
        for (const partition of partitions)
          next.set(keyOf(topic, partition), { topic, partition, next: undefined, epoch: 0 });
      }
      assigned = next;
      const gen = generation;
      void loadOffsets(c, gen, assignments).catch((error: unknown) => {
        if (gen === generation) crash(error as Error);
      });
      const list = assignments.map((a) => ({ topic: a.topic, partitions: [...a.partitions] }));
      for (const listener of assignedListeners) listener(list);
      wakeUp();
    });
    c.on('consumer:group:rebalance', () => {
      if (c === consumer) rebalancing = true;
    });
    // A rejoin that failed for good (the broker gone for longer than the library's retries).
    c.on('error', (error: Error) => {
      if (c === consumer) crash(error);
    });
  };

  const join = async (): Promise<void> => {
    const c = create();
    c.memberId = memberId;
    consumer = c;
    attach(c);
    c.topics.trackAll(...topicList);
    await c.joinGroup({});
  };

  /**
   * Metadata (cached, asked again every few seconds), fetches and commits are answered within
   * maxWaitTime plus the request timeout. Past that they went into a dead connection (a network
   * black hole, a reply lost mid-frame), which the consumer's own request bound, long enough for a
   * JoinGroup, would wait out: the request fails as unreachable, and the fetch loop or the commit
   * replaces the consumer. A black hole of 5 s held the consumer ~10 s after the network healed.
   */
  const bound = settings.maxWaitTimeMs + (base.requestTimeout ?? 5_000);
  const bounded = <T>(work: Promise<T>, what: string): Promise<T> =>
    withTimeout(work, bound, () => new TimeoutError(`${what} unanswered after ${bound} ms`));

  /** One fetch of every assigned, unpaused partition whose start is known, then its batches. */
  const fetchOnce = async (c: Consumer): Promise<boolean> => {
    const gen = generation;
    const ready = [...assigned.values()].filter((s) => s.next !== undefined && !isPaused(s));
    if (ready.length === 0) return false;
    const metadata = await bounded(c.metadata({ topics: [...new Set(ready.map((s) => s.topic))] }), 'metadata');
    const byLeader = new Map<number, { states: PartitionState[]; topics: fetchV17.FetchRequestTopic[] }>();
    const ids = new Map<string, string>();
    const requested = new Map<PartitionState, { offset: bigint; epoch: number }>();
    for (const s of ready) {
      const topic = metadata.topics.get(s.topic);
      const leader = topic?.partitions[s.partition]?.leader;
      if (topic === undefined || leader === undefined || leader < 0) continue;
      ids.set(topic.id, s.topic);
      const entry = byLeader.get(leader) ?? { states: [], topics: [] };
      byLeader.set(leader, entry);
      entry.states.push(s);
      const offset = s.next as bigint;
      requested.set(s, { offset, epoch: s.epoch });
      entry.topics.push({
        topicId: topic.id,
        partitions: [
          {
            partition: s.partition,
            fetchOffset: offset,
            partitionMaxBytes: 1_048_576,
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
          },
        ],
      });
    }
    const responses = await Promise.all(
      [...byLeader].map(([node, { topics }]) =>
        bounded(
          c.fetch({ node, topics, maxWaitTime: settings.maxWaitTimeMs, minBytes: 1, maxBytes: 10_485_760 }),
          `fetch from broker ${node}`,
        ),
      ),
    );
    if (gen !== generation) return true;
    const batches = collect(responses, ids, requested);
    let index = 0;
    const worker = async (): Promise<void> => {
      while (index < batches.length && !stopped && gen === generation) {
        const item = batches[index++] as (typeof batches)[number];
        await deliver(item.state, item.epoch, item.records, item.nextIfEmpty, gen);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, settings.partitionsConcurrently) }, worker));
    return true;
  };

  const collect = (
    responses: readonly fetchV17.FetchResponse[],
    ids: ReadonlyMap<string, string>,
    requested: ReadonlyMap<PartitionState, { offset: bigint; epoch: number }>,
  ) => {
    const out: { state: PartitionState; epoch: number; records: IncomingRecord[]; nextIfEmpty: bigint | undefined }[] =
      [];
    for (const response of responses) {
      for (const topicResponse of response.responses) {
        const topic = ids.get(topicResponse.topicId);
        if (topic === undefined) continue;
        for (const p of topicResponse.partitions) {
          const state = assigned.get(keyOf(topic, p.partitionIndex));
          const asked = state && requested.get(state);
          if (state === undefined || asked === undefined || asked.epoch !== state.epoch) continue;
          const records: IncomingRecord[] = [];
          let last: bigint | undefined;
          for (const batch of p.records ?? []) {
            last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
            if (batch.attributes & IS_CONTROL) continue;
            // Numbers where they are exact (every offset a log reaches in practice): a BigInt sum and
            // its decimal string per record cost more than the record's other fields together.
            const exact = (last as bigint) <= MAX_EXACT && asked.offset <= MAX_EXACT;
            const first = Number(batch.firstOffset);
            const from = Number(asked.offset);
            const time = Number(batch.firstTimestamp);
            for (const r of batch.records) {
              let offset: string;
              if (exact) {
                // A fetch returns whole batches: records before the requested offset were handled.
                if (first + r.offsetDelta < from) continue;
                offset = String(first + r.offsetDelta);
              } else {
                const big = batch.firstOffset + BigInt(r.offsetDelta);
                if (big < asked.offset) continue;
                offset = String(big);
              }
              records.push({
                topic,
                partition: p.partitionIndex,
                offset,
                key: r.key,
                value: r.value,
                headers: toHeaders(r.headers),
                timestamp: String(time + Number(r.timestampDelta)),
              });
            }
          }
          if (p.errorCode === 1) {
            // OFFSET_OUT_OF_RANGE: the records were deleted (retention); start from the earliest.
            state.next = p.logStartOffset;
            continue;
          }
          out.push({ state, epoch: asked.epoch, records, nextIfEmpty: last === undefined ? undefined : last + 1n });
        }
      }
    }
    return out;
  };

  const deliver = async (
    state: PartitionState,
    epoch: number,
    records: IncomingRecord[],
    nextIfEmpty: bigint | undefined,
    gen: number,
  ): Promise<void> => {
    const current = (): boolean =>
      !stopped &&
      gen === generation &&
      state.epoch === epoch &&
      assigned.get(keyOf(state.topic, state.partition)) === state;
    if (records.length === 0) {
      // Only transaction markers or compacted gaps: move past them.
      if (nextIfEmpty !== undefined && current()) state.next = nextIfEmpty;
      return;
    }
    if (onBatch === undefined) return;
    await onBatch({
      topic: state.topic,
      partition: state.partition,
      records,
      heartbeat: async () => {
        // The library heartbeats by itself; this only reports a rebalance or a lost membership.
        if (rebalancing || !current()) throw new RebalancingError('the group is rebalancing');
      },
      resolve: (offset) => {
        if (current()) state.next = BigInt(offset) + 1n;
      },
      isActive: current,
    });
  };

  const runLoop = async (): Promise<void> => {
    while (!stopped) {
      const c = consumer;
      if (c === undefined || rebalancing) {
        await idle(50);
        continue;
      }
      const gen = generation;
      try {
        if (!(await fetchOnce(c))) await idle(settings.maxWaitTimeMs);
      } catch (error) {
        if (stopped || c !== consumer || gen !== generation) continue;
        const kind = classifyError(error);
        if (kind === 'unreachable' || kind === 'auth') {
          crash(error as Error);
        } else {
          // Stale metadata (a leader moved), a rebalance under way: the next round asks again.
          logger.debug('[wharf] [kafka] platformatic: fetch failed, retrying', { error: String(error) });
          c.clearMetadata();
          await sleep(100);
        }
      }
    }
  };

  const targetKeys = (topic: string, partitions: readonly number[]): string[] => partitions.map((p) => keyOf(topic, p));

  return {
    async run(topics, handler) {
      topicList = topics;
      onBatch = handler;
      await join();
      loop = runLoop();
    },
    onAssigned(listener) {
      assignedListeners.push(listener);
    },
    onCrash(listener) {
      crashListeners.push(listener);
    },
    pause(targets) {
      for (const t of targets) {
        if (t.partitions === undefined) pausedTopics.add(t.topic);
        else for (const k of targetKeys(t.topic, t.partitions)) pausedPartitions.add(k);
      }
    },
    resume(targets) {
      for (const t of targets) {
        if (t.partitions === undefined) {
          pausedTopics.delete(t.topic);
          for (const k of [...pausedPartitions]) if (k.startsWith(`${t.topic}|`)) pausedPartitions.delete(k);
        } else for (const k of targetKeys(t.topic, t.partitions)) pausedPartitions.delete(k);
      }
      wakeUp();
    },
    seek(topic, partition, offset) {
      const state = assigned.get(keyOf(topic, partition));
      if (state === undefined) return;
      state.next = BigInt(offset);
      state.epoch++;
      wakeUp();
    },
    async commit(offsets) {
      const c = consumer;
      if (c === undefined || c.memberId === null || rebalancing) {
        throw new RebalancingError(`the consumer of ${settings.groupId} is not in the group (rejoining)`);
      }
      const coordinator = c.coordinatorId ?? (await c.findGroupCoordinator());
      const connection = (await c.connectToBrokers([coordinator])).get(coordinator);
      if (connection === undefined) throw new Error(`no connection to the group coordinator ${coordinator}`);
      const topics = new Map<string, offsetCommitV8.OffsetCommitRequestTopic>();
      for (const o of offsets) {
        const entry = topics.get(o.topic) ?? { name: o.topic, partitions: [] };
        topics.set(o.topic, entry);
        entry.partitions.push({
          partitionIndex: o.partition,
          committedOffset: BigInt(o.offset),
          committedLeaderEpoch: -1,
          committedMetadata: o.metadata ?? null,
        });
      }
      // The commit carries this member's generation: the broker refuses it once the group moved on
      // (the library's own commit would rejoin and commit again under the new generation).
      try {
        await bounded(
          offsetCommitV8.api.async(connection, settings.groupId, c.generationId, c.memberId, null, [
            ...topics.values(),
          ]),
          'offset commit',
        );
      } catch (error) {
        if (error instanceof TimeoutError && c === consumer) crash(error);
        throw error;
      }
    },
    async disconnect() {
      stopped = true;
      wakeUp();
      clearTimeout(restartTimer);
      restartTimer = undefined;
      const c = consumer;
      consumer = undefined;
      await loop?.catch(() => undefined);
      // Leaving the group hands the partitions over at once.
      if (c !== undefined) await closeConsumer(c, bound);
    },
  };
}
