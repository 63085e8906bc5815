import type { CloudEvent } from '@wharf/core';
import type { Service, ServiceContext } from './runtime.js';

export interface NotificationRecord {
  notificationId: string;
  orderId: string;
  template: 'order-confirmed' | 'order-cancelled';
  published: boolean;
}

/** Notification service: tells the customer how the order ended, once. */
export async function startNotificationService(ctx: ServiceContext): Promise<Service> {
  const { bus, stores, retry, concurrency } = ctx;
  const group = ctx.name;

  async function notify(
    event: CloudEvent<{ orderId: string; customerId: string }>,
    template: NotificationRecord['template'],
  ): Promise<void> {
    const { orderId, customerId } = event.data!;
    await ctx.lock.run(orderId, async () => {
      const notificationId = `ntf_${orderId.slice(4)}`;
      const record = await stores.notifications.update(orderId, (current) => {
        if (current) return { result: current };
        const created: NotificationRecord = { notificationId, orderId, template, published: false };
        return { value: created, result: created };
      });
      if (record.published) {
        ctx.counters.duplicates++;
        return;
      }
      // A real service would send the e-mail here; the event records that it went out.
      await ctx.emit(
        'sendNotification',
        { notificationId, orderId, customerId, channel: 'email', template, sentAt: new Date().toISOString() },
        event,
      );
      await stores.notifications.update(orderId, (current) =>
        current ? { value: { ...current, published: true }, result: undefined } : { result: undefined },
      );
    });
  }

  const subscriptions = [
    await bus.on('notificationOnOrderConfirmed', { group, concurrency, retry }, (event) =>
      notify(event, 'order-confirmed'),
    ),
    await bus.on('notificationOnOrderCancelled', { group, concurrency, retry }, (event) =>
      notify(event, 'order-cancelled'),
    ),
  ];

  return {
    name: ctx.name,
    async stop() {
      await Promise.all(subscriptions.map((s) => s.close()));
    },
  };
}
