import {
  type Adapter,
  type AdapterInit,
  type AdapterSubscription,
  type Capabilities,
  ClosedError,
  DEFAULT_CAPABILITIES,
  type Delivery,
  type GroupBacklog,
  type NormalizedRetryPolicy,
  type StoredDeadLetter,
  type SubscribeRequest,
  type WireMessage,
} from '@wharf/core';
import { MemoryBroker } from './broker.js';
import { type MemoryAdapterOptions, type ResolvedMemoryOptions, resolveOptions } from './options.js';
import { MemorySubscriber } from './subscriber.js';

export const ADAPTER_NAME = 'memory';

/**
 * The in-process adapter: the embedded default and the reference for every semantic the
 * conformance suite checks. Adapters created with the same URL share one broker.
 */
export class MemoryAdapter implements Adapter {
  readonly name = ADAPTER_NAME;
  readonly capabilities: Capabilities;
  readonly #options: ResolvedMemoryOptions;
  readonly #subscribers = new Set<MemorySubscriber>();
  #broker: MemoryBroker | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(init: AdapterInit & MemoryAdapterOptions) {
    this.#options = resolveOptions(init.url, init);
    this.capabilities = Object.freeze({
      ...DEFAULT_CAPABILITIES,
      orderedByKey: true,
      rejectsUnroutable: true,
      maxMessageBytes: this.#options.maxMessageBytes,
    });
  }

  async connect(): Promise<void> {
    if (this.#closed) throw new ClosedError(ADAPTER_NAME, 'connect');
    this.#broker ??= MemoryBroker.get(this.#options.brokerName, this.#options.clock);
    // A real broker's socket keeps a process alive while connected; do the same so pending retries fire.
    this.#keepAlive ??= setInterval(() => {}, 2 ** 30);
  }

  #connected(operation: string): MemoryBroker {
    if (this.#closed) throw new ClosedError(ADAPTER_NAME, operation);
    if (!this.#broker) throw new ClosedError(ADAPTER_NAME, `${operation} before connect()`);
    return this.#broker;
  }

  async publish(channel: string, messages: readonly WireMessage[]): Promise<void> {
    await this.#connected('publish').publish(channel, messages);
  }

  async publishToGroup(channel: string, group: string, messages: readonly WireMessage[]): Promise<void> {
    await this.#connected('publish').publish(channel, messages, group);
  }

  async declare(channel: string, groups: readonly string[], _policy: NormalizedRetryPolicy): Promise<void> {
    this.#connected('declare').declare(channel, groups);
  }

  async deleteGroup(channel: string, group: string, _policy: NormalizedRetryPolicy): Promise<void> {
    this.#connected('delete a group').deleteGroup(channel, group);
  }

  async subscribe(
    request: SubscribeRequest,
    onDelivery: (delivery: Delivery) => Promise<void>,
  ): Promise<AdapterSubscription> {
    const broker = this.#connected('subscribe');
    const subscriber = new MemorySubscriber(broker, request, onDelivery, (s) => this.#subscribers.delete(s));
    this.#subscribers.add(subscriber);
    subscriber.start();
    return subscriber;
  }

  async readDeadLetters(
    channel: string,
    group: string,
    options: { limit: number },
    visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
  ): Promise<void> {
    const list = this.#connected('read dead letters').deadLetters(channel, group);
    for (const deadLetter of list.slice(0, options.limit)) {
      if (await visit(deadLetter)) list.splice(list.indexOf(deadLetter), 1);
    }
  }

  /** Counted from the broker's own state: every count is exact, consumers included. */
  async backlog(channel: string, group: string, _policy: NormalizedRetryPolicy): Promise<GroupBacklog> {
    return this.#connected('read a backlog').backlog(channel, group);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscriber of [...this.#subscribers]) {
      await subscriber.stop();
      subscriber.revoke();
    }
    clearInterval(this.#keepAlive);
  }

  raw(): MemoryBroker | undefined {
    return this.#broker;
  }
}
