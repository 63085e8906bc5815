/**
 * Retry-topic pausing: a retry record is handed over only when due, so its partition is paused
 * until then (the broker holds the record, no handler sleeps), and a released record's partition
 * waits `releaseBackoffMs` before it is fetched again.
 */
import type { ClientConsumer, IncomingRecord, PauseTarget } from './client.js';
import { DUE_HEADER } from './codec.js';
import { safeHeader } from './delivery.js';

export class PartitionPauses {
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(readonly consumer: () => ClientConsumer) {}

  /** Pauses `partition` until `at` (epoch ms), then resumes it unless stopped meanwhile. */
  until(partition: readonly PauseTarget[], at: number): void {
    if (this.#stopped) return;
    const consumer = this.consumer();
    consumer.pause(partition);
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        if (!this.#stopped) consumer.resume(partition);
      },
      Math.max(0, at - Date.now()),
    );
    this.#timers.add(timer);
  }

  /** No more resumes (the subscription stops). */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

/** When a retry record is due (epoch ms); 0 when it has no (valid) due header. */
export function dueOf(record: IncomingRecord): number {
  const value = Number(safeHeader(record, DUE_HEADER));
  return Number.isFinite(value) ? value : 0;
}
