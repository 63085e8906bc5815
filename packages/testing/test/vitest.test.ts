import { type Bus, ClosedError, NonRetryableError } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import { useTestBus } from '../src/vitest.js';

describe('useTestBus and the matchers', () => {
  const t = useTestBus();
  let first: Bus | undefined;

  it('gives each test a fresh bus, and the matchers read its recorders', async () => {
    first = t.bus;
    await t.bus.subscribe('orders', { group: 'billing' }, (event) => {
      if ((event.data as { total: number }).total < 0) throw new NonRetryableError('negative total');
    });
    await t.bus.publish('orders', { type: 'OrderPlaced', data: { orderId: 'o-1', total: 5 } });
    await t.bus.publish('orders', { type: 'OrderPlaced', data: { orderId: 'o-2', total: -1 } });
    await t.settled();
    expect(t).toHavePublished('orders');
    expect(t).toHavePublished('orders', { orderId: 'o-2', total: -1 });
    expect(t).not.toHavePublished('orders', { orderId: 'o-3' });
    expect(t).toHaveConsumed('orders', 'billing', { orderId: 'o-1', total: 5 });
    expect(t).not.toHaveConsumed('orders', 'billing', { orderId: 'o-2', total: -1 });
    await expect(t).toHaveDeadLettered('orders', 'billing', { orderId: 'o-2', total: -1 });
    await expect(t).not.toHaveDeadLettered('orders', 'billing', { orderId: 'o-1', total: 5 });
    expect(() => expect(t).toHaveConsumed('orders', 'billing', { orderId: 'o-9' })).toThrow(
      /expected the events billing handled on orders to hold an event with data/,
    );
  });

  it('closed the previous test’s bus', async () => {
    expect(first).toBeDefined();
    expect(t.bus).not.toBe(first);
    await expect(first?.publish('orders', { type: 'T', data: null })).rejects.toBeInstanceOf(ClosedError);
    expect(t).not.toHavePublished('orders');
    await expect(t.bus.subscribe('orders', { group: 'billing' }, () => {})).resolves.toBeDefined();
  });
});
