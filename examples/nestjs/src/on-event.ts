import 'reflect-metadata';
import type { CloudEvent, HandlerContext, SubscribeOptions } from '@wharf/core';

/** The metadata key under which `@OnEvent` stores its subscriptions on a method. */
export const ON_EVENT_METADATA = 'wharf:on-event';

/** One `@OnEvent` of a method: the channel and the options `bus.subscribe` gets. */
export interface OnEventMetadata {
  readonly channel: string;
  readonly options: SubscribeOptions;
}

/**
 * A method `@OnEvent` accepts: the event and the handler context, as `bus.subscribe` calls it.
 * (`never` lets a method declare the payload it expects: `(event: CloudEvent<Order>, ctx) => …`.)
 */
export type EventHandlerMethod = (event: CloudEvent<never>, context: HandlerContext) => unknown;

/**
 * Subscribes the decorated method to `channel` in `options.group` when the application has started
 * (`onApplicationBootstrap`), called with its provider as `this`. Resolve to acknowledge; throw to
 * retry (`NonRetryableError` dead-letters at once), exactly as a `bus.subscribe` handler. The
 * provider must be a singleton (the default scope): an event has no request to scope it to.
 * A method may carry several `@OnEvent`s (one subscription each).
 *
 * @example
 * ```ts
 * @Injectable()
 * class Billing {
 *   @OnEvent('orders.placed', { group: 'billing', retry: { maxAttempts: 3 } })
 *   async charge(event: CloudEvent<Order>, ctx: HandlerContext) {
 *     await ctx.publish('payments.charged', { type: 'PaymentCharged', data: { orderId: event.data!.orderId } });
 *   }
 * }
 * ```
 */
export function OnEvent(channel: string, options: SubscribeOptions) {
  return <M extends EventHandlerMethod>(
    _target: object,
    _key: string | symbol,
    descriptor: TypedPropertyDescriptor<M>,
  ) => {
    const method = descriptor.value;
    if (typeof method !== 'function') return;
    const previous = (Reflect.getMetadata(ON_EVENT_METADATA, method) as OnEventMetadata[] | undefined) ?? [];
    Reflect.defineMetadata(ON_EVENT_METADATA, [...previous, { channel, options }], method);
  };
}
