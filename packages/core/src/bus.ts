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
import { createStats, type Stats } from './stats.js';
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
  publish<T>(channel: string, input: EventInput<T>): Promise<CloudEvent<T>> {
    return this.#publishOne(channel, input, undefined);
  }

  /** `publish`, and `ctx.publish` with the event being handled as `cause` (for tracing). */
  async #publishOne<T>(channel: string, input: EventInput<T>, cause: CloudEvent | undefined): Promise<CloudEvent<T>> {
    if (this.#closing) throw new ClosedError('core', 'publish');
    checkChannel(channel);
    const event = createEvent<T>(input, this.#source);
    const scope = this.#instrumentPublish(channel, [event], false, cause);
    if (scope === undefined) {
      await this.#send(channel, [this.#encode(channel, event)]);
      return event;
    }
    try {
      const send = () => this.#send(channel, [this.#encode(channel, event)]);
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
  async #send(channel: string, wires: WireMessage[]): Promise<void> {
    // Connected already (the usual case): no await, which would cost a turn per publish.
    const adapter = this.#adapter ?? (await this.connect());
    const limit = adapter.capabilities.maxMessageBytes;
    for (const wire of wires) {
      if (wire.body.length > limit) throw new MessageTooLargeError(adapter.name, wire.body.length, limit);
    }
    if (this.#closing) throw new ClosedError('core', 'publish');
    const started = performance.now();
    await this.#gate.run(wires.length, () => adapter.publish(channel, wires));
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
    const adapter = await this.connect();
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
      { channel, group: options.group, concurrency, policy, incident: this.#incident },
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
    const adapter = await this.connect();
    let replayed = 0;
    await adapter.readDeadLetters(channel, group, { limit: options.limit ?? 100 }, async (stored) => {
      const { event } = toDeadLetter(stored);
      if (!event) return false;
      const again = { ...event, replayed: new Date().toISOString() } as CloudEvent;
      // Through the instrumentation like any publish, so metrics count it and a tracer sees it.
      const scope = this.#instrumentPublish(channel, [again], false, undefined, true);
      const send = (): Promise<void> => {
        const wire = [encodeEvent(again)];
        return adapter.publishToGroup ? adapter.publishToGroup(channel, group, wire) : adapter.publish(channel, wire);
      };
      try {
        await (scope?.run === undefined ? send() : scope.run(send));
      } catch (error) {
        scope?.end(error);
        throw error;
      }
      scope?.end();
      replayed++;
      return true;
    });
    return replayed;
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
      await Promise.all([...this.#subscriptions].map((s) => s.close()));
      const ready = this.#ready;
      if (ready) {
        const adapter = await ready.catch(() => undefined);
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
      const drained = this.#idle().then(() => true);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), this.timeoutMs);
      });
      const done = await Promise.race([drained, timedOut]);
      clearTimeout(timer);
      if (!done) {
        this.shutdown.abort(
          new TimeoutError(
            'core',
            `handlers on ${this.channel}/${this.group} did not finish within ${this.timeoutMs} ms`,
          ),
        );
        await this.#idle();
      }
      this.onClose?.();
    })();
    return this.#closing;
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
