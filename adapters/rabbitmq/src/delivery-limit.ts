import type { IncidentSink } from '@wharf/core';
import type { ConsumeMessage } from 'amqplib';
import { COMPONENT } from './errors.js';
import type { GroupNames } from './topology.js';

/** The quorum queue's count of earlier deliveries returned unsettled (absent on a first delivery). */
export function deliveryCount(message: ConsumeMessage): number {
  const value: unknown = message.properties.headers?.['x-delivery-count'];
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * Reports a delivery that is the last one before the quorum queue's `x-delivery-limit` acts.
 *
 * RabbitMQ 3.10's quorum queue counts every return of an unsettled message (consumer crash, closed
 * channel, `reject` with requeue) and, once the count exceeds `x-delivery-limit`, dead-letters the
 * message itself: with our topology to the group's dead-letter queue, at least once, but without the
 * `wharf-dl-*` metadata — or drops it if the queue had no dead-letter target. That happens inside the
 * broker, after this process may have crashed, so the only moment we can still say so is the delivery
 * whose `x-delivery-count` has reached the limit: if it is not settled either, the broker takes over.
 */
export function reportAtDeliveryLimit(
  incident: IncidentSink,
  request: { readonly channel: string; readonly group: string },
  names: GroupNames,
  deliveryLimit: number,
  message: ConsumeMessage,
): void {
  const count = deliveryCount(message);
  if (count < deliveryLimit) return;
  incident({
    kind: 'max-deliveries',
    component: COMPONENT,
    channel: request.channel,
    group: request.group,
    eventId: typeof message.properties.messageId === 'string' ? message.properties.messageId : undefined,
    message:
      `returned unsettled ${count} times (x-delivery-limit ${deliveryLimit}: a crash loop or repeated releases); ` +
      `if this delivery is not settled either, the broker dead-letters it to "${names.deadLetters}" itself, ` +
      'without wharf-dl-* metadata (read back as CrashLoopError)',
    details: { deliveryCount: count, deliveryLimit, queue: names.queue, deliveryTag: message.fields.deliveryTag },
  });
}
