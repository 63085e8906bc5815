import { useTestBus } from '@wharf/testing/vitest';
import { expect, it } from 'vitest';

const t = useTestBus(); // memory and a virtual clock; WHARF_TEST_BROKER=amqp://… runs it on RabbitMQ
it('charges the order once the gateway answers, 30 s later', async () => {
  await t.bus.subscribe('orders', { group: 'billing', retry: { delays: [30_000] } }, (_event, ctx) => {
    if (ctx.attempt === 1) throw new Error('gateway timed out'); // your handler here
  });
  await t.bus.publish('orders', { type: 'OrderPlaced', data: { orderId: 'o-1' } });
  await t.clock.advance(30_000); // no real time passes
  expect(t).toHaveConsumed('orders', 'billing', { orderId: 'o-1' });
});
