import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Adapter, AdapterSubscription, Delivery, GroupBacklog, StoredDeadLetter } from './adapter.js';
import {
  type BusObserver,
  dispatchByType,
  type EventValidator,
  type Handler,
  type HandlerMap,
  type InFlight,
  Shutdown,
  settle,
} from './consumer.js';
import { type DeadLetterInfo, parseDeadLetterHeaders } from './dead-letter.js';
import { type DedupStore, MemoryDedupStore } from './dedup.js';
import {
  type CloudEvent,
  createEvent,
  decodeEvent,
  type EventInput,
  encodeEvent,
  type WireMessage,
} from './envelope.js';
import {
  ClosedError,
  ConfigError,
  InvalidEventError,
  MessageTooLargeError,
  TimeoutError,
  UnsupportedError,
} from './errors.js';
import { type Incident, logIncident } from './incident.js';
import {
  combineInstrumentations,
  type Instrumentation,
  type PublishScope,
  publishOperation,
} from './instrumentation.js';
import { loadAdapter } from './load.js';
import { consoleLogger, type Logger } from './logger.js';
import { type NormalizedRetryPolicy, normalizeRetryPolicy, type RetryPolicy } from './policy.js';
import { type BackpressureMode, PublishGate } from './publish-gate.js';
import { checkRawSubscribe, type PublishOptions, type RawSubscribeOptions } from './raw.js';
import { Requester, type RequestOptions, type Responder, replyingHandler } from './request.js';
import { createStats, type Stats } from './stats.js';
import { withTimeout } from './timeout.js';
import { ADAPTER_PACKAGES, parseBrokerUrl } from './url.js';

/** Options of {@link createBus}. */
export interface BusOptions {
  /** Broker URL (`memory://`, `amqp://…`, `kafka://…`, `nats://…`). Default: `WHARF_BROKER`, else `memory://`. */
  url?: string;
  /** An adapter instance to use instead of loading one from the URL. */
  adapter?: Adapter;
  /** Adapter-specific options (TLS files, SASL, prefetch…), passed to the adapter factory. */
  adapterOptions?: Record<string, unknown>;
  /** Default CloudEvents `source` of published events. Default `urn:wharf:<hostname>`. */
  source?: string;
  logger?: Logger;
  /** Idempotency store shared by this bus's subscriptions. Default: in-memory, 100k entries, 24 h. */
  dedup?: DedupStore;
  /** Contract checks on publish and consume (see `@wharf/asyncapi`). */
  validator?: EventValidator;
  /** Receives every settlement and publish, for simple counters (see `instrumentation` for metrics and tracing). */
  observer?: BusObserver;
  /**
   * Metrics and tracing hooks (`@wharf/prometheus`, `@wharf/otel`, or your own
   * {@link Instrumentation}); several are called in array order.
   */
  instrumentation?: Instrumentation | readonly Instrumentation[];
  /** How long `close()` waits for running handlers before aborting them. Default 10 s. */
  shutdownTimeoutMs?: number;
  /**
   * Every publish settles within this bound: resolved once the broker confirmed, otherwise rejected
   * with `PublishTimeoutError` (or the broker's own error). Default 60 s, longer than the
   * adapters' own waits for a reconnect (RabbitMQ `publishWaitMs` 30 s, Kafka `connectTimeoutMs` 60 s),
   * so their more specific errors come first.
   */
  publishTimeoutMs?: number;
  /**
   * Events handed to the broker and not yet confirmed, at most. Past it, a publish waits for room
   * (within `publishTimeoutMs`) or fails at once with `BackpressureError`, as `backpressure` says,
   * so an outage never buffers without bound. Default 10,000.
   */
  maxPendingPublishes?: number;
  /** `'wait'` (default) or `'fail'`: what a publish does when `maxPendingPublishes` is reached. */
  backpressure?: BackpressureMode;
}

