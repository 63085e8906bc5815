import {
  type Adapter,
  type AdapterSubscription,
  type Capabilities,
  ClosedError,
  DEFAULT_CAPABILITIES,
  type Delivery,
  type GroupBacklog,
  type NormalizedRetryPolicy,
  type PublishRequestOptions,
  type StoredDeadLetter,
  type SubscribeRequest,
  UnsupportedError,
  type WireMessage,
} from '@wharf/core';
import { RealTimeError } from './errors.js';
import type { Tracker } from './tracker.js';

/** How the test bus changes what reaches the broker. */
export interface Isolation {
  /** Put before every channel and group name on the broker ('' on memory, whose broker is private). */
  readonly prefix: string;
  /** Retry delays are multiplied by this before they reach the broker (1 on memory). */
  readonly timeScale: number;
  /** The longest scaled delay a real broker may hold; longer ones throw `RealTimeError`. */
  readonly maxRealDelayMs: number;
}

/** A delay as the broker holds it: scaled, at least 1 ms unless it was 0. */
export function scaleDelay(ms: number, timeScale: number): number {
  if (timeScale === 1 || ms === 0) return ms;
  return Math.max(1, Math.round(ms * timeScale));
}

/**
 * Wraps an adapter so that a test (a) owns its names on a shared broker, (b) sees retry delays scaled
 * down to what a test can wait for, and (c) reports publishes and subscriptions to the tracker,
 * always under the names the service code uses. The core above it is untouched: handlers, settlement
 * and dead-letter metadata are exactly what production runs.
 */
export class IsolatedAdapter implements Adapter {
  #inner: Adapter | undefined;
  #loading: Promise<Adapter> | undefined;

  /** `load` creates the real adapter on first connect, so the test bus can be created synchronously. */
  constructor(
    readonly name: string,
    private readonly load: () => Promise<Adapter>,
    private readonly isolation: Isolation,
    private readonly tracker: Tracker,
  ) {}

  get capabilities(): Capabilities {
    return this.#inner?.capabilities ?? DEFAULT_CAPABILITIES;
  }

  get #adapter(): Adapter {
    if (!this.#inner) throw new ClosedError('testing', 'use the test bus before connect()');
    return this.#inner;
  }

  async connect(): Promise<void> {
    this.#loading ??= this.load();
    this.#inner = await this.#loading;
    await this.#inner.connect();
  }

  async publishToGroup(channel: string, group: string, messages: readonly WireMessage[]): Promise<void> {
    const inner = this.#adapter;
    // Where the broker cannot address one group, a replay goes to the whole channel, as the core does.
    if (!inner.publishToGroup) return this.publish(channel, messages);
    this.tracker.publishingToGroup(channel, group, messages.length);
    let ok = false;
    try {
      await inner.publishToGroup(this.#name(channel), this.#name(group), messages);
      ok = true;
    } finally {
      this.tracker.publishedToGroup(channel, group, messages.length, ok);
    }
  }

  backlog(channel: string, group: string, policy: NormalizedRetryPolicy): Promise<GroupBacklog> {
    const inner = this.#adapter;
    if (!inner.backlog) {
      return Promise.reject(new UnsupportedError('testing', `the ${inner.name} adapter cannot report a backlog`));
    }
    return inner.backlog(this.#name(channel), this.#name(group), this.#policy(policy));
  }

  #name(name: string): string {
    return this.isolation.prefix + name;
  }

  #policy(policy: NormalizedRetryPolicy): NormalizedRetryPolicy {
    const { timeScale, maxRealDelayMs } = this.isolation;
    if (timeScale === 1 && maxRealDelayMs === Number.POSITIVE_INFINITY) return policy;
    const delays = policy.delays.map((ms) => scaleDelay(ms, timeScale));
    const longest = Math.max(0, ...delays);
    if (longest > maxRealDelayMs) {
      throw new RealTimeError(
        `a real broker holds retry delays in real time: ${Math.max(...policy.delays)} ms × timeScale ${timeScale} = ${longest} ms, ` +
          `more than maxRealDelayMs (${maxRealDelayMs} ms) — lower timeScale, raise maxRealDelayMs, or test on memory:// where clock.advance() is instant`,
      );
    }
    return Object.freeze({ ...policy, delays: Object.freeze(delays) });
  }

  async publish(channel: string, messages: readonly WireMessage[], options?: PublishRequestOptions): Promise<void> {
    this.tracker.publishing(channel, messages.length);
    let ok = false;
    try {
      // Raw mode's options go through as they are: raw.queue names the producer's queue, never a kit name.
      await this.#adapter.publish(this.#name(channel), messages, options);
      ok = true;
    } finally {
      this.tracker.published(channel, messages.length, ok);
    }
  }

  async declare(channel: string, groups: readonly string[], policy: NormalizedRetryPolicy): Promise<void> {
    const scaled = this.#policy(policy);
    for (const group of groups) this.tracker.declared(channel, group, scaled.delays);
    await this.#adapter.declare(
      this.#name(channel),
      groups.map((g) => this.#name(g)),
      scaled,
    );
  }

  async subscribe(
    request: SubscribeRequest,
    onDelivery: (delivery: Delivery) => Promise<void>,
  ): Promise<AdapterSubscription> {
    const { channel, group } = request;
    const policy = this.#policy(request.policy);
    this.tracker.declared(channel, group, policy.delays);
    this.tracker.subscribed(channel, group);
    const scale = this.isolation.timeScale;
    let native: AdapterSubscription;
    try {
      native = await this.#adapter.subscribe(
        { ...request, channel: this.#name(channel), group: this.#name(group), policy },
        scale === 1 ? onDelivery : (delivery) => onDelivery(scaledDelivery(delivery, scale)),
      );
    } catch (error) {
      this.tracker.unsubscribed(channel, group);
      throw error;
    }
    let stopped = false;
    return {
      stop: async () => {
        await native.stop();
        if (!stopped) this.tracker.unsubscribed(channel, group);
        stopped = true;
      },
    };
  }

  readDeadLetters(
    channel: string,
    group: string,
    options: { limit: number },
    visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
  ): Promise<void> {
    return this.#adapter.readDeadLetters(this.#name(channel), this.#name(group), options, visit);
  }

  async close(): Promise<void> {
    const inner = this.#inner ?? (await this.#loading?.catch(() => undefined));
    await inner?.close();
  }

  raw(): unknown {
    return this.#inner?.raw();
  }
}

/**
 * The same delivery, but the retry it asks the broker for is scaled: the core asks for the policy's
 * delay, the broker holds the scaled one (its retry tiers were declared scaled too). Methods are
 * called on the original, since adapters may keep them on a prototype.
 */
function scaledDelivery(delivery: Delivery, scale: number): Delivery {
  return {
    decoded: delivery.decoded,
    attempt: delivery.attempt,
    ...(delivery.firstFailureAt !== undefined ? { firstFailureAt: delivery.firstFailureAt } : {}),
    ack: () => delivery.ack(),
    retry: (instruction) =>
      delivery.retry({
        ...instruction,
        tierMs: scaleDelay(instruction.tierMs, scale),
        delayMs: scaleDelay(instruction.delayMs, scale),
      }),
    deadLetter: (info) => delivery.deadLetter(info),
    release: () => delivery.release(),
  };
}
