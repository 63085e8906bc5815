/**
 * Reading a group's dead-letter topic. A log cannot delete a record, so "removed" means: the reader
 * group `<dlt>.reader` has committed past it. Dead letters are removed in order; one removed while
 * an older one stays (e.g. an undecodable one is kept during a replay) is marked removed by a small
 * marker record (`wharf-dl-removed: <offset>`) in the same partition, which later reads honour.
 */
import { DEAD_LETTER_HEADERS, RAW_QUEUE_HEADER, type StoredDeadLetter, TimeoutError, withTimeout } from '@wharf/core';
import type { ClientAdmin, ClientConsumer, IncomingRecord, KafkaClient, OutgoingRecord } from './client.js';
import { decode, headerText } from './codec.js';
import { ADAPTER_NAME, type ResolvedKafkaOptions } from './options.js';
import type { Publisher } from './publisher.js';

import type { Topology } from './topology.js';

export const REMOVED_HEADER = 'wharf-dl-removed';
const DL_HEADERS: readonly string[] = [...Object.values(DEAD_LETTER_HEADERS), RAW_QUEUE_HEADER];

export interface DeadLetterDeps {
  readonly options: ResolvedKafkaOptions;
  readonly client: KafkaClient;
  readonly topology: Topology;
  readonly publisher: Publisher;
  readonly admin: () => Promise<ClientAdmin>;
}

interface Range {
  readonly partition: number;
  readonly start: bigint;
  readonly end: bigint;
}

const readers = new Map<string, Promise<void>>();

/** Serialises reads of one reader group in this process: two members would split the partitions. */
export async function readDeadLetters(
  deps: DeadLetterDeps,
  channel: string,
  group: string,
  limit: number,
  visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
): Promise<void> {
  const readerGroup = deps.topology.names.deadLetterReader(channel, group);
  const previous = readers.get(readerGroup) ?? Promise.resolve();
  const mine = previous.then(() => read(deps, channel, group, limit, visit));
  const settled = mine.catch(() => undefined);
  readers.set(readerGroup, settled);
  try {
    await mine;
  } finally {
    if (readers.get(readerGroup) === settled) readers.delete(readerGroup);
  }
}

async function read(
  deps: DeadLetterDeps,
  channel: string,
  group: string,
  limit: number,
  visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
): Promise<void> {
  const { names } = deps.topology;
  const topic = names.deadLetter(channel, group);
  const readerGroup = names.deadLetterReader(channel, group);
  const admin = await deps.admin();
  if (!(await admin.listTopics()).includes(topic)) return;
  const committed = await admin.committed(readerGroup, topic);
  const ranges: Range[] = (await admin.ends(topic)).map((e) => {
    const c = committed.find((x) => x.partition === e.partition);
    const start = c && BigInt(c.offset) >= 0n ? BigInt(c.offset) : BigInt(e.low);
    return { partition: e.partition, start: start < BigInt(e.low) ? BigInt(e.low) : start, end: BigInt(e.high) };
  });
  const pending = ranges.filter((r) => r.start < r.end);
  if (pending.length === 0 || limit <= 0) return;

  const consumer = deps.client.consumer({
    groupId: readerGroup,
    sessionTimeoutMs: deps.options.sessionTimeoutMs,
    rebalanceTimeoutMs: deps.options.rebalanceTimeoutMs,
    heartbeatIntervalMs: deps.options.heartbeatIntervalMs,
    maxWaitTimeMs: deps.options.maxWaitTimeMs,
    partitionsConcurrently: 1,
  });
  try {
    const records = await collect(consumer, topic, pending, deps.options.connectTimeoutMs * 3);
    await settle(deps, consumer, topic, ranges, records, limit, visit);
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
}

/** Reads every record of the pending ranges (up to each partition's end when the read began). */
async function collect(
  consumer: ClientConsumer,
  topic: string,
  pending: readonly Range[],
  timeoutMs: number,
): Promise<Map<number, IncomingRecord[]>> {
  const records = new Map<number, IncomingRecord[]>(pending.map((r) => [r.partition, []]));
  const left = new Set(pending.map((r) => r.partition));
  let complete: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    complete = resolve;
  });
  await consumer.run([topic], async (batch) => {
    const range = pending.find((r) => r.partition === batch.partition);
    if (!range || !left.has(batch.partition)) return;
    const list = records.get(batch.partition) as IncomingRecord[];
    for (const record of batch.records) {
      const offset = BigInt(record.offset);
      if (offset >= range.start && offset < range.end) list.push(record);
      if (offset + 1n >= range.end) left.delete(batch.partition);
      batch.resolve(record.offset);
    }
    if (left.size === 0) complete();
  });
  await withTimeout(
    done,
    timeoutMs,
    () => new TimeoutError(ADAPTER_NAME, `reading the dead-letter topic ${topic} took more than ${timeoutMs} ms`),
  );
  consumer.pause([{ topic }]);
  return records;
}

