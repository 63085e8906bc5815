import {
  Bus,
  type BusOptions,
  type CloudEvent,
  ConfigError,
  type EventInput,
  type Handler,
  type HandlerMap,
  type Logger,
  type SubscribeOptions,
  type Subscription,
} from '@wharf/core';
import type { Inbox, Outbox } from '@wharf/postgres';
import { ambient, type Transaction } from './state/postgres-store.js';

/**
 * A service's bus with `--store postgres`: its handlers run in the inbox's transaction and what
 * they send goes to the outbox on that same transaction, so a service's state change, the
 * "processed" mark of the event that caused it and the events it emits commit together; the relay
 * publishes them after commit. A handler that throws rolls all of it back and the bus retries it.
 *
 * The service code is the same as with the memory store: the transaction is ambient (see
 * {@link ambient}), so `stores.x.update` and `bus.send` find it.
 */
export class OutboxBus extends Bus {
  readonly #outbox: Outbox;
  readonly #inbox: Inbox;
  readonly #logger: Logger;
  /** Called for each delivery the inbox recognised as already processed (the service's duplicate counter). */
  onDuplicate: () => void = () => {};

  constructor(options: BusOptions & { logger: Logger }, outbox: Outbox, inbox: Inbox) {
    super(options);
    this.#outbox = outbox;
    this.#inbox = inbox;
    this.#logger = options.logger;
  }

  /**
   * Inside a transaction: appends the event to the outbox on it. A second send of the same event
   * in one transaction (the scenario's deliberate duplicate: a producer publishing twice) cannot be
   * a second outbox row, `(source, id)` being unique there; it is published straight to the broker
   * once the transaction committed, as a producer's retry would. Outside a transaction: publishes.
   */
  override async publish<T>(channel: string, input: EventInput<T>): Promise<CloudEvent<T>> {
    const tx = ambient.getStore();
    if (!tx) return super.publish(channel, input);
    const source = input.source ?? this.#outbox.source;
    const first = input.id === undefined ? undefined : tx.appended.get(`${source}\u0000${input.id}`);
    if (first) {
      tx.afterCommit.push(async () => {
        try {
          await super.publish(channel, { ...input, source });
        } catch (error) {
          this.#logger.warn(`[saga] the second copy of ${first.type} ${first.id} was not published: ${String(error)}`);
        }
      });
      return first as CloudEvent<T>;
    }
    const event = await this.#outbox.append(tx.client, channel, { ...input, source });
    tx.appended.set(`${event.source}\u0000${event.id}`, event as CloudEvent);
    return event;
  }

  /**
   * Subscribes with the inbox as the only dedup: each delivery runs `handler` inside
   * `inbox.handle`, whose transaction is ambient while it runs; a delivery already processed by
   * the group runs nothing and is acked.
   */
  override async subscribe<T = unknown>(
    channel: string,
    options: SubscribeOptions,
    handler: Handler<T> | HandlerMap,
  ): Promise<Subscription> {
    if (typeof handler !== 'function') {
      throw new ConfigError('saga', 'the saga subscribes with one handler per operation, not a map by type');
    }
    return super.subscribe<T>(channel, { ...options, dedup: false }, async (event, context) => {
      const after: Transaction['afterCommit'] = [];
      const outcome = await this.#inbox.handle(event, options.group, (client) =>
        ambient.run({ client, appended: new Map(), afterCommit: after }, async () => {
          await handler(event, context);
        }),
      );
      if (outcome.duplicate) this.onDuplicate();
      for (const work of after) await work();
    });
  }

  /**
   * Runs `work` in a transaction of its own (placing an order: the order row and its `OrderPlaced`
   * commit together), or in the ambient one if there is one.
   */
  async transaction<R>(work: () => Promise<R>): Promise<R> {
    if (ambient.getStore()) return work();
    const after: Transaction['afterCommit'] = [];
    const result = await this.#outbox.transaction((client) =>
      ambient.run({ client, appended: new Map(), afterCommit: after }, work),
    );
    for (const task of after) await task();
    return result;
  }
}
