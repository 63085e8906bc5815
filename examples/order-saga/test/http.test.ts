import { createTestBus } from '@wharf/testing';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { contract, type OrderPlacedPayload } from '../src/contract.js';
import { type RunningServices, startServices } from '../src/index.js';

// The order service's HTTP API with the other four services behind it, all on one test bus:
// `settled()` says when the saga has finished reacting (no polling, no sleeps), and the recorders
// show what the API published.
const order = {
  customerId: 'cus_7731',
  customerEmail: 'ada@example.com',
  lines: [
    { sku: 'BOOK-0001', quantity: 2, unitPrice: { amount: 1999, currency: 'EUR' } },
    { sku: 'MUG-0042', quantity: 1, unitPrice: { amount: 1999, currency: 'EUR' } },
  ],
};

describe('order service HTTP API', () => {
  const kit = createTestBus({ contract });
  let services: RunningServices;
  let base: string;
  const placed = () => kit.published('orders.placed');

  beforeAll(async () => {
    services = await startServices({ url: kit.url, createBus: (options) => kit.createBus(options), stateDir: false });
    base = services.orderUrl!;
  });
  afterAll(async () => {
    await services?.close();
    await kit.close();
  });

  const post = (body: unknown, raw = false) =>
    fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: raw ? (body as string) : JSON.stringify(body),
    });

  it('accepts an order with 202 and its id, and the order reaches its terminal state', async () => {
    const response = await post(order);
    expect(response.status).toBe(202);
    const { orderId } = (await response.json()) as { orderId: string };
    expect(orderId).toMatch(/^ord_/);
    expect(response.headers.get('location')).toBe(`/orders/${orderId}`);

    await kit.settled();
    const view = (await (await fetch(`${base}/orders/${orderId}`)).json()) as {
      state: string;
      history: { state: string }[];
      total: unknown;
    };
    expect(view.state).toBe('confirmed');
    expect(view.total).toEqual({ amount: 5997, currency: 'EUR' });
    expect(view.history.map((h) => h.state)).toEqual(['placed', 'confirmed']);
    expect(placed()).toHaveLength(1);
    // What the rest of the saga did with it, from the recorders.
    expect(kit.consumed('orders.confirmed', 'notification').map((e) => e.data?.orderId)).toEqual([orderId]);
    expect(kit.published('payments.completed').map((e) => e.data?.amount)).toEqual([{ amount: 5997, currency: 'EUR' }]);
  });

  it('cancels an order that cannot be served, with the reason', async () => {
    const response = await post({
      ...order,
      lines: [{ sku: 'LIMITED-ED-01', quantity: 9, unitPrice: { amount: 9900, currency: 'EUR' } }],
    });
    const { orderId } = (await response.json()) as { orderId: string };
    await kit.settled();
    const view = (await (await fetch(`${base}/orders/${orderId}`)).json()) as { state: string; detail?: string };
    expect(view).toMatchObject({ state: 'cancelled', reason: 'inventory-rejected' });
    expect(view.detail).toContain('LIMITED-ED-01: 9 requested, 5 available');
  });

  it('answers 400 with the contract validation errors and publishes nothing', async () => {
    const before = placed().length;
    const response = await post({
      customerId: 'alice',
      lines: [{ sku: 'book', quantity: 0, unitPrice: { amount: 1.5, currency: 'EUR' } }],
      coupon: 'FREE',
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: string; issues: { path: string; message: string }[] };
    expect(body.error).toBe('invalid-order');
    const paths = body.issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['/customerId', '/lines/0/sku', '/lines/0/quantity', '/lines/0/unitPrice/amount']),
    );
    expect(body.issues.some((i) => i.message.includes('coupon'))).toBe(true);

    expect((await post('{not json', true)).status).toBe(400);
    expect((await post([])).status).toBe(400);
    await kit.settled();
    expect(placed().length).toBe(before);
  });

  it('is idempotent for a client-chosen order id, and 409 when it is reused for another order', async () => {
    const before = placed().length;
    const first = await post({ ...order, orderId: 'ord_http-idem-1' });
    const again = await post({ ...order, orderId: 'ord_http-idem-1' });
    expect([first.status, again.status]).toEqual([202, 202]);
    const other = await post({ ...order, orderId: 'ord_http-idem-1', customerId: 'cus_other' });
    expect(other.status).toBe(409);
    await kit.settled();
    expect(placed().length).toBe(before + 1);
  });

  it('types the recorders by the contract: channel addresses and their payloads', () => {
    expectTypeOf(placed()[0]?.data).toEqualTypeOf<OrderPlacedPayload | undefined>();
    // @ts-expect-error not a channel of the contract
    expect(kit.published('orders.nope')).toEqual([]);
  });

  it('answers 404 for an unknown order and an unknown route', async () => {
    const unknown = await fetch(`${base}/orders/ord_nope`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'not-found' });
    expect((await fetch(`${base}/nowhere`)).status).toBe(404);
    expect((await fetch(`${base}/orders`)).status).toBe(405);
  });
});
