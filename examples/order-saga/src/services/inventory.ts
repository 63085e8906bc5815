import type { CloudEvent } from '@wharf/core';
import { initialStock } from '../catalog.js';
import type { InventoryRejectedPayload, OrderPlacedPayload, StockLine } from '../contract.js';
import type { Stores } from '../state/store.js';
import type { Service, ServiceContext } from './runtime.js';

export interface Reservation {
  status: 'reserved' | 'rejected' | 'released';
  reservationId: string;
  lines: StockLine[];
  rejection?: Pick<InventoryRejectedPayload, 'reason' | 'unavailable'>;
  /** Types of the events already published for it. */
  published: string[];
}

/**
 * The stock of one scope, shared by every inventory replica: a small record whatever the number of
 * orders (each reservation has a record of its own). A change of stock and the reservation that
 * caused it cannot be written atomically as two records, so the stock record carries that
 * reservation as `last` — the stock write is the commit point — and the reservation record is
 * written right after. A replica killed between the two leaves `last` unwritten; whoever takes the
 * stock next writes it first ({@link materialize}), so no reservation is ever lost or applied twice.
 */
export interface StockRecord {
  stock: Record<string, number>;
  last?: { orderId: string; reservation: Reservation };
}

/**
 * Each saga run has its own stock, named by the run id inside its order ids (`ord_<run>-<n>`), so
 * runs sharing a persistent broker or a long-lived service never mix stock.
 */
export function stockScope(orderId: string): string {
  const body = orderId.slice(4);
  const dash = body.lastIndexOf('-');
  return dash > 0 ? `run:${body.slice(0, dash)}` : 'run:default';
}

/**
 * Writes the reservation a stock record names as its last change, unless its record already says
 * so. Idempotent: the replica that made the change and the next holder of the stock may both call it.
 */
export async function materialize(stores: Stores, last: NonNullable<StockRecord['last']>): Promise<void> {
  const current = await stores.reservations.get(last.orderId);
  if (current && (current.status === last.reservation.status || current.status === 'released')) return;
  await stores.reservations.update(last.orderId, (now) => {
    if (!now) return { value: last.reservation, result: undefined };
    if (now.status === last.reservation.status || now.status === 'released') return { result: undefined };
    return { value: { ...now, status: last.reservation.status }, result: undefined };
  });
}

/** The reservation of an order as the stock says it is, also when its own record has not been written yet. */
export async function reservationOf(stores: Stores, orderId: string): Promise<Reservation | undefined> {
  const own = await stores.reservations.get(orderId);
  const last = (await stores.stock.get(stockScope(orderId)))?.last;
  if (last?.orderId === orderId && (!own || (own.status === 'reserved' && last.reservation.status === 'released'))) {
    return last.reservation;
  }
  return own;
}