async function settle(
  deps: DeadLetterDeps,
  consumer: ClientConsumer,
  topic: string,
  ranges: readonly Range[],
  records: Map<number, IncomingRecord[]>,
  limit: number,
  visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
): Promise<void> {
  const removed = new Map<number, Set<bigint>>();
  const live: IncomingRecord[] = [];
  for (const [partition, list] of records) {
    const set = new Set<bigint>();
    removed.set(partition, set);
    for (const record of list) {
      const marker = markerOf(record);
      if (marker !== undefined) set.add(marker);
    }
    for (const record of list) {
      if (markerOf(record) === undefined && !set.has(BigInt(record.offset))) live.push(record);
    }
  }
  // Oldest first across partitions (one partition by default).
  live.sort((a, b) => Number(BigInt(a.timestamp) - BigInt(b.timestamp)) || a.partition - b.partition);

  const newlyRemoved: IncomingRecord[] = [];
  let visited = 0;
  for (const record of live) {
    if (visited >= limit) break;
    visited++;
    if (await visit({ decoded: decode(record), headers: deadLetterHeadersOf(record) })) {
      newlyRemoved.push(record);
      removed.get(record.partition)?.add(BigInt(record.offset));
    }
  }
  if (newlyRemoved.length === 0) return;

  const commits: { topic: string; partition: number; offset: string }[] = [];
  const markers: OutgoingRecord[] = [];
  for (const range of ranges) {
    const list = records.get(range.partition);
    if (!list) continue;
    const gone = removed.get(range.partition) as Set<bigint>;
    const firstKept = list.find((r) => markerOf(r) === undefined && !gone.has(BigInt(r.offset)));
    const next = firstKept ? BigInt(firstKept.offset) : range.end;
    if (next > range.start) commits.push({ topic, partition: range.partition, offset: String(next) });
    for (const record of newlyRemoved) {
      if (record.partition === range.partition && BigInt(record.offset) >= next) {
        markers.push({
          partition: record.partition,
          key: null,
          value: null,
          headers: { [REMOVED_HEADER]: record.offset },
        });
      }
    }
  }
  if (markers.length > 0) await deps.publisher.send(topic, markers, `marking dead letters removed on ${topic}`);
  if (commits.length > 0) await consumer.commit(commits);
}

function markerOf(record: IncomingRecord): bigint | undefined {
  try {
    const value = headerText(record.headers, REMOVED_HEADER);
    return value !== undefined && /^\d+$/.test(value) ? BigInt(value) : undefined;
  } catch {
    return undefined;
  }
}

function deadLetterHeadersOf(record: IncomingRecord): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of DL_HEADERS) {
    try {
      const value = headerText(record.headers, name);
      if (value !== undefined) out[name] = value;
    } catch {
      // a malformed metadata header is left out; the dead letter itself is still listed
    }
  }
  return out;
}
