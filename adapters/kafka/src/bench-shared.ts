/**
 * What both raw baselines of `wharf bench` share: the bus's bytes on the wire, and the producer
 * loop done by hand (batched sends, a bounded number of requests in flight, at most `window`
 * events unacknowledged in all, like the bus).
 */
import { randomUUID } from 'node:crypto';
import { type BenchOptions, stampPayload } from '@wharf/core';

/**
 * Produce requests in flight at once. Two keeps the pipe full (one request is written while the other
 * waits for its acks) with batches of half the window. Five (the Java client's
 * `max.in.flight.requests.per.connection` default) made 5 smaller requests per window: with the broker
 * on the same 2 cores, per-request CPU decided: in paired runs against the earlier one-request-at-a-time
 * loop, five moved 0.80–0.89 of it (and cost 4–10 µs more CPU per event), two 1.00–1.01.
 */
export const MAX_REQUESTS = 2;

/** The CloudEvents binary-mode record the bus writes, so the bytes on the wire match. */
export interface BenchRecord {
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

export function benchRecord(size: number): BenchRecord {
  return {
    value: Buffer.from(stampPayload(size)),
    headers: {
      ce_specversion: '1.0',
      ce_id: randomUUID(),
      ce_source: 'urn:wharf:bench',
      ce_time: new Date().toISOString(),
      ce_type: 'BenchEvent',
      'content-type': 'application/octet-stream',
    },
  };
}

/**
 * Sends `options.events` records through `send` (one produce request per call). A batch is cut as
 * soon as a request slot is free, so the window stays full: ceil(window / MAX_REQUESTS) events each.
 */
export async function produceWindowed(
  options: BenchOptions,
  send: (records: BenchRecord[]) => Promise<unknown>,
): Promise<void> {
  const batchSize = Math.max(1, Math.ceil(options.window / MAX_REQUESTS));
  let unacked = 0;
  let requests = 0;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const settled = (count: number, error?: unknown): void => {
    unacked -= count;
    requests--;
    if (error !== undefined) failure ??= { error };
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const until = async (ready: () => boolean): Promise<void> => {
    while (!ready()) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  for (let sent = 0; sent < options.events; ) {
    await until(() => requests < MAX_REQUESTS && unacked < options.window);
    if (failure) throw failure.error;
    const count = Math.min(batchSize, options.window - unacked, options.events - sent);
    const records = Array.from({ length: count }, () => benchRecord(options.size));
    sent += count;
    unacked += count;
    requests++;
    send(records).then(
      () => settled(count),
      (error: unknown) => settled(count, error),
    );
  }
  await until(() => requests === 0);
  if (failure) throw failure.error;
}

/** The bench topic's `max.message.bytes`: the bus's default limit plus room for headers. */
export const BENCH_MAX_MESSAGE_BYTES = 8 * 1024 * 1024 + 256 * 1024;