/** Options of {@link Bus.subscribe}. */
export interface SubscribeOptions {
  /** Consumer group: subscribers in one group compete, different groups each get every event. */
  group: string;
  /** Handlers running at once for this subscription. Default 1. */
  concurrency?: number;
  retry?: RetryPolicy;
  /** Dead-letter failed events (default `true`); `false` discards them with an error log. */
  deadLetter?: boolean;
  /** Skip events whose `source`+`id` this group already handled (default `true`). */
  dedup?: boolean;
  /**
   * For a group that lives as long as this process (reply inboxes use it): the broker deletes the
   * group's queue (NATS: durable consumer) once it has had no consumer this long, so a process
   * killed without `close()` leaves nothing that fills up. RabbitMQ `x-expires`, NATS
   * `inactive_threshold`; Kafka (whose consumer groups expire with their offsets) and memory
   * ignore it. Events published to the group while it has no consumer are deleted with it.
   */
  expireWhenIdleMs?: number;
  /**
   * Consume plain payloads (no CloudEvents attributes) from an existing queue, topic or subject that
   * a producer outside Wharf declared, wrapping each into an event: `type` and `source` from here,
   * `id` from the broker's message id, else a hash of the body (see `wrapPlainMessage`). Retries,
   * dead letters, dedup and contract validation apply as usual. Needs an adapter whose
   * `capabilities.rawMessages` is true (else `UnsupportedError`); see the adapter's README.
   *
   * @example
   * ```ts
   * await bus.subscribe('orders', {
   *   group: 'billing',
   *   raw: { queue: 'order_events', type: 'OrderPlaced', source: 'urn:legacy:orders' },
   * }, async (event) => console.log(event.id, event.data));
   * ```
   */
  raw?: RawSubscribeOptions;
}

/** A running subscription. */
export interface Subscription {
  readonly channel: string;
  readonly group: string;
  /** Stops taking events, waits for running handlers (bounded), then returns. Idempotent. */
  close(): Promise<void>;
}

/** A dead letter as listed: the event (when it could be decoded) and its metadata. */
export interface DeadLetter {
  readonly event: CloudEvent | undefined;
  readonly info: DeadLetterInfo | undefined;
  /** Why decoding failed, for `undecodable` dead letters. */
  readonly decodeError: string | undefined;
}

/**
 * The event bus. Create it with {@link createBus}; it connects on first use.
 *
 * @example
 * ```ts
 * const bus = createBus({ url: 'memory://' });
 * await bus.subscribe('orders', { group: 'billing' }, async (event) => {
 *   console.log(event.type, event.data);
 * });
 * await bus.publish('orders', { type: 'OrderPlaced', data: { orderId: 'o-1' } });
 * await bus.close();
 * ```
 */
export class Bus {
  readonly #options: BusOptions;
  readonly #source: string;
  readonly #logger: Logger;
  readonly #dedup: DedupStore;
  readonly #stats: Stats = createStats();
  readonly #subscriptions = new Set<ActiveSubscription>();
  #adapter: Adapter | undefined;
  #ready: Promise<Adapter> | undefined;
  #closing: Promise<void> | undefined;
  readonly #gate: PublishGate;
  readonly #instrumentation: Instrumentation | undefined;
  #requester: Requester | undefined;
  /** Unique per bus: the group of its reply inboxes. */
  readonly #replyGroup = `reply-${randomBytes(6).toString('hex')}`;

