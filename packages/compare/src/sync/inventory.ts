import { initialStock, type OrderLine, type StockLine, stockScope } from '@wharf/example-order-saga/business';
import type { Route } from './json-http.js';

/** What `POST /reservations` answers: the same decision the saga's inventory service publishes. */
export type ReservationReply =
  | { status: 'reserved'; reservationId: string; lines: StockLine[] }
  | {
      status: 'rejected';
      reservationId: string;
      reason: 'out-of-stock' | 'unknown-sku';
      unavailable: { sku: string; requested: number; available: number }[];
    };

interface Reservation {
  reply: ReservationReply;
  released: boolean;
}

/**
 * The inventory service over HTTP, with the saga's rules: reserve every line or reject the order
 * naming what is short; release a reservation once (compensation). Idempotent per order, because
 * the order service's retries can repeat a request whose answer was lost. State lives in this
 * process's memory, as the bus variant's services keep theirs in the comparison.
 */
export function inventoryRoutes(): Route {
  const stock = new Map<string, Record<string, number>>();
  const reservations = new Map<string, Reservation>();

  function reserve(orderId: string, orderLines: readonly OrderLine[]): ReservationReply {
    const known = reservations.get(orderId);
    if (known) return known.reply;
    const scope = stockScope(orderId);
    const shelf = stock.get(scope) ?? initialStock();
    stock.set(scope, shelf);
    const wanted = new Map<string, number>();
    for (const line of orderLines) wanted.set(line.sku, (wanted.get(line.sku) ?? 0) + line.quantity);
    const lines = [...wanted].map(([sku, quantity]) => ({ sku, quantity }));
    const unknown = lines.filter((line) => shelf[line.sku] === undefined);
    const short = lines.filter((line) => (shelf[line.sku] ?? 0) < line.quantity);
    const reservationId = `res_${orderId.slice(4)}`;
    let reply: ReservationReply;
    if (short.length > 0) {
      reply = {
        status: 'rejected',
        reservationId,
        reason: unknown.length > 0 ? 'unknown-sku' : 'out-of-stock',
        unavailable: short.map((line) => ({
          sku: line.sku,
          requested: line.quantity,
          available: shelf[line.sku] ?? 0,
        })),
      };
    } else {
      for (const line of lines) shelf[line.sku] = (shelf[line.sku] ?? 0) - line.quantity;
      reply = { status: 'reserved', reservationId, lines };
    }
    reservations.set(orderId, { reply, released: false });
    return reply;
  }

  function release(orderId: string): 'released' | 'unknown' {
    const reservation = reservations.get(orderId);
    if (!reservation || reservation.reply.status !== 'reserved') return 'unknown';
    if (!reservation.released) {
      const shelf = stock.get(stockScope(orderId));
      for (const line of reservation.reply.lines) if (shelf) shelf[line.sku] = (shelf[line.sku] ?? 0) + line.quantity;
      reservation.released = true;
    }
    return 'released';
  }

  return async (method, path, body) => {
    if (method === 'POST' && path === '/reservations') {
      const { orderId, lines } = body as { orderId: string; lines: OrderLine[] };
      return { status: 200, body: reserve(orderId, lines) };
    }
    const match = /^\/reservations\/([^/]+)\/release$/.exec(path);
    if (method === 'POST' && match) {
      const outcome = release(decodeURIComponent(match[1] as string));
      return outcome === 'released'
        ? { status: 200, body: { status: 'released' } }
        : { status: 404, body: { error: 'no-reservation' } };
    }
    return undefined;
  };
}
