import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import { describeError, type Logger } from '@wharf/core';

/**
 * The channel streams use limits retention (see topology.ts for why not interest retention), so what every
 * group has settled is removed here instead of by the server: every `intervalMs`, each channel this adapter
 * declared is purged below the lowest sequence one of its groups still needs. With no group at all the
 * channel keeps nothing (what interest retention did). Purging is idempotent, so several processes may do it.
 *
 * How it purges matters on nats-server before 2.9.15: a partial stream purge there resets the pending
 * state of every consumer it applies to (`consumer.purge` sets `o.pending = nil`, fixed upstream by
 * nats-io/nats-server 6c9a9fb45, "lose ack pending state during partial stream purge"). A message waiting in
 * a `nak` delay, or in a handler, is then forgotten: never redelivered, never counted toward MaxDeliver, no
 * advisory. That is how the saga lost its retrying events at 5,000 orders (issue 22). The server skips that
 * reset for a consumer whose literal filter subject differs from the purge's filter, so the adapter's
 * consumers filter on their channel's subject and the purge uses the filter `>` (compacting the store below
 * the sequence). A stream with a consumer the purge would still reset (no filter, or `>`) is not purged on
 * such a server; a warning says so once.
 */
/** Messages a group still needed that the stream no longer holds (removed by max_age/limits or by hand). */
export interface RemovedUnsettled {
  readonly stream: string;
  readonly consumer: string;
  /** First and last stream sequence removed while the group still needed them. */
  readonly fromSeq: number;
  readonly toSeq: number;
}

export class Retention {
  readonly #jsm: JetStreamManager;
  readonly #onRemoved: (removed: RemovedUnsettled) => void;
  /** Per stream/consumer, the last removal reported (each is reported once per process). */
  readonly #reported = new Map<string, number>();
  readonly #logger: Logger;
  readonly #streams = new Set<string>();
  readonly #warned = new Set<string>();
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #resetsPending: boolean;
  #running: Promise<void> | undefined;

  /**
   * @param serverVersion the server's version (`nc.info.version`): below 2.9.15 a partial purge resets the
   * pending state of the consumers it applies to.
   */
  constructor(
    jsm: JetStreamManager,
    logger: Logger,
    intervalMs: number,
    serverVersion: string | undefined,
    onRemoved: (removed: RemovedUnsettled) => void = () => {},
  ) {
    this.#jsm = jsm;
    this.#onRemoved = onRemoved;
    this.#logger = logger;
    this.#resetsPending = purgeResetsPending(serverVersion);
    // 0: purging is another process's job (a user without the rights to purge; see purgeIntervalMs).
    if (intervalMs === 0) return;
    this.#timer = setInterval(() => {
      this.#running ??= this.sweep().finally(() => {
        this.#running = undefined;
      });
    }, intervalMs);
    this.#timer.unref();
  }

  /** Starts cleaning a channel stream the adapter declared with limits retention. */
  track(stream: string): void {
    this.#streams.add(stream);
  }

  /** One pass over every tracked stream; failures (broker down, stream deleted) wait for the next pass. */
  async sweep(): Promise<void> {
    for (const stream of this.#streams) {
      try {
        await purgeSettled(this.#jsm, stream, {
          resetsPending: this.#resetsPending,
          onUnsafe: this.#unsafe,
          onRemoved: this.#removed,
        });
      } catch (error) {
        this.#logger.debug(`[wharf] [nats] cannot remove settled events from stream ${stream}; retrying later`, {
          error: describeError(error).message,
        });
      }
    }
  }

  readonly #removed = (removed: RemovedUnsettled): void => {
    const key = `${removed.stream}/${removed.consumer}`;
    if ((this.#reported.get(key) ?? 0) >= removed.toSeq) return;
    this.#reported.set(key, removed.toSeq);
    this.#onRemoved(removed);
  };

  readonly #unsafe = (stream: string, consumer: string): void => {
    const key = `${stream}/${consumer}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#logger.warn(
      `[wharf] [nats] settled events of stream ${stream} are not purged: its consumer ${consumer} has no filter subject, and on this nats-server (before 2.9.15) a purge would make it forget deliveries waiting for a retry; the adapter adds the filter when it declares the group, or upgrade nats-server`,
    );
  };

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}

/** True for nats-server versions whose partial purge resets every affected consumer's pending state (< 2.9.15). */
export function purgeResetsPending(version: string | undefined): boolean {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? '');
  if (!match) return true;
  const [major, minor, patch] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (major !== 2) return major < 2;
  if (minor !== 9) return minor < 9;
  return patch < 15;
}

/** The first stream sequence a consumer may still deliver or redeliver. */
export function neededFrom(consumer: {
  readonly ack_floor: { readonly stream_seq: number };
  readonly delivered: { readonly stream_seq: number };
  readonly num_ack_pending: number;
}): number {
  // Nothing unsettled: everything up to the last delivery is settled (or before the group's start).
  const done =
    consumer.num_ack_pending === 0
      ? Math.max(consumer.ack_floor.stream_seq, consumer.delivered.stream_seq)
      : consumer.ack_floor.stream_seq;
  return done + 1;
}

/**
 * True when a purge with the filter `>` leaves the consumer's state alone: the server applies a purge only to
 * consumers whose filter matches the purge's (none, `>` itself; a literal filter matches only itself).
 */
export function sparedByPurge(consumer: { readonly config: { readonly filter_subject?: string } }): boolean {
  const filter = consumer.config.filter_subject ?? '';
  return filter !== '' && filter !== '>';
}

/**
 * Purges the messages below the lowest sequence any consumer still needs. The stream's last sequence is read
 * before the consumers: a group created after that starts after it (deliver policy `new`). With
 * `resetsPending` (nats-server < 2.9.15) nothing is purged while a consumer would lose its pending state.
 */
export async function purgeSettled(
  jsm: JetStreamManager,
  stream: string,
  options: {
    resetsPending: boolean;
    onUnsafe?: (stream: string, consumer: string) => void;
    onRemoved?: (removed: RemovedUnsettled) => void;
  } = {
    resetsPending: true,
  },
): Promise<number> {
  const info = await jsm.streams.info(stream);
  // An empty stream that never held anything has nothing to purge nor to have lost.
  if (info.state.messages === 0 && info.state.first_seq <= 1) return 0;
  let keepFrom = info.state.last_seq + 1;
  const lister = jsm.consumers.list(stream);
  for await (const consumer of lister as AsyncIterable<ConsumerInfo>) {
    if (options.resetsPending && !sparedByPurge(consumer)) {
      options.onUnsafe?.(stream, consumer.name);
      return 0;
    }
    const needed = neededFrom(consumer);
    // This purge never goes past what a group needs, so a group needing less than the stream's first sequence
    // lost messages it had not settled to something else: max_age or other limits, or an operator's purge.
    if (needed < info.state.first_seq) {
      options.onRemoved?.({ stream, consumer: consumer.name, fromSeq: needed, toSeq: info.state.first_seq - 1 });
    }
    keepFrom = Math.min(keepFrom, needed);
  }
  if (info.state.messages === 0 || keepFrom <= info.state.first_seq) return 0;
  const purged = await jsm.streams.purge(stream, { filter: '>', seq: keepFrom });
  return purged.purged;
}
