import {
  type Adapter,
  type AdapterInit,
  type AdapterSubscription,
  BrokerUnreachableError,
  type Capabilities,
  ClosedError,
  DEFAULT_CAPABILITIES,
  type Delivery,
  type GroupBacklog,
  type Logger,
  MessageTooLargeError,
  type NormalizedRetryPolicy,
  NotAuthorizedError,
  PublishError,
  type PublishRequestOptions,
  retryTiers,
  type StoredDeadLetter,
  type SubscribeRequest,
  TimeoutError,
  TopologyError,
  TopologyMismatchError,
  WharfError,
  type WireMessage,
  withTimeout,
} from '@wharf/core';
import type { ChannelModel, Options } from 'amqplib';
import { readBacklog } from './backlog.js';
import { encodeProperties, toBuffer } from './codec.js';
import { ChannelSlot, dropConnection, Link } from './connection.js';
import { readDeadLetters } from './dead-letters.js';
import { COMPONENT, replyCode, scrub } from './errors.js';
import { type RabbitMqAdapterOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { Publisher } from './publisher.js';
import { plainPublish } from './raw.js';
import { RabbitSubscription } from './subscriber.js';
import { declareGroup, exchangeName, groupNames } from './topology.js';
import { bounded } from './watchdog.js';

export const ADAPTER_NAME = 'rabbitmq';

/** amqplib encodes a header table into at most 64 KiB; keep a margin for our own headers. */
const MAX_ATTRIBUTE_BYTES = 60 * 1024;

/** The native clients behind the adapter, from `raw()`. */
export interface RabbitMqRaw {
  /** The connection publishes, declarations and dead-letter reads use (undefined while reconnecting). */
  readonly publishing: ChannelModel | undefined;
  /** The connection consumers use. */
  readonly consuming: ChannelModel | undefined;
}

/** The RabbitMQ adapter. See README.md for how channels and groups map onto exchanges and queues. */
export class RabbitMqAdapter implements Adapter {
  readonly name = ADAPTER_NAME;
  readonly capabilities: Capabilities;
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #publishLink: Link;
  readonly #consumeLink: Link;
  readonly #publishTopology: ChannelSlot;
  readonly #consumeTopology: ChannelSlot;
  readonly #publisher: Publisher;
  readonly #subscriptions = new Set<RabbitSubscription>();
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(init: AdapterInit & RabbitMqAdapterOptions) {
    this.#options = resolveOptions(init.url, init);
    this.#logger = init.logger;
    this.capabilities = Object.freeze({
      ...DEFAULT_CAPABILITIES,
      // A channel's exchange with no bound queue returns a mandatory publish.
      rejectsUnroutable: true,
      // One queue keeps order, but a group with competing consumers or concurrency > 1 handles
      // events in parallel, and a retry re-enters the queue behind later events.
      orderedByKey: false,
      brokerDeduplication: false,
      maxMessageBytes: this.#options.maxMessageBytes,
      // Plain messages on existing queues: see raw.ts.
      rawMessages: true,
    });
    this.#publishLink = new Link('publish', this.#options, this.#logger);
    this.#consumeLink = new Link('consume', this.#options, this.#logger);
    this.#publishTopology = new ChannelSlot(this.#publishLink);
    this.#consumeTopology = new ChannelSlot(this.#consumeLink);
    this.#publisher = new Publisher(this.#publishLink, this.#publishTopology, this.#options, this.#logger);
    this.#consumeLink.onUp(async (model) => {
      // All at once and each bounded, because the link is not ready (no subscribe, no declare on it)
      // until this hook returns: one queue the broker leaves unanswered (a quorum queue whose replica
      // is still starting after a restart) must not hold up every other subscription.
      const outcomes = await Promise.allSettled(
        [...this.#subscriptions].map((sub) =>
          bounded(sub.start(model), this.#options.declareTimeoutMs, `resuming ${sub.describe()}`).catch(
            (error: unknown) => {
              // The connection dropped again: the link starts over.
              if (this.#consumeLink.model !== model) throw error;
              // Anything else (also a queue redeclared elsewhere with other arguments) is retried on
              // this connection with backoff and logged, while the other subscriptions resume now.
              this.#logger.error(
                `[wharf] [rabbitmq] cannot resume the subscription ${sub.describe()} after reconnecting: ${(error as Error).message}; retrying`,
              );
              void sub.resume(model);
            },
          ),
        ),
      );
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed) throw failed.reason;
    });
  }

  connect(): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError(COMPONENT, 'connect'));
    this.#connecting ??= (async () => {
      try {
        await this.#publishLink.open();
        await this.#consumeLink.open();
      } catch (error) {
        // Leave the adapter as new, so the core's next connect() tries again.
        this.#connecting = undefined;
        await this.#publishLink.disconnect();
        await this.#consumeLink.disconnect();
        throw error;
      }
    })();
    return this.#connecting;
  }

  publish(channel: string, messages: readonly WireMessage[], options?: PublishRequestOptions): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError(COMPONENT, 'publish'));
    if (messages.length === 0) return Promise.resolve();
    const limit = this.#options.maxMessageBytes;
    if (options?.raw !== undefined) {
      const queue = options.raw.queue ?? channel;
      for (const message of messages) {
        if (message.body.length > limit) {
          return Promise.reject(new MessageTooLargeError(COMPONENT, message.body.length, limit));
        }
      }
      return this.#sendPlain(queue, messages);
    }
    const items: { content: Buffer; options: Options.Publish }[] = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as WireMessage;
      if (message.body.length > limit) {
        return Promise.reject(new MessageTooLargeError(COMPONENT, message.body.length, limit));
      }
      if (attributeBytes(message) > MAX_ATTRIBUTE_BYTES) {
        return Promise.reject(
          new PublishError(
            COMPONENT,
            `the event's attributes take more than ${MAX_ATTRIBUTE_BYTES} bytes, above what an AMQP header table holds — send fewer or shorter attributes`,
          ),
        );
      }
      items[i] = { content: toBuffer(message.body), options: encodeProperties(message) };
    }
    return this.#publisher.publishToExchange(channel, exchangeName(this.#options.prefix, channel), items);
  }

  /** Plain messages, one confirmed send each, to an existing queue through the default exchange. */
  async #sendPlain(queue: string, messages: readonly WireMessage[]): Promise<void> {
    await Promise.all(
      messages.map((m) => {
        const { content, options } = plainPublish(m);
        return this.#publisher.sendToQueue(queue, content, options);
      }),
    );
  }

  /**
   * Straight to the group's queue through the default exchange: a replay reaches that group only.
   * An operator's action (`wharf dlq replay`, the console), so it stays on the default exchange: it
   * reaches the queue of a group that an older version declared (no group exchange yet) too. It needs
   * write on `amq.default`, which a service's least rights (`permissionsFor`) no longer include.
   */
  async publishToGroup(channel: string, group: string, messages: readonly WireMessage[]): Promise<void> {
    if (this.#closing) throw new ClosedError(COMPONENT, 'publish');
    const queue = groupNames(this.#options.prefix, channel, group).queue;
    await Promise.all(messages.map((m) => this.#publisher.sendToQueue(queue, toBuffer(m.body), encodeProperties(m))));
  }

  async declare(channel: string, groups: readonly string[], policy: NormalizedRetryPolicy): Promise<void> {
    if (this.#closing) throw new ClosedError(COMPONENT, 'declare');
    await this.#declaring(`declare ${channel}`, this.#publishLink, async (model) => {
      const ch = await this.#publishTopology.get(model);
      for (const group of groups) {
        await declareGroup(ch, groupNames(this.#options.prefix, channel, group), policy, this.#options.deliveryLimit);
      }
    });
  }

  /**
   * Deletes the group's queue, its retry tiers for `policy` and its dead-letter queue, each on a
   * throwaway channel (a refused delete closes its channel). RabbitMQ deletes a missing queue without
   * complaint, so this is idempotent. The channel's exchange stays: other groups are bound to it. The
   * group's own exchange is auto-delete: the broker deletes it with the last of the group's queues.
   */
  async deleteGroup(channel: string, group: string, policy: NormalizedRetryPolicy): Promise<void> {
    if (this.#closing) throw new ClosedError(COMPONENT, 'delete a group');
    const names = groupNames(this.#options.prefix, channel, group);
    const queues = [
      names.queue,
      ...retryTiers(policy)
        .filter((tier) => tier > 0)
        .map((tier) => names.tier(tier)),
      names.deadLetters,
    ];
    await this.#declaring(`delete ${channel}/${group}`, this.#publishLink, async (model) => {
      for (const queue of queues) {
        const ch = await model.createChannel();
        ch.on('error', () => undefined);
        try {
          await ch.deleteQueue(queue);
        } finally {
          await withTimeout(ch.close(), 1_000, () => new Error('close')).catch(() => undefined);
        }
      }
    });
  }

  /**
   * Runs a declaration, again after a transient failure. Replicas that start together declare the
   * same quorum queues at once, and RabbitMQ 3.10 then sometimes closes a declaring *connection*
   * with 541 INTERNAL_ERROR (seen in startup.chaos.test.ts); a connection or channel lost meanwhile
   * is the same case. Declarations are idempotent, so they are retried on the reconnected link with
   * backoff, for at most `publishWaitMs`. A refusal that would recur (406 other arguments, 403 no
   * permission) fails at once.
   */
  async #declaring(
    what: string,
    link: Link,
    work: (model: ChannelModel) => Promise<void>,
    first?: ChannelModel,
  ): Promise<void> {
    const deadline = Date.now() + this.#options.publishWaitMs;
    let delay = this.#options.reconnectInitialDelayMs;
    let model = first;
    for (let attempt = 1; ; attempt++) {
      model ??= await link.ready(Math.max(0, deadline - Date.now()));
      if (!model) throw this.#notConnected(what);
      try {
        await this.#answered(what, link, model, work(model));
        return;
      } catch (error) {
        if (this.#closing || !transientDeclareFailure(error)) throw error;
        if (Date.now() + delay > deadline) {
          throw new TopologyError(
            COMPONENT,
            `cannot ${what}: RabbitMQ did not complete it within ${this.#options.publishWaitMs} ms (publishWaitMs) over ${attempt} attempt(s); last failure: ${scrub((error as Error).message, this.#options.password)}`,
            { cause: error },
          );
        }
        this.#logger.debug(
          `[wharf] [rabbitmq] ${what}: attempt ${attempt} failed (${(error as Error).message}); retrying in ${delay} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay * (0.8 + Math.random() * 0.4)));
      delay = Math.min(delay * 2, this.#options.reconnectMaxDelayMs);
      model = undefined;
    }
  }

  /**
   * Waits for one declaration attempt, at most `declareTimeoutMs`. Past that the broker is not going to
   * answer soon (see the option): the connection is replaced, which fails the attempt (retried on the
   * new connection) and frees every declaration queued behind it.
   */
  async #answered(what: string, link: Link, model: ChannelModel, attempt: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.#options.declareTimeoutMs);
    });
    attempt.catch(() => undefined);
    try {
      if ((await Promise.race([attempt, late])) !== 'late') return;
    } finally {
      clearTimeout(timer);
    }
    if (link.model === model) {
      this.#logger.warn(
        `[wharf] [rabbitmq] ${what}: RabbitMQ left it unanswered for ${this.#options.declareTimeoutMs} ms (declareTimeoutMs; a quorum queue still starting after a restart does this); replacing the connection and trying again`,
      );
      dropConnection(model, new Error(`${what}: no answer within ${this.#options.declareTimeoutMs} ms`));
    }
    throw new TimeoutError(
      COMPONENT,
      `${what}: RabbitMQ did not answer within ${this.#options.declareTimeoutMs} ms (declareTimeoutMs); the connection is replaced, try again`,
    );
  }

  async subscribe(
    request: SubscribeRequest,
    onDelivery: (delivery: Delivery) => Promise<void>,
  ): Promise<AdapterSubscription> {
    if (this.#closing) throw new ClosedError(COMPONENT, 'subscribe');
    const model = await this.#consumeLink.ready(this.#options.publishWaitMs);
    if (!model) throw this.#notConnected('subscribe');
    const own = groupNames(this.#options.prefix, request.channel, request.group);
    const adopted = request.raw === undefined ? undefined : (request.raw.queue ?? request.channel);
    const sub = new RabbitSubscription({
      link: this.#consumeLink,
      topology: this.#consumeTopology,
      publisher: this.#publisher,
      options: this.#options,
      logger: this.#logger,
      // Raw mode: the adopted queue stands in for the group's own; dead letters and tiers stay the group's.
      names: adopted === undefined ? own : { ...own, queue: adopted },
      request,
      onDelivery,
      closing: () => this.#closing !== undefined,
      onStopped: (s) => this.#subscriptions.delete(s),
    });
    this.#subscriptions.add(sub);
    try {
      await this.#declaring(`subscribe ${sub.describe()}`, this.#consumeLink, (m) => sub.start(m), model);
    } catch (error) {
      this.#subscriptions.delete(sub);
      await sub.stop().catch(() => undefined);
      throw error;
    }
    return sub;
  }

  async readDeadLetters(
    channel: string,
    group: string,
    options: { limit: number },
    visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
  ): Promise<void> {
    if (this.#closing) throw new ClosedError(COMPONENT, 'read dead letters');
    const model = await this.#publishLink.ready(this.#options.publishWaitMs);
    if (!model) throw this.#notConnected('read dead letters');
    // Every request bounded: right after a broker restart a quorum queue that is still starting
    // leaves a passive declare unanswered, and a saga reading its dead letters waited forever.
    const answered = <T>(request: Promise<T>): Promise<T> =>
      this.#withinDeclareTimeout(`reading the dead letters of ${channel}/${group}`, request);
    // A channel of its own: the unacked messages it holds go back to the queue when it closes.
    const what = `read the dead letters of ${channel}/${group}`;
    const ch = await answered(model.createChannel()).catch((error: unknown) => {
      throw this.#lostDuring(what, model, error);
    });
    ch.on('error', () => undefined);
    try {
      const names = groupNames(this.#options.prefix, channel, group);
      await readDeadLetters(ch, names, channel, group, options.limit, visit, answered);
    } catch (error) {
      throw this.#lostDuring(what, model, error);
    } finally {
      // A channel whose queue does not answer may not answer its close either.
      await withTimeout(ch.close(), 1_000, () => new Error('close')).catch(() => undefined);
    }
  }

  /** Passive declares, each on a throwaway channel of the publishing connection; see backlog.ts. */
  async backlog(channel: string, group: string, policy: NormalizedRetryPolicy): Promise<GroupBacklog> {
    if (this.#closing) throw new ClosedError(COMPONENT, 'read a backlog');
    const model = await this.#publishLink.ready(this.#options.publishWaitMs);
    if (!model) throw this.#notConnected('read a backlog');
    const prefix = this.#options.prefix;
    // Bounded for the same reason as readDeadLetters: a queue still starting leaves it unanswered.
    return this.#withinDeclareTimeout(
      `reading the backlog of ${channel}/${group}`,
      readBacklog(model, prefix, channel, group, groupNames(prefix, channel, group), policy),
    ).catch((error: unknown) => {
      throw this.#lostDuring(`read the backlog of ${channel}/${group}`, model, error);
    });
  }

  /**
   * What a read that was cut short throws: a connection lost under it (a reset, a broker restart)
   * surfaced as amqplib's own "Channel ended, no reply will be forthcoming" or "Connection closed";
   * it becomes a typed error that says to try again. Other errors pass as they are.
   */
  #lostDuring(what: string, model: ChannelModel, error: unknown): unknown {
    if (error instanceof WharfError) return error;
    if (this.#closing) return new ClosedError(COMPONENT, what);
    const detail = scrub(String((error as Error | undefined)?.message ?? error), this.#options.password);
    if (this.#publishLink.model !== model || CONNECTION_LOST.test(detail)) {
      return new BrokerUnreachableError(
        COMPONENT,
        `cannot ${what}: the connection to RabbitMQ was lost meanwhile (${detail}); the dead letters it had not removed are still there — try again once it is back`,
        { cause: error },
      );
    }
    return error;
  }

  /** `request`, or a `TimeoutError` naming `what` once it has gone unanswered for `declareTimeoutMs`. */
  #withinDeclareTimeout<T>(what: string, request: Promise<T>): Promise<T> {
    const ms = this.#options.declareTimeoutMs;
    return withTimeout(
      request,
      ms,
      () =>
        new TimeoutError(COMPONENT, `${what}: RabbitMQ did not answer within ${ms} ms (declareTimeoutMs); try again`),
    );
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#subscriptions].map((sub) => sub.stop().catch(() => undefined)));
      await this.#connecting?.catch(() => undefined);
      await this.#publisher.drain(this.#options.closeTimeoutMs);
      this.#publisher.close();
      await Promise.all([this.#consumeLink.close(), this.#publishLink.close()]);
    })();
    return this.#closing;
  }

  raw(): RabbitMqRaw {
    return { publishing: this.#publishLink.model, consuming: this.#consumeLink.model };
  }

  #notConnected(what: string): TopologyError {
    return new TopologyError(
      COMPONENT,
      `cannot ${what}: not connected to RabbitMQ (reconnecting for more than ${this.#options.publishWaitMs} ms) — check that the broker is running`,
    );
  }
}

/** amqplib's words for a channel or connection that went away under a request. */
const CONNECTION_LOST = /Channel ended|Channel closed|Connection closed|Connection closing|ECONNRESET|EPIPE/;

/** A declaration failure that another attempt may not meet: anything but a refusal that would recur. */
function transientDeclareFailure(error: unknown): boolean {
  if (error instanceof NotAuthorizedError) return false;
  const cause = error instanceof TopologyError ? (error as { cause?: unknown }).cause : error;
  const code = replyCode(cause);
  return code !== 406 && code !== 403 && !(error instanceof ClosedError) && !(error instanceof TopologyMismatchError);
}

function attributeBytes(message: WireMessage): number {
  let n = 0;
  for (const name in message.attributes) n += name.length + 16 + (message.attributes[name] as string).length * 3;
  return n;
}
