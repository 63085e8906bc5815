import type { CloudEvent } from '@wharf/core';
import { initialStock } from '../catalog.js';
import type { InventoryRejectedPayload, OrderPlacedPayload, StockLine } from '../contract.js';
import type { Service, ServiceContext } from './runtime.js';

export interface Reservation {
  status: 'reserved' | 'rejected' | 'released';
  reservationId: string;
  lines: StockLine[];
  rejection?: Pick<InventoryRejectedPayload, 'reason' | 'unavailable'>;
  /** Types of the events already published for it. */
  published: string[];
}

/** The stock ledger of one scope: available stock per SKU and every order's reservation. */
export interface InventoryRecord {
  stock: Record<string, number>;
  reservations: Record<string, Reservation>;
}

/**
 * Each saga run has its own stock ledger, named by the run id inside its order ids
 * (`ord_<run>-<n>`), so runs sharing a persistent broker or a long-lived service never mix stock.
 */
export function stockScope(orderId: string): string {
  const body = orderId.slice(4);
  const dash = body.lastIndexOf('-');
  return dash > 0 ? `run:${body.slice(0, dash)}` : 'run:default';
}

/** Inventory service: reserves stock or rejects an order; releases a reservation when its payment failed. */
export async function startInventoryService(ctx: ServiceContext): Promise<Service> {
  const { bus, stores, retry, concurrency } = ctx;
  const group = ctx.name;

  async function markPublished(orderId: string, type: string): Promise<void> {
    await stores.inventory.update(stockScope(orderId), (ledger) => {
      const reservation = ledger?.reservations[orderId];
      if (!ledger || !reservation || reservation.published.includes(type)) return { result: undefined };
      reservation.published.push(type);
      return { value: ledger, result: undefined };
    });
  }

  async function onOrderPlaced(event: CloudEvent<OrderPlacedPayload>): Promise<void> {
    const order = event.data!;
    const decision = await stores.inventory.update<Reservation | 'duplicate'>(stockScope(order.orderId), (current) => {
      const ledger = current ?? { stock: initialStock(), reservations: {} };
      const existing = ledger.reservations[order.orderId];
      if (existing) {
        const outcome = existing.status === 'rejected' ? 'InventoryRejected' : 'InventoryReserved';
        return { result: existing.published.includes(outcome) ? 'duplicate' : { ...existing } };
      }
      const wanted = new Map<string, number>();
      for (const line of order.lines) wanted.set(line.sku, (wanted.get(line.sku) ?? 0) + line.quantity);
      const lines = [...wanted].map(([sku, quantity]) => ({ sku, quantity }));
      const unknown = lines.filter((line) => ledger.stock[line.sku] === undefined);
      const short = lines.filter((line) => (ledger.stock[line.sku] ?? 0) < line.quantity);
      const reservationId = `res_${order.orderId.slice(4)}`;
      let reservation: Reservation;
      if (short.length > 0) {
        reservation = {
          status: 'rejected',
          reservationId,
          lines,
          rejection: {
            reason: unknown.length > 0 ? 'unknown-sku' : 'out-of-stock',
            unavailable: short.map((line) => ({
              sku: line.sku,
              requested: line.quantity,
              available: ledger.stock[line.sku] ?? 0,
            })),
          },
          published: [],
        };
      } else {
        for (const line of lines) ledger.stock[line.sku] = (ledger.stock[line.sku] ?? 0) - line.quantity;
        reservation = { status: 'reserved', reservationId, lines, published: [] };
      }
      ledger.reservations[order.orderId] = reservation;
      return { value: ledger, result: { ...reservation } };
    });
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

  const subscriptions = [
    await bus.on('inventoryOnOrderPlaced', { group, concurrency, retry }, (event) =>
      ctx.lock.run(event.data!.orderId, () => onOrderPlaced(event)),
    ),
    await bus.on('inventoryOnPaymentFailed', { group, concurrency, retry }, (event) => {
      const { orderId } = event.data!;
      return ctx.lock.run(orderId, async () => {
        const decision = await stores.inventory.update<Reservation | 'duplicate' | 'unknown'>(
          stockScope(orderId),
          (ledger) => {
            const reservation = ledger?.reservations[orderId];
            if (!ledger || !reservation) return { result: 'unknown' };
            if (reservation.status === 'reserved') {
              // Compensation: the reserved items go back on the shelf.
              for (const line of reservation.lines)
                ledger.stock[line.sku] = (ledger.stock[line.sku] ?? 0) + line.quantity;
              reservation.status = 'released';
              return { value: ledger, result: { ...reservation } };
            }
            if (reservation.status === 'released' && reservation.published.includes('InventoryReleased')) {
              return { result: 'duplicate' };
            }
            return { result: reservation.status === 'released' ? { ...reservation } : 'unknown' };
          },
        );
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
