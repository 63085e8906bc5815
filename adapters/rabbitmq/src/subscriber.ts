import {
  type AdapterSubscription,
  ATTEMPT_HEADER,
  type DeadLetterInfo,
  DeadLetterWriteError,
  type Decoded,
  type Delivery,
  deadLetterHeaders,
  FIRST_FAILURE_HEADER,
  incidentSink,
  type Logger,
  PublishError,
  RAW_QUEUE_HEADER,
  type RetryInstruction,
  readAttempt,
  retryHeaders,
  type SubscribeRequest,
} from '@wharf/core';
import type { Channel, ChannelModel, ConsumeMessage, Options } from 'amqplib';
import { AckBatcher } from './acks.js';
import { decodeMessage, encodeProperties, headerString, republishProperties } from './codec.js';
import type { ChannelSlot, Link } from './connection.js';
import { reportAtDeliveryLimit } from './delivery-limit.js';
import { COMPONENT, scrub } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { Publisher } from './publisher.js';
import { adoptQueue, decodePlain } from './raw.js';
import { declareGroup, type GroupNames, retryTarget, routeTo } from './topology.js';
import { bounded, ConsumerWatchdog, noteDelivery, noteSettled, type StallEvidence, type Watched } from './watchdog.js';

/** One consumer channel; deliveries remember theirs, because a delivery tag means nothing on another channel. */
interface Consumer extends Watched {
  readonly channel: Channel;
  readonly acks: AckBatcher;
  open: boolean;
  tag: string | undefined;
}

const gone = (): PublishError =>
  new PublishError(
    COMPONENT,
    'the channel that delivered this message is closed; the broker redelivers the message, nothing to settle',
  );

/** A delivered message as the core settles it. */
class RabbitDelivery implements Delivery {
  readonly decoded: Decoded;
  readonly attempt: number;
  readonly firstFailureAt: string | undefined;
  readonly #sub: RabbitSubscription;
  readonly #consumer: Consumer;
  readonly #message: ConsumeMessage;
  #settledOnChannel = false;

  constructor(sub: RabbitSubscription, consumer: Consumer, message: ConsumeMessage) {
    this.#sub = sub;
    this.#consumer = consumer;
    this.#message = message;
    const raw = sub.raw;
    this.decoded = raw === undefined ? decodeMessage(message) : decodePlain(raw, message);
    const headers = message.properties.headers;
    this.attempt = readAttempt(headers?.[ATTEMPT_HEADER]);
    this.firstFailureAt = headerString(headers?.[FIRST_FAILURE_HEADER]);
  }

