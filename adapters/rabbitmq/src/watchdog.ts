import { type Logger, withTimeout } from '@wharf/core';
import type { Channel } from 'amqplib';
import type { Link } from './connection.js';

/** How long the watchdog's probe waits for the broker's answer. */
const PROBE_ANSWER_MS = 2_000;

/** The broker did not answer within the bound (see {@link bounded}). */
class NoAnswer extends Error {}

/**
 * What the watchdog reads about one consumer channel. The subscription keeps it up to date with
 * {@link noteDelivery} and {@link noteSettled}; both are two field writes, so a busy consumer pays nothing else.
 */
export interface Watched {
  /** Deliveries received on this channel and not yet acked or rejected on it. */
  unsettled: number;
  /** `Date.now()` of the last delivery on this channel (or of its creation). */
  lastDeliveryAt: number;
}

export function noteDelivery(watched: Watched): void {
  watched.unsettled++;
  watched.lastDeliveryAt = Date.now();
}

export function noteSettled(watched: Watched): void {
  if (watched.unsettled > 0) watched.unsettled--;
}

/** What the watchdog saw when it decided a consumer was stalled. */
export interface StallEvidence {
  readonly queue: string;
  /** Messages ready in the queue (a passive declare counts ready ones only); undefined when not asked. */
  readonly ready: number | undefined;
  /** The connection came out of a silence after this channel's last delivery (see `Link.silenceEndedAt`). */
  readonly afterSilence: boolean;
  /** Deliveries the client holds unsettled on the stalled channel. */
  readonly unsettled: number;
  readonly prefetch: number;
  /** How long the channel had received nothing, ms. */
  readonly idleMs: number;
}

export interface WatchdogTarget {
  readonly queue: string;
  readonly prefetch: number;
  /** The consumer now watched, or undefined while there is none (reconnecting, stopping). */
  current(): Watched | undefined;
  /** Restarts the consumer whose channel stalled; `watched` is the one the evidence is about. */
  recycle(watched: Watched, evidence: StallEvidence): Promise<void>;
}

/**
 * Notices a consumer the broker believes is full while the client is not: some deliveries (or the
 * client's acks) were lost on a link that never failed (a proxy or middlebox that dropped whole
 * chunks keeps the AMQP frame stream parseable). The broker then waits for acks that never come
 * (consumer ack timeout: 30 min) and, with the prefetch window full, sends nothing more, while the
 * client has free slots and a queue full of ready messages. Closing that channel makes the broker
 * requeue its unacknowledged messages; the subscription consumes again on a fresh channel.
 *
 * The check is cheap on a busy consumer (two field reads per tick); only a consumer that has free
 * slots and has received nothing for `idleMs` costs a passive queue declare, on a channel of its
 * own (a 404 closes the channel it runs on).
 */
export class ConsumerWatchdog {
  readonly #link: Link;
  readonly #target: WatchdogTarget;
  readonly #idleMs: number;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #probe: Channel | undefined;
  #busy = false;
  #stopped = false;

  constructor(link: Link, target: WatchdogTarget, idleMs: number, logger: Logger) {
    this.#link = link;
    this.#target = target;
    this.#idleMs = idleMs;
    this.#logger = logger;
  }

  /** Starts watching (idempotent); `idleMs` 0 turns the watchdog off. */
  start(): void {
    if (this.#timer || this.#stopped || this.#idleMs <= 0) return;
    this.#timer = setInterval(() => void this.#tick(), Math.max(100, Math.floor(this.#idleMs / 2)));
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#dropProbe();
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    let probeLost = false;
    const watched = this.#target.current();
    if (!watched || watched.unsettled >= this.#target.prefetch) return;
    const idleMs = Date.now() - watched.lastDeliveryAt;
    if (idleMs < this.#idleMs) return;
    // The link was silent after the last delivery and the client holds nothing: deliveries the broker
    // sent meanwhile may have been swallowed, the last ones of a queue too (nothing ready then, so the
    // probe below would see nothing wrong while the broker waits 30 min for their acks). With nothing
    // held, a fresh channel costs no duplicate: do it without asking.
    if (watched.unsettled === 0 && this.#link.silenceEndedAt > watched.lastDeliveryAt) {
      this.#busy = true;
      try {
        await this.#target.recycle(watched, {
          queue: this.#target.queue,
          ready: undefined,
          afterSilence: true,
          unsettled: 0,
          prefetch: this.#target.prefetch,
          idleMs,
        });
      } catch (error) {
        this.#logger.warn(
          `[wharf] [rabbitmq] consumer watchdog on "${this.#target.queue}": ${(error as Error).message}`,
        );
      } finally {
        this.#busy = false;
      }
      return;
    }
    this.#busy = true;
    try {
      const ready = await this.#ready();
      probeLost = ready === 'lost';
      // Only a consumer still current, still idle and still with free slots counts.
      if (
        ready === 'lost' ||
        ready === undefined ||
        ready === 0 ||
        this.#stopped ||
        this.#target.current() !== watched ||
        watched.unsettled >= this.#target.prefetch ||
        Date.now() - watched.lastDeliveryAt < this.#idleMs
      ) {
        return;
      }
      await this.#target.recycle(watched, {
        queue: this.#target.queue,
        ready,
        afterSilence: false,
        unsettled: watched.unsettled,
        prefetch: this.#target.prefetch,
        idleMs: Date.now() - watched.lastDeliveryAt,
      });
    } catch (error) {
      this.#logger.warn(`[wharf] [rabbitmq] consumer watchdog on "${this.#target.queue}": ${(error as Error).message}`);
    } finally {
      this.#busy = false;
    }
    // A probe sent into a link that swallowed data gets no answer, but the link may carry data again
    // by now: ask again at once rather than a tick later (end of a black hole to recovery: ~5 s → ~2 s).
    if (probeLost && !this.#stopped) setTimeout(() => void this.#tick(), 0).unref();
  }

  /**
   * Ready messages in the queue; undefined when unknown (not connected, queue gone), `lost` when the
   * broker did not answer within {@link PROBE_ANSWER_MS} (a live one answers a passive declare in
   * milliseconds).
   */
  async #ready(): Promise<number | undefined | 'lost'> {
    const model = await this.#link.ready(0);
    if (!model) return undefined;
    const answerMs = Math.min(this.#idleMs, PROBE_ANSWER_MS);
    try {
      const channel = await bounded(this.#openProbe(model), answerMs, 'opening a channel');
      const reply = await bounded(channel.checkQueue(this.#target.queue), answerMs, 'a passive queue declare');
      return reply.messageCount;
    } catch (error) {
      // A 404 closed the probe channel; a timeout means the link is not answering (heartbeats will
      // tell if it stays so). Either way open a fresh probe channel next time.
      this.#dropProbe();
      return error instanceof NoAnswer ? 'lost' : undefined;
    }
  }

  async #openProbe(model: NonNullable<Link['model']>): Promise<Channel> {
    if (this.#probe) return this.#probe;
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    channel.once('close', () => {
      if (this.#probe === channel) this.#probe = undefined;
    });
    if (this.#stopped) {
      channel.close().catch(() => undefined);
      throw new Error('stopped');
    }
    this.#probe = channel;
    return channel;
  }

  #dropProbe(): void {
    const probe = this.#probe;
    this.#probe = undefined;
    probe?.close().catch(() => undefined);
  }
}

/** Rejects when `work` takes longer than `ms`, naming `what`; `work` itself goes on. */
export function bounded<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(work, ms, () => new NoAnswer(`${what} got no answer within ${ms} ms`));
}
