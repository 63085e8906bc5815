import { ClosedError, type Logger, PublishError, UnroutableError, withTimeout } from '@wharf/core';
import type { ChannelModel, ConfirmChannel, Message, Options } from 'amqplib';
import { ConfirmWatchdog } from './confirm-watchdog.js';
import type { ChannelSlot, Link } from './connection.js';
import { COMPONENT, notAuthorized, replyCode, scrub, topologyError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import { checkExchange, declareExchange } from './topology.js';

/** Completion of one `publish` call: resolves when every message is confirmed, rejects with the first failure. */
class Batch {
  remaining: number;
  failure: Error | undefined;
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (error: Error) => void;

  constructor(size: number) {
    this.remaining = size;
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  done(error?: Error): void {
    if (error && !this.failure) this.failure = error;
    if (--this.remaining === 0) {
      if (this.failure) this.reject(this.failure);
      else this.resolve();
    }
  }
}

/** One message on its way: kept until confirmed so it can be re-sent after a connection loss. */
class Pending {
  /** Set while it waits for the connection: it fails when waiting longer than `publishWaitMs`. */
  since = 0;
  resends = 0;
  readonly confirm: (error: unknown) => void;

  constructor(
    readonly publisher: Publisher,
    readonly exchange: string,
    readonly routingKey: string,
    readonly content: Buffer,
    readonly options: Options.Publish,
    readonly batch: Batch,
    /** The Wharf channel for `UnroutableError`; undefined for a send to one queue (retries, dead letters). */
    readonly channel: string | undefined,
  ) {
    this.confirm = (error: unknown) => publisher.confirmed(this, error);
  }
}

/** Re-sends of one message after connection or channel losses before it fails with `PublishError`. */
const MAX_RESENDS = 5;

/**
 * Publishes on one confirm channel of the publishing connection: persistent + mandatory, resolved on
 * the broker's confirm, returned messages rejected with `UnroutableError`, `drain` respected (amqplib's
 * `publish` returning false means "buffered, slow down", not "failed"). Messages that were in flight
 * when the connection or channel dropped are re-sent in their original order once it is back.
 */
export class Publisher {
  readonly #link: Link;
  readonly #topology: ChannelSlot;
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  #channel: ConfirmChannel | undefined;
  #writable = true;
  /** Messages not yet handed to amqplib, in publish order (a deque: `#head` is the first live entry). */
  #queue: Pending[] = [];
  #head = 0;
  #flushing = false;
  /** Messages whose confirm was lost with the channel, to be re-sent first. */
  #lost: Pending[] = [];
  #returned: { exchange: string; routingKey: string; id: unknown }[] = [];
  #exchanges = new Map<string, true | Promise<void>>();
  #inflight = 0;
  #idle: (() => void)[] = [];
  #sweeper: NodeJS.Timeout | undefined;
  /** A flush was asked for while one ran (see #flush). */
  #flushAgain = false;
  #lastLoss = 'connection lost';
  /**
   * The exchange the broker just refused to let this user write to (403 closes the channel), and the
   * typed error for the messages to it: they fail with it instead of being sent again, since the refusal
   * would recur on every channel. Reset when the next channel opens (permissions may be granted meanwhile).
   */
  #refused: { readonly exchange: string; readonly error: Error } | undefined;
  #closed = false;
  readonly #confirmWatch: ConfirmWatchdog;

  constructor(link: Link, topology: ChannelSlot, options: ResolvedOptions, logger: Logger) {
    this.#link = link;
    this.#topology = topology;
    this.#options = options;
    this.#logger = logger;
    this.#confirmWatch = new ConfirmWatchdog(link, options.confirmStallMs, () => this.#inflight, logger);
    link.onUp((model) => this.#open(model));
    link.onDown((error) => {
      this.#lastLoss = scrub(error.message, options.password);
      this.#channel = undefined;
      this.#startSweeper();
    });
  }

  /** Publishes to a channel's exchange (fanout); resolves when all are confirmed. */
  publishToExchange(
    channel: string,
    exchange: string,
    items: readonly { content: Buffer; options: Options.Publish }[],
  ): Promise<void> {
    const batch = new Batch(items.length);
    for (const item of items)
      this.#enqueue(new Pending(this, exchange, '', item.content, item.options, batch, channel));
    return batch.promise;
  }

  /** Sends one message straight to a queue through the default exchange (raw mode, dead-letter replays). */
  sendToQueue(queue: string, content: Buffer, options: Options.Publish): Promise<void> {
    return this.sendVia('', queue, content, options);
  }

  /**
   * Sends one message to a queue through `exchange` under the queue's name: a group's own exchange
   * (retries, dead letters; see topology.ts), or the default exchange for `''`. A group exchange is
   * only checked (passively, once per channel), never declared here: one without the group's
   * bindings would take the message and route it nowhere. Mandatory as every publish, so a queue that
   * is not bound comes back as a `PublishError` instead of being dropped.
   */
  sendVia(exchange: string, queue: string, content: Buffer, options: Options.Publish): Promise<void> {
    const batch = new Batch(1);
    this.#enqueue(new Pending(this, exchange, queue, content, options, batch, undefined));
    return batch.promise;
  }

  #enqueue(p: Pending): void {
    if (this.#closed) {
      p.batch.done(new ClosedError(COMPONENT, 'publish'));
      return;
    }
    const ch = this.#channel;
    if (ch && this.#writable && !this.#flushing && this.#head === this.#queue.length && this.#lost.length === 0) {
      if (p.exchange === '' || this.#exchanges.get(p.exchange) === true) {
        this.#send(ch, p);
        return;
      }
    }
    this.#queue.push(p);
    if (!ch) this.#waitForConnection(p);
    void this.#flush();
  }

  #send(ch: ConfirmChannel, p: Pending): void {
    let ok: boolean;
    try {
      ok = ch.publish(p.exchange, p.routingKey, p.content, p.options, p.confirm);
    } catch (error) {
      if (error instanceof RangeError) {
        p.batch.done(
          new PublishError(
            COMPONENT,
            `the event's attributes do not fit an AMQP header table (64 KiB): ${error.message} — send fewer or shorter attributes`,
            { cause: error },
          ),
        );
      } else {
        // The channel closed under us: keep the message for the next channel.
        this.#lost.push(p);
      }
      return;
    }
    this.#inflight++;
    this.#confirmWatch.sent();
    if (!ok) this.#writable = false;
  }

  /** amqplib's confirm callback: success, a nack, or the channel closing with the message unconfirmed. */
  confirmed(p: Pending, error: unknown): void {
    this.#inflight--;
    this.#confirmWatch.confirmed();
    if (!error) {
      if (this.#returned.length > 0 && this.#takeReturn(p)) {
        p.batch.done(
          p.channel !== undefined
            ? new UnroutableError(COMPONENT, p.channel)
            : new PublishError(
                COMPONENT,
                p.exchange === ''
                  ? `queue "${p.routingKey}" does not exist, so the broker returned the message — declare the group again (subscribe or bus.declare)`
                  : `no queue "${p.routingKey}" is bound to the group's exchange "${p.exchange}", so the broker returned the message — declare the group again (subscribe or bus.declare)`,
              ),
        );
      } else p.batch.done();
    } else if ((error as Error).message === 'message nacked') {
      p.batch.done(
        new PublishError(
          COMPONENT,
          `the broker refused (nacked) a message to ${p.exchange === '' ? `queue "${p.routingKey}"` : `exchange "${p.exchange}"`} — a queue may be over its limit or unavailable (quorum without a leader); publish it again later`,
        ),
      );
    } else this.#loseInFlight(p);
    if (this.#inflight === 0 && this.#idle.length > 0 && this.#head === this.#queue.length) this.#wakeIdle();
  }

  #loseInFlight(p: Pending): void {
    if (this.#refused !== undefined && this.#refused.exchange === p.exchange) {
      p.batch.done(this.#refused.error);
      return;
    }
    if (this.#closed) {
      p.batch.done(
        new PublishError(
          COMPONENT,
          'the connection closed before the broker confirmed the message; it may or may not be stored — publish it again',
        ),
      );
      return;
    }
    if (++p.resends > MAX_RESENDS) {
      p.batch.done(
        new PublishError(
          COMPONENT,
          `the message was not confirmed after ${MAX_RESENDS} re-sends (${this.#lastLoss}); it may or may not be stored — publish it again`,
        ),
      );
      return;
    }
    this.#lost.push(p);
    if (this.#channel === undefined) this.#waitForConnection(p);
  }

  #takeReturn(p: Pending): boolean {
    const id = p.options.messageId;
    const list = this.#returned;
    for (let i = 0; i < list.length; i++) {
      const r = list[i] as { exchange: string; routingKey: string; id: unknown };
      if (r.exchange === p.exchange && r.routingKey === p.routingKey && r.id === id) {
        list.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  async #open(model: ChannelModel): Promise<void> {
    const ch = await model.createConfirmChannel();
    this.#refused = undefined;
    ch.on('error', (error: Error) => {
      this.#lastLoss = scrub(error.message, this.#options.password);
      this.#logger.warn(`[wharf] [rabbitmq] publishing channel error: ${this.#lastLoss}`);
      // amqplib fails the channel's unconfirmed messages right after this event (#loseInFlight).
      const exchange = /access to exchange '([^']*)'/.exec(error.message)?.[1];
      const refusal = exchange === undefined ? undefined : notAuthorized(`publish to exchange "${exchange}"`, error);
      if (exchange !== undefined && refusal) {
        this.#refused = { exchange, error: refusal };
        this.#failWhere((p) => p.exchange === exchange, refusal);
      }
    });
    ch.on('return', (message: Message) => {
      this.#returned.push({
        exchange: message.fields.exchange,
        routingKey: message.fields.routingKey,
        id: message.properties.messageId,
      });
    });
    ch.on('drain', () => {
      this.#writable = true;
      void this.#flush();
    });
    ch.once('close', () => {
      if (this.#channel !== ch) return;
      this.#channel = undefined;
      // A channel error (e.g. a deleted exchange) leaves the connection up: open a new channel at once.
      const current = this.#link.model;
      if (current && current === model && !this.#closed) {
        this.#open(model).catch((error: Error) => {
          this.#logger.warn(`[wharf] [rabbitmq] cannot reopen the publishing channel: ${error.message}`);
        });
      }
    });
    this.#returned = [];
    this.#exchanges.clear();
    this.#writable = true;
    this.#channel = ch;
    void this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#flushing) {
      // Asked while a flush awaits an exchange check (a new channel, a drain): it runs again once
      // that one ends. Dropped, a running flush that stops early (its connection gone) would leave
      // its queue to the next publish, which may never come.
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    try {
      if (this.#lost.length > 0 && this.#channel) {
        const lost = this.#lost;
        this.#lost = [];
        this.#queue = lost.concat(this.#queue.slice(this.#head));
        this.#head = 0;
      }
      while (this.#head < this.#queue.length) {
        const ch = this.#channel;
        if (!ch || !this.#writable || this.#closed) return;
        const p = this.#queue[this.#head] as Pending;
        if (p.exchange !== '' && this.#exchanges.get(p.exchange) !== true) {
          await this.#assertExchange(p.exchange, p.channel !== undefined);
          // Not connected any more: the next channel flushes again.
          if (this.#exchanges.get(p.exchange) !== true && this.#queue[this.#head] === p) return;
          continue;
        }
        this.#queue[this.#head++] = undefined as unknown as Pending;
        p.since = 0;
        this.#send(ch, p);
        if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
      }
      this.#queue = [];
      this.#head = 0;
    } finally {
      this.#flushing = false;
      const again = this.#flushAgain;
      this.#flushAgain = false;
      if ((again || this.#lost.length > 0) && this.#channel) void this.#flush();
    }
  }

  /**
   * Makes sure of an exchange once per channel, before the first message to it (publishing to a
   * missing exchange is a channel error that would take every message in flight with it). A channel's
   * exchange is created, so a publish before any declare is returned, not a channel error. A group's
   * exchange (`declare` false) is only checked: the group's declaration makes it with its bindings.
   */
  async #assertExchange(exchange: string, declare: boolean): Promise<void> {
    let pending = this.#exchanges.get(exchange);
    if (pending === true) return;
    pending ??= (async () => {
      // Bounded, both: a check or declaration the broker leaves unanswered (right after a restart,
      // while its queues recover) would hold the flush, and every publish queued behind it. A
      // timeout fails the messages to this exchange (PublishError); the rest of the queue goes on.
      const ms = this.#options.declareTimeoutMs;
      const bounded = (work: Promise<void>): Promise<void> =>
        withTimeout(work, ms, () => new Error(`no answer within ${ms} ms`));
      try {
        if (declare) {
          await bounded(
            (async () => {
              const ch = await this.#topology.get();
              await declareExchange(ch, exchange, this.#link.model);
            })(),
          );
        } else {
          // The connection this channel belongs to, not `ready(0)`: the first flush of a new
          // channel runs inside the link's reconnect hooks, where ready(0) still answers "not
          // connected". The flush then stopped with its queue full and a healthy channel, and
          // nothing flushed it again: after a broker restart the retries and dead letters in flight
          // (which go through the group's exchange) waited for good, their events unacked.
          const model = this.#link.model;
          // Not connected: the next channel flushes again.
          if (model === undefined) {
            this.#exchanges.delete(exchange);
            return;
          }
          await bounded(checkExchange(model, exchange));
        }
        this.#exchanges.set(exchange, true);
      } catch (error) {
        this.#exchanges.delete(exchange);
        // Fail what waits for this exchange; the rest of the queue goes on.
        const failure = !this.#link.model
          ? undefined
          : !declare && replyCode(error) === 404
            ? new PublishError(
                COMPONENT,
                `the group's exchange "${exchange}" does not exist (the group's queues were deleted, or no process of this version declared the group yet) — declare the group again (subscribe or bus.declare)`,
                { cause: error },
              )
            : topologyError(`exchange "${exchange}"`, error);
        if (failure) this.#failWhere((p) => p.exchange === exchange, failure);
      }
    })();
    this.#exchanges.set(exchange, pending);
    await pending;
  }

  #failWhere(match: (p: Pending) => boolean, error: Error): void {
    const keep: Pending[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const p = this.#queue[i] as Pending;
      if (match(p)) p.batch.done(error);
      else keep.push(p);
    }
    this.#queue = keep;
    this.#head = 0;
  }

  #waitForConnection(p: Pending): void {
    if (p.since === 0) p.since = Date.now();
    this.#startSweeper();
  }

  #startSweeper(): void {
    if (this.#closed) return;
    if (this.#options.publishWaitMs === 0) {
      queueMicrotask(() => this.#sweep(true));
      return;
    }
    this.#sweeper ??= setInterval(() => this.#sweep(false), 100);
    this.#sweeper.unref?.();
  }

  /** Fails messages that waited longer than `publishWaitMs` for the connection to return. */
  #sweep(all: boolean): void {
    if (this.#channel) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
      return;
    }
    const deadline = Date.now() - this.#options.publishWaitMs;
    const expired = (p: Pending): boolean => all || (p.since !== 0 && p.since <= deadline);
    const error = new PublishError(
      COMPONENT,
      `RabbitMQ is unreachable (${this.#lastLoss}) and did not come back within ${this.#options.publishWaitMs} ms (publishWaitMs); the event was not confirmed — publish it again`,
    );
    const lost = this.#lost;
    this.#lost = [];
    for (const p of lost) {
      if (p.since === 0) p.since = Date.now();
      if (expired(p)) p.batch.done(error);
      else this.#lost.push(p);
    }
    this.#failWhere((p) => {
      if (p.since === 0) p.since = Date.now();
      return expired(p);
    }, error);
  }

  /** Waits until nothing is queued or unconfirmed, up to `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.#inflight === 0 && this.#head === this.#queue.length && this.#lost.length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #wakeIdle(): void {
    if (this.#lost.length > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const wake of idle) wake();
  }

  /** After close(): everything still waiting fails with `ClosedError`. */
  close(): void {
    this.#closed = true;
    this.#confirmWatch.stop();
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    const error = new ClosedError(COMPONENT, 'publish');
    for (const p of this.#lost) p.batch.done(error);
    this.#lost = [];
    this.#failWhere(() => true, error);
  }
}
