import { silentLogger } from '@wharf/core';
import { useTestBus } from '@wharf/testing/vitest';
import { describe, expect, it } from 'vitest';
import { FLAKY_FAILURES, MAGIC_CENTS } from '../src/catalog.js';
import { contract, type InventoryReservedPayload } from '../src/contract.js';
import { SAGA_RETRY } from '../src/host.js';
import { startPaymentService } from '../src/services/payment.js';
import { createContext } from '../src/services/runtime.js';
import { memoryStores } from '../src/state/memory-store.js';
import { createSagaBus } from '../src/typed-bus.js';

// The payment service alone, on a test bus: the flaky gateway's retries and the poison card's
// dead letter run on the virtual clock, so the saga's retry policy costs no real time.
describe('payment service', () => {
  const t = useTestBus({ contract });

  async function start() {
    const stores = memoryStores();
    const ctx = createContext({
      name: 'payment',
      bus: createSagaBus(t.bus),
      stores,
      retry: SAGA_RETRY,
      concurrency: 1,
      logger: silentLogger,
    });
    // Its output channels need a group to route to, as the order and inventory services give them in the saga.
    await t.bus.declare('payments.completed', { groups: ['order'] });
    await t.bus.declare('payments.failed', { groups: ['inventory'] });
    await startPaymentService(ctx);
    return stores;
  }

  const reserved = (orderId: string, cents: number): InventoryReservedPayload => ({
    orderId,
    reservationId: `res_${orderId.slice(4)}`,
    lines: [{ sku: 'BOOK-0001', quantity: 1 }],
    total: { amount: 1900 + cents, currency: 'EUR' },
    reservedAt: new Date().toISOString(),
  });

  it('charges an order once and publishes PaymentCompleted', async () => {
    const stores = await start();
    await t.typed.send('reserveInventory', reserved('ord_ok-1', 0));
    await t.settled();
    expect(t.published('payments.completed').map((e) => e.data)).toEqual([
      expect.objectContaining({ orderId: 'ord_ok-1', amount: { amount: 1900, currency: 'EUR' }, attempts: 1 }),
    ]);
    expect(await stores.payments.get('ord_ok-1')).toMatchObject({ status: 'charged', charges: 1, published: true });
  });

  it('retries a flaky gateway on the saga policy’s delays and charges on the third attempt', async () => {
    await start();
    await t.typed.send('reserveInventory', reserved('ord_flaky-1', MAGIC_CENTS.flaky));
    await t.settled();
    expect(t.settlements('inventory.reserved', 'payment').map((s) => [s.outcome, s.attempt])).toEqual([['retried', 1]]);
    await t.clock.advance(100);
    await t.clock.advance(200);
    const outcomes = t.settlements('inventory.reserved', 'payment').map((s) => [s.outcome, s.attempt]);
    expect(outcomes).toEqual([
      ['retried', 1],
      ['retried', 2],
      ['acked', FLAKY_FAILURES + 1],
    ]);
    expect(t.published('payments.completed').map((e) => e.data?.attempts)).toEqual([FLAKY_FAILURES + 1]);
  });

  it('dead-letters the poison card after the policy’s last attempt, charging nothing', async () => {
    const stores = await start();
    await t.typed.send('reserveInventory', reserved('ord_poison-1', MAGIC_CENTS.poison));
    await t.clock.advance(100 + 200 + 300);
    const [dead, ...more] = await t.deadLetters('inventory.reserved', 'payment');
    expect(more).toEqual([]);
    expect(dead?.event?.data?.orderId).toBe('ord_poison-1');
    expect(dead?.info).toMatchObject({
      reason: 'retries-exhausted',
      attempts: SAGA_RETRY.maxAttempts,
      errorType: 'GatewayClientCrashError',
    });
    expect(t.published('payments.completed')).toEqual([]);
    expect(await stores.payments.get('ord_poison-1')).toBeUndefined();
  });

  it('answers a declined card with PaymentFailed, which starts the compensation', async () => {
    await start();
    await t.typed.send('reserveInventory', reserved('ord_declined-1', MAGIC_CENTS.declined));
    await t.settled();
    expect(t).toHavePublished('payments.failed');
    expect(t.published('payments.failed')[0]?.data).toMatchObject({
      orderId: 'ord_declined-1',
      reservationId: 'res_declined-1',
      reason: 'declined',
    });
  });
});