  constructor(options: BusOptions = {}) {
    this.#options = options;
    this.#source = options.source ?? `urn:wharf:${hostname()}`;
    this.#logger = options.logger ?? consoleLogger(process.env.WHARF_LOG === 'debug' ? 'debug' : 'warn');
    this.#dedup = options.dedup ?? new MemoryDedupStore();
    if (!options.adapter) parseBrokerUrl(this.url);
    const instrumentation = options.instrumentation;
    if (instrumentation !== undefined) {
      const list: readonly Instrumentation[] = Array.isArray(instrumentation)
        ? instrumentation
        : [instrumentation as Instrumentation];
      if (list.length > 0) this.#instrumentation = combineInstrumentations(list, this.#logger);
    }
    const timeout = options.shutdownTimeoutMs;
    if (timeout !== undefined && !(Number.isFinite(timeout) && timeout >= 0)) {
      throw new ConfigError('core', `shutdownTimeoutMs must be a number of milliseconds >= 0, got ${String(timeout)}`);
    }
    const publishTimeout = options.publishTimeoutMs ?? 60_000;
    if (!(Number.isFinite(publishTimeout) && publishTimeout > 0)) {
      throw new ConfigError(
        'core',
        `publishTimeoutMs must be a number of milliseconds > 0, got ${String(publishTimeout)}`,
      );
    }
    const maxPending = options.maxPendingPublishes ?? 10_000;
    if (!(Number.isInteger(maxPending) && maxPending >= 1)) {
      throw new ConfigError('core', `maxPendingPublishes must be an integer >= 1, got ${String(maxPending)}`);
    }
    const mode = options.backpressure ?? 'wait';
    if (mode !== 'wait' && mode !== 'fail') {
      throw new ConfigError('core', `backpressure must be 'wait' or 'fail', got ${JSON.stringify(mode)}`);
    }
    this.#gate = new PublishGate('core', publishTimeout, maxPending, mode, (count) => {
      this.#stats.publishTimeouts += count;
    });
  }

  /** The broker URL this bus uses (may contain credentials). */
  get url(): string {
    return this.#options.url ?? process.env.WHARF_BROKER ?? 'memory://';
  }

  /** Loads the adapter and connects; called for you by the first publish or subscribe. Idempotent. */
  connect(): Promise<Adapter> {
    if (this.#closing) return Promise.reject(new ClosedError('core', 'connect'));
    this.#ready ??= (async () => {
      const adapter =
        this.#options.adapter ??
        (await loadAdapter({ ...this.#options.adapterOptions, url: this.url, logger: this.#logger }));
      await adapter.connect();
      this.#adapter = adapter;
      return adapter;
    })();
    // A failed connect may be retried by the next call.
    this.#ready.catch(() => {
      this.#ready = undefined;
    });
    return this.#ready;
  }

  /** The connected adapter (for `raw()` access and tools). */
  get adapter(): Adapter | undefined {
    return this.#adapter;
  }

  /**
   * Publishes one event; resolves with the complete CloudEvent once the broker durably accepted it.
   * Throws `InvalidEventError`, `ContractViolationError` (nothing sent), `ClosedError` or a broker error.
   */
  publish<T>(channel: string, input: EventInput<T>, options?: PublishOptions): Promise<CloudEvent<T>> {
    return this.#publishOne(channel, input, undefined, options);
  }

  /** `publish`, and `ctx.publish` with the event being handled as `cause` (for tracing). */
  async #publishOne<T>(
    channel: string,
    input: EventInput<T>,
    cause: CloudEvent | undefined,
    options?: PublishOptions,
  ): Promise<CloudEvent<T>> {
    if (this.#closing) throw new ClosedError('core', 'publish');
    checkChannel(channel);
    const event = createEvent<T>(input, this.#source);
    const raw = options?.raw;
    if (raw !== undefined) {
      if (raw === null || typeof raw !== 'object')
        throw new ConfigError('core', 'publish option raw must be an object');
      if (raw.queue !== undefined && (typeof raw.queue !== 'string' || raw.queue.length === 0)) {
        throw new ConfigError('core', 'raw.queue must be a non-empty string when given');
      }
    }
    const scope = this.#instrumentPublish(channel, [event], false, cause);
    if (scope === undefined) {
      await this.#send(channel, [this.#encode(channel, event)], raw === undefined ? undefined : { raw });
      return event;
    }
    try {
      const send = () => this.#send(channel, [this.#encode(channel, event)], raw === undefined ? undefined : { raw });
      await (scope.run === undefined ? send() : scope.run(send));
    } catch (error) {
      scope.end(error);
      throw error;
    }
    scope.end();
    return event;
  }

  /** Lets instrumentation see (and set trace context on) events before they are encoded. */
  #instrumentPublish(
    channel: string,
    events: readonly CloudEvent<unknown>[],
    batch: boolean,
    cause: CloudEvent | undefined,
    replay = false,
  ): PublishScope | undefined {
    if (this.#instrumentation?.publish === undefined) return undefined;
    const operation = publishOperation(this.#system, channel, events as CloudEvent[], batch, cause, replay);
    const scope = this.#instrumentation.publish(operation);
    operation.seal();
    return scope;
  }

  /** The adapter's name (`messaging.system`), known from the URL before the adapter is loaded. */
  get #system(): string {
    const adapter = this.#adapter ?? this.#options.adapter;
    if (adapter !== undefined) return adapter.name;
    const pkg = ADAPTER_PACKAGES[parseBrokerUrl(this.url).scheme] ?? 'unknown';
    return pkg.replace('@wharf/', '');
  }

  /**
   * Publishes several events in one pipelined round trip; every event is checked before any is sent.
   * Resolves once the broker accepted all of them; rejects if any was not accepted.
   */
  async publishBatch<T>(channel: string, inputs: readonly EventInput<T>[]): Promise<CloudEvent<T>[]> {
    if (this.#closing) throw new ClosedError('core', 'publish');
    checkChannel(channel);
    if (!Array.isArray(inputs)) throw new InvalidEventError('publishBatch takes an array of events');
    const events = inputs.map((input) => createEvent<T>(input, this.#source));
    const scope = this.#instrumentPublish(channel, events, true, undefined);
    try {
      const send = () =>
        this.#send(
          channel,
          events.map((event) => this.#encode(channel, event)),
        );
      await (scope?.run === undefined ? send() : scope.run(send));
    } catch (error) {
      scope?.end(error);
      throw error;
    }
    scope?.end();
    return events;
  }

  /** Checks an event against the contract (when one is configured) and encodes it for the adapter. */
  #encode(channel: string, event: CloudEvent<unknown>): WireMessage {
    this.#options.validator?.validate('publish', channel, event as CloudEvent);
    return encodeEvent(event as CloudEvent);
  }

  /** Sends encoded events once each fits the adapter's size limit; resolves when the broker accepted them all. */
  async #send(channel: string, wires: WireMessage[], options?: PublishOptions): Promise<void> {
    // Connected already (the usual case): no await, which would cost a turn per publish.
    const adapter = this.#adapter ?? (await this.connect());
    if (options?.raw !== undefined) requireRaw(adapter, 'publish');
    const limit = adapter.capabilities.maxMessageBytes;
    for (const wire of wires) {
      if (wire.body.length > limit) throw new MessageTooLargeError(adapter.name, wire.body.length, limit);
    }
    if (this.#closing) throw new ClosedError('core', 'publish');
    const started = performance.now();
    await this.#gate.run(wires.length, () =>
      options === undefined ? adapter.publish(channel, wires) : adapter.publish(channel, wires, options),
    );
    this.#stats.published += wires.length;
    this.#options.observer?.onPublished?.(channel, wires.length, performance.now() - started);
  }

  /**
   * Declares groups on a channel so that events published from now on are kept for them,
   * even before any of their subscribers runs.
   */
  async declare(channel: string, options: { groups: readonly string[]; retry?: RetryPolicy }): Promise<void> {
    checkChannel(channel);
    for (const group of options.groups) checkName(group, 'group');
    const policy = normalizeRetryPolicy(options.retry);
    const adapter = await this.connect();
    await adapter.declare(channel, options.groups, policy);
  }

  /**
   * Runs `handler` for every event of `channel` that reaches `group`. Resolves once consuming.
   * Give a map of handlers by event `type` to dead-letter events of other types as `no-handler`.
   */
  async subscribe<T = unknown>(
    channel: string,
    options: SubscribeOptions,
    handler: Handler<T> | HandlerMap,
  ): Promise<Subscription> {
    if (this.#closing) throw new ClosedError('core', 'subscribe');
    checkChannel(channel);
    if (options === null || typeof options !== 'object')
      throw new ConfigError('core', 'subscribe needs options with a group');
    checkName(options.group, 'group');
    if (typeof handler !== 'function' && (handler === null || typeof handler !== 'object')) {
      throw new ConfigError('core', 'subscribe needs a handler function or a map of handlers by event type');
    }
    const run = typeof handler === 'function' ? (handler as Handler) : dispatchByType(handler);
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
      throw new ConfigError('core', `concurrency must be an integer from 1 to 10000, got ${String(concurrency)}`);
    }
    const policy = normalizeRetryPolicy(options.retry);
    const expireWhenIdleMs = options.expireWhenIdleMs;
    if (
      expireWhenIdleMs !== undefined &&
      !(Number.isInteger(expireWhenIdleMs) && expireWhenIdleMs >= 1_000 && expireWhenIdleMs <= 2_147_483_647)
    ) {
      throw new ConfigError(
        'core',
        `expireWhenIdleMs must be a whole number of milliseconds, at least 1000, got ${String(expireWhenIdleMs)}`,
      );
    }
    const raw = options.raw;
    if (raw !== undefined) checkRawSubscribe(raw);
    const adapter = await this.connect();
    if (raw !== undefined) requireRaw(adapter, 'subscribe');
    const active = new ActiveSubscription(channel, options.group, policy);
    const setup = {
      channel,
      group: options.group,
      policy,
      handler: run,
      deadLetter: options.deadLetter ?? true,
      dedup: options.dedup === false ? undefined : this.#dedup,
      inflight: options.dedup === false ? undefined : this.#inflightOf(options.group),
      validator: this.#options.validator,
      logger: this.#logger,
      stats: this.#stats,
      shutdown: active.shutdown,
      publish: <E>(target: string, input: EventInput<E>, cause: CloudEvent) =>
        this.#publishOne<E>(target, input, cause),
      observer: this.#options.observer,
      instrumentation: this.#instrumentation,
      system: adapter.name,
      incident: this.#incident,
    };
    active.native = await adapter.subscribe(
      {
        channel,
        group: options.group,
        concurrency,
        policy,
        incident: this.#incident,
        ...(raw === undefined ? {} : { raw }),
        ...(expireWhenIdleMs === undefined ? {} : { expireWhenIdleMs }),
      },
      (delivery: Delivery) => active.track(settle(setup, delivery), this.#incident),
    );
    this.#subscriptions.add(active);
    active.onClose = () => this.#subscriptions.delete(active);
    active.timeoutMs = this.#options.shutdownTimeoutMs ?? 10_000;
    return active;
  }

  /** Lists up to `limit` dead letters of a channel's group without removing them. */
  async listDeadLetters(channel: string, group: string, options: { limit?: number } = {}): Promise<DeadLetter[]> {
    const adapter = await this.connect();
    const out: DeadLetter[] = [];
    await adapter.readDeadLetters(channel, group, { limit: options.limit ?? 100 }, async (stored) => {
      out.push(toDeadLetter(stored));
      return false;
    });
    return out;
  }

  /**
   * Publishes up to `limit` dead letters back to their group (to the whole channel where the adapter
   * cannot address one group) with a fresh attempt counter and the `replayed` extension, removing
   * each from the dead-letter destination once the broker accepted it. Undecodable dead letters
   * stay. Resolves with the number replayed.
   */
  async replayDeadLetters(channel: string, group: string, options: { limit?: number } = {}): Promise<number> {
    let replayed = 0;
    await this.visitDeadLetters(channel, group, { limit: options.limit ?? 100 }, async ({ event, info }) => {
      if (!event) return false;
      await this.republish(channel, { ...event, replayed: new Date().toISOString() } as CloudEvent, {
        group,
        rawQueue: info?.rawQueue,
      });
      replayed++;
      return true;
    });
    return replayed;
  }

  /**
   * Visits up to `limit` dead letters of a channel's group, oldest first; one is removed only when
   * `visit` resolves `true`. A `visit` that rejects leaves its dead letter in place and ends the
   * read with that rejection. The building block of `@wharf/core`'s `DeadLetterQueue`.
   */
  async visitDeadLetters(
    channel: string,
    group: string,
    options: { limit: number },
    visit: (deadLetter: DeadLetter) => Promise<boolean>,
  ): Promise<void> {
    if (this.#closing) throw new ClosedError('core', 'read dead letters');
    checkChannel(channel);
    checkName(group, 'group');
    const adapter = await this.connect();
    await adapter.readDeadLetters(channel, group, options, (stored) => visit(toDeadLetter(stored)));
  }

  /**
   * Publishes a complete event as it is (its id, source and extensions kept), resolving once the
   * broker confirmed it: to `group` only where the adapter can address one group (then resolves
   * `true`), else to the whole channel. With `rawQueue` (a raw subscription's dead letter names
   * it), its data goes back to that adopted queue (topic, subject) as a plain message, and it
   * resolves `true`: only the raw consumer reads it. It is counted and traced as a replay.
   * `validate` checks it against the contract first (an edited payload); a replay of the event as
   * it failed is not checked, since fixing the consumer's contract may be what made it valid.
   */
  async republish(
    channel: string,
    event: CloudEvent,
    options: { group?: string | undefined; validate?: boolean; rawQueue?: string | undefined } = {},
  ): Promise<boolean> {
    if (this.#closing) throw new ClosedError('core', 'publish');
    checkChannel(channel);
    if (options.validate) this.#options.validator?.validate('publish', channel, event);
    const adapter = this.#adapter ?? (await this.connect());
    const { group, rawQueue } = options;
    if (rawQueue !== undefined) requireRaw(adapter, 'replay');
    const toGroup = rawQueue !== undefined || (group !== undefined && adapter.publishToGroup !== undefined);
    // Through the instrumentation like any publish, so metrics count it and a tracer sees it.
    const scope = this.#instrumentPublish(channel, [event], false, undefined, true);
    const send = (): Promise<void> => {
      const wire = [encodeEvent(event)];
      if (rawQueue !== undefined) return adapter.publish(channel, wire, { raw: { queue: rawQueue } });
      return group !== undefined && adapter.publishToGroup
        ? adapter.publishToGroup(channel, group, wire)
        : adapter.publish(channel, wire);
    };
    try {
      await (scope?.run === undefined ? send() : scope.run(send));
    } catch (error) {
      scope?.end(error);
      throw error;
    }
    scope?.end();
    return toGroup;
  }

  /**
   * Reads a group's backlog from the broker: ready, in flight, delayed (held for a retry) and dead
   * letters, plus the consumers attached where the broker knows them. Read-only: it creates nothing.
   * `retry` is the group's retry policy (default: the default policy); on brokers that cannot list a
   * group's retry tiers its tiers are the ones counted as delayed.
   * Throws `UnknownGroupError` for a group never declared on the channel, `UnsupportedError` when the
   * adapter cannot report a backlog.
   */
  async backlog(channel: string, group: string, options: { retry?: RetryPolicy } = {}): Promise<GroupBacklog> {
    if (this.#closing) throw new ClosedError('core', 'read a backlog');
    checkChannel(channel);
    checkName(group, 'group');
    const policy = normalizeRetryPolicy(options.retry);
    const adapter = await this.connect();
    if (!adapter.backlog) {
      throw new UnsupportedError(
        'core',
        `the ${adapter.name} adapter cannot report a backlog (it has no backlog member) — upgrade the adapter package`,
      );
    }
    return adapter.backlog(channel, group, policy);
  }

  /**
   * The group this bus's reply inboxes use on reply channels: unique per bus, so every requester
   * process gets the replies of a reply channel and keeps its own. Name it to delete the group
   * when cleaning up a reply channel.
   */
  get replyGroup(): string {
    return this.#replyGroup;
  }

  #requests(): Requester {
    this.#requester ??= new Requester({
      group: this.#replyGroup,
      logger: this.#logger,
      stats: this.#stats,
      subscribe: (channel, options, handler) => this.subscribe(channel, options, handler),
      publish: (channel, input) => this.#publishOne(channel, input, undefined),
      checkChannel,
    });
    return this.#requester;
  }

  /**
   * Publishes a request and resolves with the first reply to it: the reply event, whose
   * `inreplyto` is the request's id. The request carries `replyto` (`options.replyTo`, default
   * `<channel>.reply`); the first request on a reply channel subscribes this bus's inbox there
   * (group {@link Bus.replyGroup}) and sends only once it consumes. Rejects with
   * `RequestTimeoutError` after `timeoutMs` (default 30 s) without a reply, with the publish's error
   * when the request was not accepted, and with `ClosedError` when the bus closes first; nothing of
   * the request stays behind (timer, abort listener, pending entry). A reply arriving later, or a
   * second copy of one, is dropped (`stats().repliesDropped`).
   *
   * @example
   * ```ts
   * await bus.respond('prices.quote', { group: 'pricing' }, (event) => ({
   *   type: 'PriceQuoted',
   *   data: { sku: (event.data as { sku: string }).sku, cents: 1999 },
   * }));
   * const reply = await bus.request('prices.quote', { type: 'QuotePrice', data: { sku: 'A-1' } }, { timeoutMs: 5_000 });
   * reply.data; // { sku: 'A-1', cents: 1999 }
   * ```
   */
  async request<R = unknown, T = unknown>(
    channel: string,
    input: EventInput<T>,
    options: RequestOptions = {},
  ): Promise<CloudEvent<R>> {
    if (this.#closing) throw new ClosedError('core', 'request');
    return (await this.#requests().request(channel, input as EventInput<unknown>, options)) as CloudEvent<R>;
  }

  /**
   * Subscribes this bus's reply inbox on `replyTo` ahead of the first request, so that request does
   * not wait for it (a Kafka group join takes a second or more). `request` does it when needed.
   */
  async listenForReplies(replyTo: string): Promise<void> {
    if (this.#closing) throw new ClosedError('core', 'listen for replies');
    await this.#requests().listen(replyTo);
  }

  /**
   * Subscribes a responder to the requests of `channel`: it resolves with the reply, which is
   * published to the request's `replyto` channel with `inreplyto` set, before the request is acked.
   * Everything else is `subscribe`'s: group, retries, dead letters, dedup. A responder that throws
   * is retried per the policy and then dead-lettered, sending no reply (the requester times out);
   * a redelivered request that the group already answered is skipped by dedup, its reply not sent
   * again. A request whose requester is gone (no group on the reply channel, on brokers that report
   * it) is acked with a warning.
   */
  async respond<T = unknown, R = unknown>(
    channel: string,
    options: SubscribeOptions,
    responder: Responder<T, R>,
  ): Promise<Subscription> {
    if (typeof responder !== 'function') throw new ConfigError('core', 'respond needs a responder function');
    return this.subscribe(channel, options, replyingHandler(responder as Responder, this.#logger));
  }

  /** Dedup keys being handled per group, shared by this bus's subscriptions of the group. */
  readonly #inflight = new Map<string, InFlight>();

  #inflightOf(group: string): InFlight {
    let inflight = this.#inflight.get(group);
    if (inflight === undefined) {
      inflight = new Map();
      this.#inflight.set(group, inflight);
    }
    return inflight;
  }

  /** Logs, counts and observes an event that left the normal path; adapters report through it too. */
  readonly #incident = (incident: Incident): void => {
    this.#stats.incidents++;
    logIncident(this.#logger, incident);
    try {
      this.#options.observer?.onIncident?.(incident);
    } catch (error) {
      this.#logger.error('[wharf] [core] the observer threw on an incident', { error: String(error) });
    }
  };

  /** Events handed to the broker and not yet confirmed. */
  get pendingPublishes(): number {
    return this.#gate.pending;
  }

  /** A snapshot of this bus's counters. */
  stats(): Readonly<Stats> {
    return { ...this.#stats };
  }

  /**
   * Stops taking events, waits for running handlers (up to `shutdownTimeoutMs`), aborts the rest
   * (their events are redelivered later), then closes the broker connection. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#requester?.close();
      await Promise.all([...this.#subscriptions].map((s) => s.close()));
      const ready = this.#ready;
      if (ready) {
        const adapter = await ready.catch(() => undefined);
        if (adapter !== undefined) await this.#requester?.deleteInboxes(adapter);
        await adapter?.close();
      }
    })();
    return this.#closing;
  }
}

class ActiveSubscription implements Subscription {
  readonly shutdown = new Shutdown();
  /** Settlements running; a count rather than a set of promises (and a `finally` each) per delivery. */
  #inflight = 0;
  #drained: (() => void) | undefined;
  native: AdapterSubscription | undefined;
  onClose: (() => void) | undefined;
  timeoutMs = 10_000;
  #closing: Promise<void> | undefined;

  constructor(
    readonly channel: string,
    readonly group: string,
    readonly policy: NormalizedRetryPolicy,
  ) {}

  #report: ((incident: Incident) => void) | undefined;

  /** Counts a settlement while it runs, so close() can wait for it. */
  track(work: Promise<void>, report: (incident: Incident) => void): Promise<void> {
    this.#report = report;
    this.#inflight++;
    return work.then(this.#left, this.#failed);
  }

  readonly #left = (): void => {
    if (--this.#inflight === 0) this.#drained?.();
  };

  // settle() handles every failure it expects; anything else is a bug that must not pass quietly.
  readonly #failed = (error: unknown): never => {
    this.#left();
    this.#report?.({
      kind: 'other',
      component: 'core',
      channel: this.channel,
      group: this.group,
      message: 'settling an event failed unexpectedly; the adapter decides whether it is redelivered',
      error,
    });
    throw error;
  };

  /** Resolves when no settlement runs. */
  #idle(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        this.#drained = undefined;
        previous?.();
        resolve();
      };
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.native?.stop();
      if (!(await this.#idleWithin(this.timeoutMs))) {
        this.shutdown.abort(
          new TimeoutError(
            'core',
            `handlers on ${this.channel}/${this.group} did not finish within ${this.timeoutMs} ms`,
          ),
        );
        // The aborted handlers settle at once; what still runs after as long again is the adapter's
        // settling (a broker call left unanswered). Waiting for it without a bound kept a process
        // from exiting; its events are not settled, so the broker gives them again once the
        // connection closes.
        if (!(await this.#idleWithin(this.timeoutMs))) {
          this.#report?.({
            kind: 'other',
            component: 'core',
            channel: this.channel,
            group: this.group,
            message: `${this.#inflight} settlement(s) did not end within ${this.timeoutMs} ms of the abort; closing anyway (their events are delivered again)`,
            error: undefined,
          });
        }
      }
      this.onClose?.();
    })();
    return this.#closing;
  }

  /** Whether no settlement runs within `ms`. */
  #idleWithin(ms: number): Promise<boolean> {
    return withTimeout(
      this.#idle().then(() => true),
      ms,
      () => new Error('settlements still running'),
    ).catch(() => false);
  }
}

function toDeadLetter(stored: StoredDeadLetter): DeadLetter {
  const info = parseDeadLetterHeaders(stored.headers);
  if (!stored.decoded.ok) return { event: undefined, info, decodeError: stored.decoded.error.message };
  try {
    return { event: decodeEvent(stored.decoded.message), info, decodeError: undefined };
  } catch (error) {
    return { event: undefined, info, decodeError: (error as Error).message };
  }
}

/** Raw mode needs the adapter's support; an adapter without it would read the option as absent. */
function requireRaw(adapter: Adapter, what: string): void {
  if (!adapter.capabilities.rawMessages) {
    throw new UnsupportedError(
      'core',
      `the ${adapter.name} adapter has no raw mode (capabilities.rawMessages is false): it cannot ${what} plain messages`,
    );
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

function checkName(name: unknown, what: string): void {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(
      'core',
      `${what} name ${JSON.stringify(name)} is invalid: use 1-200 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
}

function checkChannel(channel: unknown): void {
  checkName(channel, 'channel');
}

/**
 * Creates a bus. No I/O happens until the first publish, subscribe or `connect()`.
 * Throws `InvalidUrlError` at once for a malformed URL or unknown scheme.
 */
export function createBus(options: BusOptions = {}): Bus {
  return new Bus(options);
}
