import type { Adapter, Delivery } from '@wharf/core';

/**
 * A deliberately BROKEN adapter: it acknowledges every delivery before the bus's handler runs
 * (at-most-once). It exists so the chaos suite can prove it detects loss; never use it otherwise.
 */
export function ackBeforeHandler(inner: Adapter): Adapter {
  return {
    get name() {
      return `${inner.name}+ack-before-handler`;
    },
    get capabilities() {
      return inner.capabilities;
    },
    connect: () => inner.connect(),
    publish: (channel, messages, options) => inner.publish(channel, messages, options),
    declare: (channel, groups, policy) => inner.declare(channel, groups, policy),
    subscribe: (request, onDelivery) =>
      inner.subscribe(request, async (delivery: Delivery) => {
        await delivery.ack();
        const settled = async (): Promise<void> => undefined;
        await onDelivery({
          ...delivery,
          decoded: delivery.decoded,
          attempt: delivery.attempt,
          ack: settled,
          retry: settled,
          deadLetter: settled,
          release: settled,
        });
      }),
    readDeadLetters: (channel, group, options, visit) => inner.readDeadLetters(channel, group, options, visit),
    close: () => inner.close(),
    raw: () => inner.raw(),
  };
}