/** Inventory service: reserves stock or rejects an order; releases a reservation when its payment failed. */
export async function startInventoryService(ctx: ServiceContext): Promise<Service> {
  const { bus, stores, retry, concurrency } = ctx;
  const group = ctx.name;

  async function markPublished(orderId: string, type: string): Promise<void> {
    await stores.reservations.update(orderId, (reservation) => {
      if (!reservation || reservation.published.includes(type)) return { result: undefined };
      return { value: { ...reservation, published: [...reservation.published, type] }, result: undefined };
    });
  }

  /** Reserves the order's stock or rejects it, once: a second copy gets the first decision back (or 'duplicate' once its event is out). */
  async function decide(order: OrderPlacedPayload): Promise<Reservation | 'duplicate'> {
    let changed: StockRecord['last'];
    const decision = await stores.stock.update<Reservation | 'duplicate'>(
      stockScope(order.orderId),
      async (current) => {
        const record = current ?? { stock: initialStock() };
        if (record.last) await materialize(stores, record.last);
        const existing = await stores.reservations.get(order.orderId);
        if (existing) {
          const outcome = existing.status === 'rejected' ? 'InventoryRejected' : 'InventoryReserved';
          return { result: existing.published.includes(outcome) ? 'duplicate' : existing };
        }
        const wanted = new Map<string, number>();
        for (const line of order.lines) wanted.set(line.sku, (wanted.get(line.sku) ?? 0) + line.quantity);
        const lines = [...wanted].map(([sku, quantity]) => ({ sku, quantity }));
        const unknown = lines.filter((line) => record.stock[line.sku] === undefined);
        const short = lines.filter((line) => (record.stock[line.sku] ?? 0) < line.quantity);
        const reservationId = `res_${order.orderId.slice(4)}`;
        if (short.length > 0) {
          // No stock changes: the rejection is written alone, still under the stock's lock so a
          // concurrent copy finds it.
          const rejected: Reservation = {
            status: 'rejected',
            reservationId,
            lines,
            rejection: {
              reason: unknown.length > 0 ? 'unknown-sku' : 'out-of-stock',
              unavailable: short.map((line) => ({
                sku: line.sku,
                requested: line.quantity,
                available: record.stock[line.sku] ?? 0,
              })),
            },
            published: [],
          };
          await stores.reservations.update(order.orderId, (now) =>
            now ? { result: undefined } : { value: rejected, result: undefined },
          );
          return { result: rejected };
        }
        for (const line of lines) record.stock[line.sku] = (record.stock[line.sku] ?? 0) - line.quantity;
        const reserved: Reservation = { status: 'reserved', reservationId, lines, published: [] };
        changed = { orderId: order.orderId, reservation: reserved };
        return { value: { stock: record.stock, last: changed }, result: reserved };
      },
    );
    if (changed) await materialize(stores, changed);
    return decision;
  }

  async function onOrderPlaced(event: CloudEvent<OrderPlacedPayload>): Promise<void> {
    const order = event.data!;
    const decision = await decide(order);
    if (decision === 'duplicate') {
      ctx.counters.duplicates++;
      return;
    }
    const now = new Date().toISOString();
    if (decision.status === 'rejected' && decision.rejection) {
      await ctx.emit('rejectInventory', { orderId: order.orderId, ...decision.rejection, rejectedAt: now }, event);
      await markPublished(order.orderId, 'InventoryRejected');
    } else {
      const total = order.total;
      await ctx.emit(
        'reserveInventory',
        {
          orderId: order.orderId,
          reservationId: decision.reservationId,
          lines: decision.lines,
          total,
          reservedAt: now,
        },
        event,
      );
      await markPublished(order.orderId, 'InventoryReserved');
    }
  }

  /** Compensation: the reserved items go back on the shelf, once. */
  async function release(orderId: string): Promise<Reservation | 'duplicate' | 'unknown'> {
    let changed: StockRecord['last'];
    const decision = await stores.stock.update<Reservation | 'duplicate' | 'unknown'>(
      stockScope(orderId),
      async (record) => {
        if (!record) return { result: 'unknown' };
        if (record.last) await materialize(stores, record.last);
        const reservation = await stores.reservations.get(orderId);
        if (!reservation) return { result: 'unknown' };
        if (reservation.status === 'reserved') {
          for (const line of reservation.lines) record.stock[line.sku] = (record.stock[line.sku] ?? 0) + line.quantity;
          const released: Reservation = { ...reservation, status: 'released' };
          changed = { orderId, reservation: released };
          return { value: { stock: record.stock, last: changed }, result: released };
        }
        if (reservation.status === 'released' && reservation.published.includes('InventoryReleased')) {
          return { result: 'duplicate' };
        }
        return { result: reservation.status === 'released' ? reservation : 'unknown' };
      },
    );
    if (changed) await materialize(stores, changed);
    return decision;
  }

  const subscriptions = [
    await bus.on('inventoryOnOrderPlaced', { group, concurrency, retry }, (event) =>
      ctx.lock.run(event.data!.orderId, () => onOrderPlaced(event)),
    ),
    await bus.on('inventoryOnPaymentFailed', { group, concurrency, retry }, (event) => {
      const { orderId } = event.data!;
      return ctx.lock.run(orderId, async () => {
        const decision = await release(orderId);
        if (decision === 'unknown') {
          ctx.logger.warn(`[saga] [inventory] PaymentFailed for order ${orderId}, which holds no reservation`);
          return;
        }
        if (decision === 'duplicate') {
          ctx.counters.duplicates++;
          return;
        }
        await ctx.emit(
          'releaseInventory',
          {
            orderId,
            reservationId: decision.reservationId,
            reason: 'payment-failed',
            releasedAt: new Date().toISOString(),
          },
          event,
        );
        await markPublished(orderId, 'InventoryReleased');
      });
    }),
  ];

  return {
    name: ctx.name,
    async stop() {
      await Promise.all(subscriptions.map((s) => s.close()));
    },
  };
}
