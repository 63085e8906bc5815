import type { CloudEvent, Logger, RetryPolicy } from '@wharf/core';
import { untilBrokerAnswers } from '../broker-wait.js';
import type { PayloadOf, SagaBus, SendOp } from '../contract.js';
import { KeyedLock } from '../lock.js';
import type { ServiceMetrics } from '../metrics.js';
import { eventKey, type Stores } from '../state/store.js';
import { OPERATIONS, type ServiceName } from '../topology.js';

/** CloudEvents extension the scenario sets on events a producer must publish twice (and propagate). */
export const FAULT_EXTENSION = 'wharffault';
export const PUBLISH_TWICE = 'publish-twice';

/** How long a service keeps publishing an event through a broker outage before its handler fails. */
const PUBLISH_WAIT_MS = 60_000;

/** Counters a service keeps besides its bus's stats. */
export interface ServiceCounters {
  /** Deliveries the service recognised as already handled (its own idempotency, beyond the bus's dedup). */
  duplicates: number;
}

/** What every service gets. */
export interface ServiceContext {
  readonly name: ServiceName;
  readonly bus: SagaBus;
  readonly stores: Stores;
  readonly counters: ServiceCounters;
  readonly retry: RetryPolicy;
  readonly concurrency: number;
  readonly logger: Logger;
  readonly lock: KeyedLock;
  /** The service's Prometheus registry (shared by its replicas in this process), when it has one. */
  readonly metrics: ServiceMetrics | undefined;
  /**
   * Publishes one event of an order with a deterministic id (`<type>:<orderId>`), so a republish
   * after a failure is a duplicate every consumer drops; publishes it twice when its cause says so.
   */
  emit<Op extends SendOp>(
    operation: Op,
    payload: PayloadOf<Op> & { orderId: string },
    cause?: CloudEvent,
    twice?: boolean,
  ): Promise<void>;
}

export function createContext(options: {
  name: ServiceName;
  bus: SagaBus;
  stores: Stores;
  retry: RetryPolicy;
  concurrency: number;
  logger: Logger;
  metrics?: ServiceMetrics | undefined;
}): ServiceContext {
  const counters: ServiceCounters = { duplicates: 0 };
  const { bus, stores } = options;
  return {
    ...options,
    metrics: options.metrics,
    counters,
    lock: new KeyedLock(),
    async emit(operation, payload, cause, publishTwice) {
      const { orderId } = payload;
      const { type, channel } = OPERATIONS[operation];
      const twice = publishTwice ?? cause?.[FAULT_EXTENSION] === PUBLISH_TWICE;
      const attributes = {
        id: `${type}:${orderId}`,
        subject: orderId,
        partitionkey: orderId,
        correlationid: orderId,
        ...(cause ? { causationid: cause.id } : {}),
        ...(twice ? { extensions: { [FAULT_EXTENSION]: PUBLISH_TWICE } } : {}),
      };
      // The id is fixed, so publishing again after a broker error is a duplicate every consumer drops:
      // a broker outage delays the order instead of spending its handler's attempts.
      const send = (extra: { time?: string } = {}) =>
        untilBrokerAnswers(
          `publishing ${type} of ${orderId}`,
          () => bus.send(operation as SendOp, payload as never, { ...attributes, ...extra }),
          {
            waitMs: PUBLISH_WAIT_MS,
            logger: options.logger,
          },
        );
      const event = await send();
      if (twice) await send({ time: event.time as string });
      // The ledger records how many copies the scenario asked for, not how often this line ran: a
      // replica killed after this write but before its handler finished makes the next replica emit
      // again, and that re-emission (same id, dropped by every consumer) must not count as a copy.
      const copies = twice ? 2 : 1;
      await stores.published.update(eventKey(orderId, event.source, event.id), (current) =>
        current && current.copies >= copies
          ? { result: undefined }
          : { value: { type, channel, orderId, copies }, result: undefined },
      );
    },
  };
}

/** A running service. */
export interface Service {
  readonly name: ServiceName;
  stop(): Promise<void>;
}
