import { describeError, type Logger } from '@wharf/core';
import type { Gauge } from 'prom-client';
import type { LabelCap } from './labels.js';
import type { BacklogEntry, BacklogSource } from './options.js';

const STATES = [
  ['ready', 'ready'],
  ['in_flight', 'inFlight'],
  ['delayed', 'delayed'],
  ['dead_letter', 'deadLetters'],
] as const;

/**
 * Reads the backlog for a scrape. Reads cost broker round trips (a passive declare per queue, an
 * offset fetch per topic), so one read serves every scrape within `cacheMs`, and scrapes that
 * arrive while a read runs share it.
 */
export class BacklogReader {
  readonly #source: BacklogSource;
  readonly #cacheMs: number;
  readonly #logger: Logger;
  #last: { at: number; entries: readonly BacklogEntry[] } | undefined;
  #pending: Promise<readonly BacklogEntry[]> | undefined;

  constructor(source: BacklogSource, cacheMs: number, logger: Logger) {
    this.#source = source;
    this.#cacheMs = cacheMs;
    this.#logger = logger;
  }

  /** Sets `gauge` from the cached or a fresh read. A failed read is logged and leaves no stale series. */
  async collect(gauge: Gauge<'destination' | 'consumer_group' | 'state'>, cap: LabelCap): Promise<void> {
    let entries: readonly BacklogEntry[];
    try {
      entries = await this.#read();
    } catch (error) {
      gauge.reset();
      this.#logger.error('[wharf] [prometheus] could not read the backlog; wharf_consumer_backlog_messages is empty', {
        error: describeError(error).message,
      });
      return;
    }
    gauge.reset();
    for (const entry of entries) {
      const destination = cap.cap('destination', entry.channel);
      const group = cap.cap('consumer_group', entry.group);
      for (const [state, field] of STATES) {
        const labels = { destination, consumer_group: group, state };
        // Groups folded into `_OTHER` add up rather than overwrite each other.
        gauge.inc(labels, entry[field]);
      }
    }
  }

  #read(): Promise<readonly BacklogEntry[]> {
    const last = this.#last;
    if (last !== undefined && performance.now() - last.at < this.#cacheMs) return Promise.resolve(last.entries);
    this.#pending ??= this.#source()
      .then((entries) => {
        this.#last = { at: performance.now(), entries };
        return entries;
      })
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }
}
