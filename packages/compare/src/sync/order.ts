import { buildOrder } from '@wharf/example-order-saga/business';
import type { ReservationReply } from './inventory.js';
import type { Route } from './json-http.js';
import { Upstream, UpstreamFailedError, type UpstreamPolicy, UpstreamUnavailableError } from './upstream.js';

/** The final state of a synchronous order, as `POST /orders` answers it. */
export type SyncOrderState = 'confirmed' | 'cancelled' | 'failed';

export interface SyncOrderReply {
  orderId: string;
  state: SyncOrderState;
  reason?: string;
}

/**
 * The order service over HTTP: `POST /orders` validates the order with the saga's rules, reserves
 * stock, charges it and answers with the final state — 200 `confirmed` or `cancelled`
 * (`inventory-rejected`, `payment-failed` after the reservation was released); 502 `failed` when
 * the gateway crashed on the card (the bus variant dead-letters that order); 503 when inventory or
 * payment could not answer in time, after retries or because the circuit is open (the reservation
 * is released when it can be). The caller holds its request open through all of it.
 */
export function orderRoutes(
  urls: { inventory: string; payment: string },
  policy?: UpstreamPolicy,
): {
  route: Route;
  close(): Promise<void>;
} {
  const inventory = new Upstream('inventory', urls.inventory, policy);
  const payment = new Upstream('payment', urls.payment, policy);

  async function release(orderId: string): Promise<void> {
    // Best effort: an unreleased reservation is what a failed synchronous chain leaves behind.
    await inventory.post(`/reservations/${encodeURIComponent(orderId)}/release`, {}).catch(() => {});
  }

  async function place(body: unknown): Promise<{ status: number; body: unknown }> {
    const built = buildOrder(body);
    if (!built.ok) return { status: 400, body: { error: built.error, issues: built.issues } };
    const { orderId, lines, total } = built.payload;
    const reply = (status: number, answer: SyncOrderReply) => ({ status, body: answer });
    let reservation: ReservationReply;
    try {
      reservation = await inventory.post<ReservationReply>('/reservations', { orderId, lines });
    } catch (error) {
      return reply(503, { orderId, state: 'failed', reason: `inventory-unavailable: ${(error as Error).message}` });
    }
    if (reservation.status === 'rejected')
      return reply(200, { orderId, state: 'cancelled', reason: 'inventory-rejected' });
    try {
      const charge = await payment.post<{ status: 'charged' | 'declined' }>('/charges', { orderId, total });
      if (charge.status === 'charged') return reply(200, { orderId, state: 'confirmed' });
      await release(orderId);
      return reply(200, { orderId, state: 'cancelled', reason: 'payment-failed' });
    } catch (error) {
      await release(orderId);
      if (error instanceof UpstreamFailedError)
        return reply(502, { orderId, state: 'failed', reason: 'payment-error' });
      if (error instanceof UpstreamUnavailableError) {
        return reply(503, { orderId, state: 'failed', reason: `payment-unavailable: ${error.message}` });
      }
      throw error;
    }
  }

  return {
    route: async (method, path, body) => {
      if (path !== '/orders') return undefined;
      if (method !== 'POST') return { status: 405, body: { error: 'method-not-allowed' } };
      return place(body);
    },
    close: async () => {
      await Promise.all([inventory.close(), payment.close()]);
    },
  };
}
