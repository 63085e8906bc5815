import type { Logger } from '@wharf/core';
import type { ChannelModel } from 'amqplib';
import { dropConnection, type Link } from './connection.js';

/**
 * Publisher confirms carry no message id: amqplib numbers publishes itself and the broker numbers
 * the publishes it received, and a confirm for tag N settles amqplib's N-th publish. A link that
 * swallows client→broker data without failing (a middlebox or proxy that drops whole chunks keeps
 * the frame stream parseable) makes the two counts drift: once data flows again, the broker's
 * confirms settle the publishes it never received ("confirmed" yet lost) and the later, stored ones
 * wait forever. Nothing on the wire tells the client which is which, so the only safe answer is to
 * act while the link is still silent: when publishes are outstanding and nothing at all (no confirm,
 * no heartbeat) has arrived for `stallMs` (and the broker has not said it blocked the connection),
 * drop the connection. A live broker sends a heartbeat every half heartbeat timeout when it has
 * nothing else to send, so the default, 3/4 of the heartbeat, never fires on a slow but live broker
 * (a 10k-message burst can take seconds to earn its first confirm). amqplib
 * then fails every outstanding confirm, and the publisher re-sends them on the new connection —
 * duplicates at worst, which consumers' dedup absorbs, never a false confirm.
 *
 * A gap shorter than `stallMs` that ends before the check still skews the counts; this bounds the
 * hazard to short gaps, it cannot remove it (see README).
 */
export class ConfirmWatchdog {
  readonly #link: Link;
  readonly #stallMs: number;
  readonly #logger: Logger;
  readonly #outstanding: () => number;
  #model: ChannelModel | undefined;
  #blocked = false;
  /** When confirms last made progress (or publishes started being outstanding). */
  #progressAt = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(link: Link, stallMs: number, outstanding: () => number, logger: Logger) {
    this.#link = link;
    this.#stallMs = stallMs;
    this.#outstanding = outstanding;
    this.#logger = logger;
    if (stallMs <= 0) return;
    link.onUp(async (model) => {
      this.#model = model;
      this.#blocked = false;
      this.#progressAt = Date.now();
      // Any byte from the broker (a heartbeat too) proves the link carries data. amqplib reads on
      // 'readable' itself; one more listener only notes the time and consumes nothing.
      const stream = (model.connection as unknown as { stream?: NodeJS.EventEmitter }).stream;
      stream?.on('readable', () => {
        this.#progressAt = Date.now();
      });
      model.on('blocked', () => {
        if (this.#model === model) this.#blocked = true;
      });
      model.on('unblocked', () => {
        if (this.#model !== model) return;
        this.#blocked = false;
        this.#progressAt = Date.now();
      });
    });
    this.#timer = setInterval(() => this.#check(), Math.max(100, Math.floor(stallMs / 4)));
    this.#timer.unref();
  }

  /** A publish was handed to amqplib; call after counting it outstanding. */
  sent(): void {
    if (this.#outstanding() === 1) this.#progressAt = Date.now();
  }

  /** A confirm (ack, nack or failure) arrived. */
  confirmed(): void {
    this.#progressAt = Date.now();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    const model = this.#model;
    if (!model || this.#blocked || this.#link.model !== model || this.#outstanding() === 0) return;
    const silentMs = Date.now() - this.#progressAt;
    if (silentMs < this.#stallMs) return;
    this.#model = undefined;
    this.#logger.warn(
      `[wharf] [rabbitmq] ${this.#outstanding()} publishes outstanding and nothing received (no confirm, no heartbeat) for ${silentMs} ms on a connection that is not blocked: the link is silently losing data; dropping the publish connection so they are re-sent on a new one`,
    );
    // No close handshake: it would wait on the same silent link, and no byte that arrives from now on
    // may be read as a confirm.
    dropConnection(model, new Error(`no publisher confirm for ${silentMs} ms`));
  }
}
