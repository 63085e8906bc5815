import { createBus, NonRetryableError } from '@wharf/core';

const bus = createBus({ url: process.env.WHARF_BROKER ?? 'memory://' });

await bus.subscribe(
  'orders.placed',
  { group: 'billing', retry: { maxAttempts: 3, delays: [100, 500] } },
  async (event, ctx) => {
    const order = event.data as { orderId: string; total: number };
    if (order.total < 0) throw new NonRetryableError('negative total'); // dead-lettered at once
    console.log(`charging ${order.orderId} (attempt ${ctx.attempt})`); // throw to retry later
  },
);

await bus.publish('orders.placed', { type: 'OrderPlaced', data: { orderId: 'o-1', total: 1999 } });
await new Promise((resolve) => setTimeout(resolve, 100));
await bus.close();
