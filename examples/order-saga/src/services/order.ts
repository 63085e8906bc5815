import type { CloudEvent, ContractIssue } from '@wharf/core';
import type { Money, OrderLine } from '../contract.js';
import { buildOrder, sameLines } from './order-request.js';
import type { Service, ServiceContext } from './runtime.js';

export type OrderState = 'placed' | 'confirmed' | 'cancelled';

/** The order service's record of an order (also what `GET /orders/:id` returns). */
export interface OrderRecord {
  orderId: string;
  customerId: string;
  total: Money;
  lines: OrderLine[];
  state: OrderState;
  reason?: string;
  detail?: string;
  paymentId?: string;
  history: { state: OrderState; at: string; event: string }[];
  /** Types of the events already published for this order, so a redelivery publishes nothing twice. */
  published: string[];
}

export type PlaceResult =
  | { ok: true; orderId: string; created: boolean }
  | { ok: false; status: 400 | 409; error: string; issues: readonly ContractIssue[] };

export interface OrderService extends Service {
  /** Accepts an order (the body of `POST /orders`): validates it against the contract, stores it, publishes `OrderPlaced`. */
  place(body: unknown, options?: { publishTwice?: boolean }): Promise<PlaceResult>;
  get(orderId: string): Promise<OrderRecord | undefined>;
}

/** Order service: starts the saga, then confirms or cancels each order from the other services' events. */
export async function startOrderService(ctx: ServiceContext): Promise<OrderService> {
  const { bus, stores, retry, concurrency } = ctx;
  const group = ctx.name;

  async function finish(
    orderId: string,
    cause: CloudEvent,
    to: 'confirmed' | 'cancelled',
    patch: Partial<OrderRecord>,
    publish: (order: OrderRecord) => Promise<void>,
  ): Promise<void> {
    const outcome = to === 'confirmed' ? 'OrderConfirmed' : 'OrderCancelled';
    await ctx.lock.run(orderId, async () => {
      const decision = await stores.orders.update<OrderRecord | 'unknown' | 'conflict' | 'duplicate'>(
        orderId,
        (order) => {
          if (!order) return { result: 'unknown' };
          if (order.state === 'placed') {
            Object.assign(order, patch, { state: to });
            order.history.push({ state: to, at: new Date().toISOString(), event: cause.type });
            return { value: order, result: order };
          }
          if (order.state !== to) return { result: 'conflict' };
          return { result: order.published.includes(outcome) ? 'duplicate' : order };
        },
      );
      if (decision === 'unknown') {
        // Not an order of this service (another run on the same broker): nothing to do.
        ctx.logger.debug(`[saga] [order] ignoring ${cause.type} for unknown order ${orderId}`);
        return;
      }
      if (decision === 'duplicate') {
        ctx.counters.duplicates++;
        return;
      }
      if (decision === 'conflict') {
        ctx.logger.warn(`[saga] [order] ${cause.type} for order ${orderId}, which already ended otherwise`);
        return;
      }
      await publish(decision);
      await markPublished(orderId, outcome);
    });
  }

  async function markPublished(orderId: string, type: string): Promise<void> {
    await stores.orders.update(orderId, (order) => {
      if (!order || order.published.includes(type)) return { result: undefined };
      order.published.push(type);
      return { value: order, result: undefined };
    });
  }

  const subscriptions = [
    await bus.on('orderOnPaymentCompleted', { group, concurrency, retry }, async (event) => {
      const payment = event.data!;
      await finish(payment.orderId, event, 'confirmed', { paymentId: payment.paymentId }, (order) =>
        ctx.emit(
          'confirmOrder',
          {
            orderId: order.orderId,
            customerId: order.customerId,
            paymentId: payment.paymentId,
            total: order.total,
            confirmedAt: new Date().toISOString(),
          },
          event,
        ),
      );
    }),
    await bus.on('orderOnInventoryRejected', { group, concurrency, retry }, async (event) => {
      const rejection = event.data!;
      const detail = rejection.unavailable
        .map((line) => `${line.sku}: ${line.requested} requested, ${line.available} available`)
        .join('; ');
      await finish(rejection.orderId, event, 'cancelled', { reason: 'inventory-rejected', detail }, (order) =>
        ctx.emit(
          'cancelOrder',
          {
            orderId: order.orderId,
            customerId: order.customerId,
            reason: 'inventory-rejected',
            detail: `${rejection.reason}: ${detail}`.slice(0, 500),
            cancelledAt: new Date().toISOString(),
          },
          event,
        ),
      );
    }),
    await bus.on('orderOnInventoryReleased', { group, concurrency, retry }, async (event) => {
      const release = event.data!;
      const detail = `reservation ${release.reservationId} released (${release.reason})`;
      await finish(release.orderId, event, 'cancelled', { reason: 'payment-failed', detail }, (order) =>
        ctx.emit(
          'cancelOrder',
          {
            orderId: order.orderId,
            customerId: order.customerId,
            reason: 'payment-failed',
            detail,
            cancelledAt: new Date().toISOString(),
          },
          event,
        ),
      );
    }),
  ];

  return {
    name: ctx.name,
    async place(body, options = {}) {
      const built = buildOrder(body);
      if (!built.ok) return built;
      const { payload } = built;
      const orderId = payload.orderId;
      const stored = await stores.orders.update<OrderRecord | 'conflict'>(orderId, (order) => {
        if (order) {
          const same = order.customerId === payload.customerId && sameLines(order.lines, payload.lines);
          return { result: same ? order : 'conflict' };
        }
        const created: OrderRecord = {
          orderId,
          customerId: payload.customerId,
          total: payload.total,
          lines: payload.lines,
          state: 'placed',
          history: [{ state: 'placed', at: payload.placedAt, event: 'OrderPlaced' }],
          published: [],
        };
        return { value: created, result: created };
      });
      if (stored === 'conflict') {
        return {
          ok: false,
          status: 409,
          error: 'order-exists',
          issues: [{ path: '/orderId', message: `order ${orderId} exists with different contents` }],
        };
      }
      // A client retrying the same order gets the same answer; the event is published once.
      if (stored.published.includes('OrderPlaced')) return { ok: true, orderId, created: false };
      const placedAt = stored.history[0]?.at ?? payload.placedAt;
      await ctx.emit('placeOrder', { ...payload, placedAt }, undefined, options.publishTwice === true);
      await markPublished(orderId, 'OrderPlaced');
      ctx.metrics?.ordersPlaced.inc();
      return { ok: true, orderId, created: true };
    },
    get: (orderId) => stores.orders.get(orderId),
    async stop() {
      await Promise.all(subscriptions.map((s) => s.close()));
    },
  };
}
