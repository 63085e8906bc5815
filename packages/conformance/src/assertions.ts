import { type CloudEvent, WharfError } from '@wharf/core';

/** A received event with when and how it arrived. */
export interface Received {
  readonly event: CloudEvent;
  readonly attempt: number;
  readonly at: number;
  readonly member: string;
}

/**
 * Records what handlers receive and lets a test wait for a condition.
 * `handler(member)` returns a handler that records under a member name.
 */
export class Recorder {
  readonly received: Received[] = [];
  #waiters: (() => void)[] = [];

  record(event: CloudEvent, attempt: number, member = 'default'): void {
    this.received.push({ event, attempt, at: performance.now(), member });
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  ids(member?: string): string[] {
    return this.received.filter((r) => member === undefined || r.member === member).map((r) => r.event.id);
  }

  /** Resolves when `predicate` holds; rejects with `what` after `timeoutMs`. */
  async until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${this.received.length} events`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until `count` events were received in total. */
  async count(count: number, timeoutMs: number): Promise<void> {
    await this.until(() => this.received.length >= count, `${count} events`, timeoutMs);
  }

  /** Waits until every id was received at least once. */
  async all(ids: readonly string[], timeoutMs: number): Promise<void> {
    await this.until(
      () => {
        const seen = new Set(this.ids());
        return ids.every((id) => seen.has(id));
      },
      `${ids.length} distinct events`,
      timeoutMs,
    );
  }
}

/** Throws unless every sent id was received (none lost). */
export function assertNoneLost(sent: readonly string[], received: readonly string[]): void {
  const seen = new Set(received);
  const lost = sent.filter((id) => !seen.has(id));
  if (lost.length > 0)
    throw new Error(`${lost.length} of ${sent.length} events were lost, e.g. ${lost.slice(0, 3).join(', ')}`);
}

/** Throws if anything was received that was not sent. */
export function assertNoUnexpected(sent: readonly string[], received: readonly string[]): void {
  const known = new Set(sent);
  const unexpected = received.filter((id) => !known.has(id));
  if (unexpected.length > 0)
    throw new Error(`${unexpected.length} unexpected events received, e.g. ${unexpected.slice(0, 3).join(', ')}`);
}

/** Throws unless received ids are exactly the sent ones, each once. */
export function assertExactlyOnce(sent: readonly string[], received: readonly string[]): void {
  assertNoneLost(sent, received);
  assertNoUnexpected(sent, received);
  const counts = new Map<string, number>();
  for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1);
  const dup = [...counts].filter(([, n]) => n > 1);
  if (dup.length > 0)
    throw new Error(`${dup.length} events were received more than once, e.g. ${dup[0]?.[0]} ×${dup[0]?.[1]}`);
}

/** Throws unless, for every key, events arrived in the order they were sent. */
export function assertPerKeyOrder(
  sent: readonly { id: string; key: string }[],
  received: readonly { id: string; key: string | undefined }[],
): void {
  const expected = new Map<string, string[]>();
  for (const { id, key } of sent) expected.set(key, [...(expected.get(key) ?? []), id]);
  const actual = new Map<string, string[]>();
  for (const { id, key } of received) {
    if (key === undefined) continue;
    const list = actual.get(key) ?? [];
    // A redelivery repeats an id; order is judged on first arrivals.
    if (!list.includes(id)) list.push(id);
    actual.set(key, list);
  }
  for (const [key, ids] of expected) {
    const got = actual.get(key) ?? [];
    const firstDiff = ids.findIndex((id, i) => got[i] !== id);
    if (firstDiff >= 0) {
      throw new Error(
        `key ${key}: expected ${ids[firstDiff]} at position ${firstDiff}, got ${got[firstDiff] ?? 'nothing'}`,
      );
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `work` until it succeeds, as a client riding out a broker outage does: a `WharfError` (the broker
 * is down or restarting) is retried after `waitMs`, up to `retries` times; any other error is thrown.
 * A publish retried this way keeps its id, so consumers deduplicate it.
 */
export async function untilAccepted<T>(work: () => Promise<T>, retries: number, waitMs: number): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof WharfError) || tries > retries) throw error;
      await sleep(waitMs);
    }
  }
}
