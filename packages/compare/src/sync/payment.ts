import { FLAKY_FAILURES, gatewayBehaviour, type Money } from '@wharf/example-order-saga/business';
import type { Route } from './json-http.js';

/** Header carrying the caller's attempt number: the sandbox gateway's flaky cards fail the first ones. */
export const ATTEMPT_HEADER = 'x-attempt';

interface Charge {
  status: 'charged' | 'declined';
  paymentId: string;
  attempts: number;
}

/**
 * The payment service over HTTP, with the saga's sandbox gateway: an amount ending in 51 is
 * declined (200 `declined`), in 52 fails its first {@link FLAKY_FAILURES} attempts with 503 (worth
 * retrying), in 53 crashes the gateway client (500, no retry helps). One charge per order: a
 * repeated request gets the first answer.
 */
export function paymentRoutes(): Route {
  const ledger = new Map<string, Charge>();
  return async (method, path, body, req) => {
    if (method !== 'POST' || path !== '/charges') return undefined;
    const { orderId, total } = body as { orderId: string; total: Money };
    const known = ledger.get(orderId);
    if (known) return { status: 200, body: known };
    const attempt = Number(req.headers[ATTEMPT_HEADER] ?? 1);
    const behaviour = gatewayBehaviour(total);
    if (behaviour === 'poison') {
      return { status: 500, body: { error: 'gateway-client-crash', message: 'unsupported card BIN' } };
    }
    if (behaviour === 'flaky' && attempt <= FLAKY_FAILURES) {
      return { status: 503, body: { error: 'gateway-unavailable', message: `gateway timed out (attempt ${attempt})` } };
    }
    const charge: Charge = {
      status: behaviour === 'decline' ? 'declined' : 'charged',
      paymentId: `pay_${orderId.slice(4)}`,
      attempts: attempt,
    };
    ledger.set(orderId, charge);
    return { status: 200, body: charge };
  };
}
