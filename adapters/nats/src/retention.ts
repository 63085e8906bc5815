import type { JetStreamManager } from '@nats-io/jetstream';
import { describeError, type Logger } from '@wharf/core';

/**
 * The channel streams use limits retention (see topology.ts for why not interest retention), so what every
 * group has settled is removed here instead of by the server: every `intervalMs`, each channel this adapter
 * declared is purged below the lowest sequence one of its groups still needs. With no group at all the
 * channel keeps nothing (what interest retention did). Purging is idempotent, so several processes may do it.
 */
export class Retention {
  readonly #jsm: JetStreamManager;
  readonly #logger: Logger;
  readonly #streams = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;

  constructor(jsm: JetStreamManager, logger: Logger, intervalMs: number) {
    this.#jsm = jsm;
    this.#logger = logger;
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
        await purgeSettled(this.#jsm, stream);
      } catch (error) {
        this.#logger.debug(`[wharf] [nats] cannot remove settled events from stream ${stream}; retrying later`, {
          error: describeError(error).message,
        });
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
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
 * Purges the messages below the lowest sequence any consumer still needs. The stream's last sequence is read
 * before the consumers: a group created after that starts after it (deliver policy `new`).
 */
export async function purgeSettled(jsm: JetStreamManager, stream: string): Promise<number> {
  const info = await jsm.streams.info(stream);
  if (info.state.messages === 0) return 0;
  let keepFrom = info.state.last_seq + 1;
  const lister = jsm.consumers.list(stream);
  for await (const consumer of lister) keepFrom = Math.min(keepFrom, neededFrom(consumer));
  if (keepFrom <= info.state.first_seq) return 0;
  const purged = await jsm.streams.purge(stream, { seq: keepFrom });
  return purged.purged;
}
