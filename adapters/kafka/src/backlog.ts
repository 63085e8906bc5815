import { type GroupBacklog, UnknownGroupError } from '@wharf/core';
import type { ClientAdmin, CommittedOffset, PartitionEnd } from './client.js';
import { ADAPTER_NAME } from './options.js';
import type { Names } from './topology.js';

/**
 * Records of a topic a group has not consumed: per partition, the high watermark minus the committed
 * offset (or the low watermark, when retention deleted past it). A partition with no committed
 * offset counts from `uncommittedFrom`: nothing for the channel topic (a group starts from "now" there),
 * everything still stored for a group-private topic (retry tiers, dead letters).
 */
export function lag(
  ends: readonly PartitionEnd[],
  committed: readonly CommittedOffset[],
  uncommittedFrom: 'end' | 'start',
): number {
  let total = 0n;
  for (const end of ends) {
    const high = BigInt(end.high);
    const low = BigInt(end.low);
    const offset = BigInt(committed.find((c) => c.partition === end.partition)?.offset ?? '-1');
    const from = offset < 0n ? (uncommittedFrom === 'end' ? high : low) : offset < low ? low : offset;
    if (high > from) total += high - from;
  }
  return Number(total);
}

/**
 * A group's backlog from offsets (the admin API; nothing is created, no offset moves):
 * - `ready`: lag of the group's consumer group on the channel topic, over all partitions;
 * - `delayed`: lag on the group's retry topics `<group>-retry-<ms>`, every tier found on the broker;
 * - `deadLetters`: records of `<group>-dlt` the dead-letter reader group has not passed;
 * - `consumers`: members of the consumer group; `maxConsumers`: the channel topic's partitions;
 * - `inFlight`: 0 — Kafka has no per-record state: an event handed to a handler is uncommitted,
 *   so it is counted in `ready` (or `delayed`) until its offset is committed.
 */
export async function readBacklog(
  admin: ClientAdmin,
  names: Names,
  channel: string,
  group: string,
): Promise<GroupBacklog> {
  const channelTopic = names.channel(channel);
  const groupId = names.group(channel, group);
  const dlt = names.deadLetter(channel, group);
  const retryStart = `${groupId}-retry-`;
  const topics = await admin.listTopics();
  const retries = topics.filter((t) => t.startsWith(retryStart) && /^\d+$/.test(t.slice(retryStart.length)));
  if (!topics.includes(channelTopic)) {
    throw new UnknownGroupError(ADAPTER_NAME, channel, group, `topic ${channelTopic} does not exist`);
  }
  const committed = await admin.committed(groupId, channelTopic);
  // declare() creates the dead-letter topic and commits the group's start offsets: with neither, the
  // group was never declared (or its consumer group was deleted).
  if (!topics.includes(dlt) && committed.every((c) => BigInt(c.offset) < 0n)) {
    throw new UnknownGroupError(ADAPTER_NAME, channel, group, `consumer group ${groupId} has no offsets`);
  }
  const ends = await admin.ends(channelTopic);
  const ready = lag(ends, committed, 'end');
  let delayed = 0;
  for (const topic of retries) {
    delayed += lag(await admin.ends(topic), await admin.committed(groupId, topic), 'start');
  }
  const deadLetters = topics.includes(dlt)
    ? lag(await admin.ends(dlt), await admin.committed(names.deadLetterReader(channel, group), dlt), 'start')
    : 0;
  return {
    ready,
    inFlight: 0,
    delayed,
    deadLetters,
    consumers: await admin.members(groupId),
    maxConsumers: ends.length,
  };
}