  async ack(): Promise<void> {
    if (!this.#consumer.open) throw gone();
    this.#consumer.acks.ack(this.#message);
    this.#noteSettled();
  }

  async retry(instruction: RetryInstruction): Promise<void> {
    if (!this.#consumer.open) throw gone();
    const names = this.#sub.names;
    const target = retryTarget(names, instruction.tierMs, instruction.delayMs);
    const properties = republishProperties(this.#message, retryHeaders(instruction));
    // The tier queue holds the copy until its TTL expires, then dead-letters it to this group's queue only.
    if (target !== names.queue) properties.expiration = String(instruction.delayMs);
    await this.#send(target, properties);
    await this.#ackAfter(`its retry copy was stored in "${target}"`);
  }

  async deadLetter(info: DeadLetterInfo): Promise<void> {
    if (!this.#consumer.open) throw gone();
    const queue = this.#sub.names.deadLetters;
    const properties = republishProperties(this.#message, { ...this.#eventHeaders(), ...deadLetterHeaders(info) });
    try {
      await this.#send(queue, properties);
    } catch (cause) {
      throw new DeadLetterWriteError(
        COMPONENT,
        `writing to dead-letter queue "${queue}" failed: ${(cause as Error).message}; the original stays unsettled`,
        { cause },
      );
    }
    await this.#ackAfter(`its dead letter was stored in "${queue}"`);
  }

  /**
   * In raw mode, the wrapped event's attributes as binding headers, so the dead letter reads back as
   * the event that failed (`wharf dlq`, `bus.visitDeadLetters`) while its body stays the producer's,
   * and the adopted queue it came from.
   */
  #eventHeaders(): Record<string, string> {
    if (this.#sub.raw === undefined || !this.decoded.ok) return {};
    const headers = encodeProperties(this.decoded.message).headers as Record<string, string>;
    // Names the adopted queue, so a replay from a process with no raw subscription goes back there.
    return { ...headers, [RAW_QUEUE_HEADER]: this.#sub.names.queue };
  }

  /** A copy of the original to one of the group's queues, through the group's exchange (see `routeTo`), confirmed. */
  #send(queue: string, properties: Options.Publish): Promise<void> {
    const { exchange, routingKey } = routeTo(this.#sub.names, queue, this.#sub.raw !== undefined);
    return this.#sub.publisher.sendVia(exchange, routingKey, this.#message.content, properties);
  }

  /** Acks the original after its copy is stored; if the channel closed meanwhile, says the event now exists twice. */
  async #ackAfter(stored: string): Promise<void> {
    if (this.#consumer.open) return this.ack();
    throw new PublishError(
      COMPONENT,
      `${stored}, but the channel that delivered the original closed before it could be acked: the broker redelivers the original, so the event is handled again (consumers dedup by id)`,
    );
  }

  async release(): Promise<void> {
    // On a closed channel the broker has already taken the message back; say so (the core reports it).
    this.#noteSettled();
    if (!this.#consumer.open) throw gone();
    this.#consumer.acks.reject(this.#message, true);
  }

  #noteSettled(): void {
    if (this.#settledOnChannel) return;
    this.#settledOnChannel = true;
    noteSettled(this.#consumer);
  }
}

export interface SubscriptionContext {
  readonly link: Link;
  readonly topology: ChannelSlot;
  readonly publisher: Publisher;
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  readonly names: GroupNames;
  readonly request: SubscribeRequest;
  readonly onDelivery: (delivery: Delivery) => Promise<void>;
  /** True once the adapter is closing: no onDelivery call may start. */
  readonly closing: () => boolean;
  readonly onStopped: (sub: RabbitSubscription) => void;
}

/**
 * A consumer on the group's queue with prefetch = concurrency and manual acks. A local gate keeps
 * the count of unsettled deliveries at `concurrency` even across a reconnect (old deliveries still in
 * a handler while the new channel receives). Resubscribes after every reconnection until stopped.
 */
export class RabbitSubscription implements AdapterSubscription {
  readonly names: GroupNames;
  readonly publisher: Publisher;
  /** Raw mode: `names.queue` is an adopted queue of plain messages. */
  readonly raw: SubscribeRequest['raw'];
  readonly #ctx: SubscriptionContext;
  #consumer: Consumer | undefined;
  #consumerModel: ChannelModel | undefined;
  #starting: Promise<void> = Promise.resolve();
  #active = 0;
  #backlog: { consumer: Consumer; message: ConsumeMessage }[] = [];
  #stopped = false;
  #stopping: Promise<void> | undefined;
  readonly #watchdog: ConsumerWatchdog;

  constructor(ctx: SubscriptionContext) {
    this.#ctx = ctx;
    this.names = ctx.names;
    this.publisher = ctx.publisher;
    this.raw = ctx.request.raw;
    this.#watchdog = new ConsumerWatchdog(
      ctx.link,
      {
        queue: ctx.names.queue,
        prefetch: ctx.request.concurrency,
        current: () => (this.#consumer?.open && this.#consumer.tag !== undefined ? this.#consumer : undefined),
        recycle: (watched, evidence) => this.#recycle(watched, evidence),
      },
      ctx.options.consumerWatchdogMs,
      ctx.logger,
    );
  }

  describe(): string {
    return `${this.#ctx.request.channel}/${this.#ctx.request.group}`;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Declares the group's queues and starts consuming (also after every reconnection). Calls are
   * serialised and a call for a connection that already has a live consumer does nothing, because
   * `subscribe`'s own retry and the reconnection hook may both start it on the same new connection.
   */
  start(model: ChannelModel): Promise<void> {
    const run = this.#starting.catch(() => undefined).then(() => this.#start(model));
    this.#starting = run;
    return run;
  }

  async #start(model: ChannelModel): Promise<void> {
    if (this.#stopped) return;
    if (this.#consumer?.open && this.#consumerModel === model) return;
    const { request, options } = this.#ctx;
    if (this.raw !== undefined) await adoptQueue(model, this.names.queue, this.raw.arguments);
    const topology = await this.#ctx.topology.get(model);
    await declareGroup(
      topology,
      this.names,
      request.policy,
      options.deliveryLimit,
      this.raw !== undefined,
      request.expireWhenIdleMs,
      model,
    );
    const channel = await model.createChannel();
    const consumer: Consumer = {
      channel,
      acks: new AckBatcher(channel),
      open: true,
      tag: undefined,
      unsettled: 0,
      lastDeliveryAt: Date.now(),
    };
    channel.on('error', (error: Error) => {
      this.#ctx.logger.warn(
        `[wharf] [rabbitmq] consumer channel error on ${request.channel}/${request.group}: ${scrub(error.message, options.password)}`,
      );
    });
    channel.once('close', () => {
      consumer.open = false;
      // Deliveries not handed over are back with the broker already.
      this.#backlog = this.#backlog.filter((b) => b.consumer !== consumer);
      if (this.#consumer === consumer) this.#consumer = undefined;
    });
    await channel.prefetch(request.concurrency, false);
    this.#consumer = consumer;
    this.#consumerModel = model;
    const reply = await channel.consume(this.names.queue, (message) => this.#onMessage(consumer, message), {
      noAck: false,
    });
    consumer.tag = reply.consumerTag;
    if (this.#stopped) await this.#cancel(consumer);
    else this.#watchdog.start();
  }

  #onMessage(consumer: Consumer, message: ConsumeMessage | null): void {
    if (message === null) {
      void this.#onCancelled(consumer);
      return;
    }
    noteDelivery(consumer);
    consumer.acks.delivered(message);
    if (this.#stopped || this.#ctx.closing()) {
      if (consumer.open) consumer.acks.reject(message, true);
      return;
    }
    if (this.#active >= this.#ctx.request.concurrency) {
      this.#backlog.push({ consumer, message });
      return;
    }
    this.#dispatch(consumer, message);
  }

  #dispatch(consumer: Consumer, message: ConsumeMessage): void {
    this.#active++;
    const { request, options, logger } = this.#ctx;
    reportAtDeliveryLimit(incidentSink(request, logger), request, this.names, options.deliveryLimit, message);
    let work: Promise<void>;
    try {
      work = this.#ctx.onDelivery(new RabbitDelivery(this, consumer, message));
    } catch (error) {
      work = Promise.reject(error);
    }
    work.then(this.#onSettled, this.#onFailed);
  }

  readonly #onSettled = (): void => this.#settled();

  readonly #onFailed = (error: unknown): void => {
    this.#ctx.logger.error(
      `[wharf] [rabbitmq] delivery handling failed on ${this.#ctx.request.channel}/${this.#ctx.request.group}: ${(error as Error).message}`,
    );
    this.#settled();
  };

  #settled(): void {
    this.#active--;
    while (this.#backlog.length > 0 && this.#active < this.#ctx.request.concurrency) {
      const next = this.#backlog.shift() as { consumer: Consumer; message: ConsumeMessage };
      if (!next.consumer.open) continue;
      if (this.#stopped || this.#ctx.closing()) {
        next.consumer.acks.reject(next.message, true);
        continue;
      }
      this.#dispatch(next.consumer, next.message);
    }
    if (this.#stopped && this.#active === 0) void this.#closeChannel();
  }

  async #cancel(consumer: Consumer): Promise<void> {
    if (!consumer.open || consumer.tag === undefined) return;
    try {
      await consumer.channel.cancel(consumer.tag);
    } catch {
      // The channel closed meanwhile: the broker stopped delivering anyway.
    }
  }

  async #closeChannel(): Promise<void> {
    const consumer = this.#consumer;
    if (!consumer?.open) return;
    consumer.open = false;
    // Held acks go out before the close (frames on a channel are processed in order), or the broker
    // would redeliver what was handled.
    consumer.acks.flush();
    await consumer.channel.close().catch(() => undefined);
  }

  /**
   * The consumer watchdog's remedy (see watchdog.ts): closes the stalled channel, so the broker
   * requeues what it delivered there, and consumes again on a fresh one. Handlers still running on
   * deliveries of the old channel find it closed when they settle (the core reports that, and the
   * redelivered copy waits for the running handler).
   */
  async #recycle(watched: Watched, evidence: StallEvidence): Promise<void> {
    const why = evidence.afterSilence
      ? `holding no delivery, after the connection was silent (no byte, not even a heartbeat, for 3/4 of the heartbeat): deliveries sent meanwhile may never have arrived and would wait for acks until the broker's consumer timeout`
      : `with ${evidence.unsettled} of ${evidence.prefetch} prefetch slots in use while the queue held ${evidence.ready} ready messages: the broker is waiting for acks of deliveries this client never received`;
    await this.#replace(
      watched,
      `the consumer of queue "${evidence.queue}" received nothing for ${evidence.idleMs} ms ${why}; closing its channel (the broker requeues them) and consuming again`,
      { ...evidence },
    );
  }

  /**
   * basic.cancel from the broker: the queue was deleted, or (a quorum queue) its replica restarted
   * under the consumer, as after a broker restart while the client was already back. Nothing more
   * comes on this consumer, while the channel still holds what it delivered, so a subscription that
   * only logged it stalled for good, silently. The same remedy as a stall: close the channel (what it
   * held goes back to the queue) and consume again, redeclaring the queue if it is gone.
   */
  async #onCancelled(consumer: Consumer): Promise<void> {
    await this.#replace(
      consumer,
      `the broker cancelled the consumer of queue "${this.names.queue}" (queue deleted, or its replica restarted) with ${consumer.unsettled} deliveries unsettled; closing its channel (the broker requeues them) and consuming again`,
      { queue: this.names.queue, unsettled: consumer.unsettled },
    );
  }

  /** Reports the incident, closes the consumer's channel and consumes again on a new one. */
  async #replace(watched: Watched, message: string, details: Record<string, unknown>): Promise<void> {
    const consumer = this.#consumer;
    const model = await this.#ctx.link.ready(0);
    if (consumer !== watched || !consumer.open || this.#stopped || !model) return;
    const { request, logger } = this.#ctx;
    consumer.open = false;
    this.#consumer = undefined;
    this.#backlog = this.#backlog.filter((b) => b.consumer !== consumer);
    incidentSink(
      request,
      logger,
    )({
      kind: 'stalled',
      component: COMPONENT,
      channel: request.channel,
      group: request.group,
      message,
      details: { ...details, consumerTag: consumer.tag },
    });
    consumer.acks.flush();
    try {
      await bounded(consumer.channel.close(), this.#ctx.options.consumerWatchdogMs || 5_000, 'closing the channel');
    } catch (error) {
      // No close-ok: the link itself is not answering; a new connection settles it for every consumer.
      logger.warn(`[wharf] [rabbitmq] ${(error as Error).message}; reconnecting the consume connection`);
      await model.close().catch(() => undefined);
      return;
    }
    await this.resume(model);
  }

  /**
   * Starts consuming on `model` again, retrying with capped backoff while it stays the live
   * connection: a redeclare can fail for a while after a broker restart (a quorum queue whose replica
   * is still starting), and a subscription that gave up after one failure would never consume again.
   * A dropped connection ends the loop; the reconnection hook starts over on the next one.
   */
  async resume(model: ChannelModel): Promise<void> {
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      if (this.#stopped || this.#ctx.closing() || this.#ctx.link.model !== model) return;
      try {
        await this.start(model);
        return;
      } catch (error) {
        if (this.#stopped || this.#ctx.link.model !== model) return;
        const log = attempt === 1 || attempt % 10 === 0 ? this.#ctx.logger.error : this.#ctx.logger.debug;
        log.call(
          this.#ctx.logger,
          `[wharf] [rabbitmq] cannot consume ${this.describe()} again (attempt ${attempt}, next in ${delay} ms): ${scrub((error as Error).message, this.#ctx.options.password)}`,
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  /** Stops taking messages: cancels the consumer, returns undelivered ones; the channel closes once all handed-over ones are settled. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      this.#watchdog.stop();
      const consumer = this.#consumer;
      if (consumer) await this.#cancel(consumer);
      const backlog = this.#backlog;
      this.#backlog = [];
      for (const { consumer: c, message } of backlog) if (c.open) c.acks.reject(message, true);
      if (this.#active === 0) await this.#closeChannel();
      this.#ctx.onStopped(this);
    })();
    return this.#stopping;
  }
}
