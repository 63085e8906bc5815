/**
 * The crash-loop probe. A record that kills its consumer (OOM, `process.exit`, a native crash) is
 * never settled, so a header counter alone would start at the same value after every restart. The
 * first record handed over on a partition after an assignment is the only one a dead predecessor
 * can have been stuck on: before its handler runs, this delivery is counted in the metadata of the
 * group's committed offset (persisted by the broker, read back by whoever gets the partition next),
 * so a record that crashes its consumer every time still reaches the dead-letter topic.
 */
import {
  CrashLoopError,
  type DeadLetterInfo,
  deadLetterInfo,
  describeError,
  FIRST_FAILURE_HEADER,
  type Logger,
} from '@wharf/core';
import type { ClientConsumer, CommittedOffset, IncomingRecord } from './client.js';
import type { OffsetCommits } from './commits.js';
import { safeHeader } from './delivery.js';
import type { Reporter } from './incidents.js';

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

export interface ProbeContext {
  readonly consumer: ClientConsumer;
  readonly commits: OffsetCommits;
  readonly committedOf: (topic: string) => Promise<readonly CommittedOffset[]>;
  readonly report: Reporter;
  readonly logger: Logger;
  readonly groupId: string;
}

/**
 * Counts this delivery of `record` (the first of its partition in this assignment) in the committed
 * offset's metadata and returns the deliveries so far, this one included (1 when the count cannot
 * be read or written). Also reports records the broker removed before the group settled them.
 */
export async function countDelivery(ctx: ProbeContext, record: IncomingRecord): Promise<number> {
  const { topic, partition } = record;
  const offset = BigInt(record.offset);
  let deliveries = 1;
  try {
    const committed = (await ctx.committedOf(topic)).find((c) => c.partition === partition);
    const at = committed === undefined ? -1n : BigInt(committed.offset);
    if (committed && at === offset) {
      deliveries = parseDeliveryMarker(committed.metadata, offset) + 1;
    } else if (at >= 0n && at < offset) {
      // Records after the group's position are gone (retention or a truncated log removed them
      // before they were settled): kafkajs moves on to the first record still stored, silently.
      ctx.report(
        'removed',
        `records ${at} to ${offset - 1n} of ${topic}/${partition} were removed by the broker (retention) before this group settled them`,
        { details: { topic, partition, from: String(at), to: String(offset - 1n) } },
      );
    }
    await ctx.consumer.commit([
      { topic, partition, offset: record.offset, metadata: deliveryMarker(offset, deliveries) },
    ]);
    ctx.commits.committedAt(topic, partition, offset);
  } catch (error) {
    ctx.logger.debug(`[wharf] [kafka] could not record a delivery count on ${ctx.groupId}`, {
      error: describeError(error).message,
    });
  }
  return deliveries;
}

/** Given back (shutdown) or never handed over: not an attempt, so the count goes back. */
export async function uncountDelivery(ctx: ProbeContext, record: IncomingRecord, deliveries: number): Promise<void> {
  const offset = BigInt(record.offset);
  await ctx.consumer
    .commit([
      {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        metadata: deliveryMarker(offset, deliveries - 1),
      },
    ])
    .catch((error: unknown) =>
      ctx.report(
        'settle-failed',
        'a delivery count could not be lowered again after the event was given back; it may reach the dead-letter topic one attempt early',
        { record, error },
      ),
    );
}

/** The dead-letter metadata of a record that stopped its consumer `attempt - 1` times. */
export function crashLoopInfo(record: IncomingRecord, attempt: number, channel: string, group: string): DeadLetterInfo {
  return deadLetterInfo({
    reason: 'retries-exhausted',
    error: new CrashLoopError(
      `the consumer stopped ${attempt - 1} times while handling this event (crash loop); dead-lettered without another attempt`,
    ),
    channel,
    group,
    attempts: attempt - 1,
    firstFailureAt: safeHeader(record, FIRST_FAILURE_HEADER),
  });
}
