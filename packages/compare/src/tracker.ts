import { EXPECTED, type OrderKind, type PlannedOrder, planOrders } from '@wharf/example-order-saga/business';
import type { Final } from './variants.js';

/** What happened to one order the load sent. */
interface OrderTrace {
  kind: OrderKind;
  sentAt: number;
  /** HTTP status of `POST /orders`, 0 for a transport error, undefined while in flight. */
  status?: number;
  answeredAt?: number;
  final?: Final;
  finalAt?: number;
}

/**
 * Orders of the saga's scenario, handed out one per request, and what became of each: answer,
 * final outcome, timings on this process's monotonic clock (ms).
 */
export class Tracker {
  readonly #orders = new Map<string, OrderTrace>();
  readonly #seed: number | string;
  readonly #runId: string;
  #plan: PlannedOrder[] = [];
  #chunk = 0;

  constructor(seed: number | string, runId: string) {
    this.#seed = seed;
    this.#runId = runId;
  }

  /** The next order's request body, recorded as sent now. */
  next(): { orderId: string; body: string } {
    if (this.#plan.length === 0) {
      // Chunks of the saga's scenario, each under ids of its own: the mix of kinds stays the saga's.
      this.#plan = planOrders(1_000, `${this.#seed}:${this.#chunk}`, `${this.#runId}c${this.#chunk}`);
      this.#chunk++;
    }
    const order = this.#plan.shift() as PlannedOrder;
    this.#orders.set(order.orderId, { kind: order.kind, sentAt: performance.now() });
    return { orderId: order.orderId, body: JSON.stringify(order.request) };
  }

  answered(orderId: string, status: number, final: Final | undefined): void {
    const trace = this.#orders.get(orderId);
    if (!trace) return;
    trace.status = status;
    trace.answeredAt = performance.now();
    if (final) this.finished(orderId, final);
  }

  finished(orderId: string, final: Final): void {
    const trace = this.#orders.get(orderId);
    if (!trace || trace.final) return;
    trace.final = final;
    trace.finalAt = performance.now();
  }

  /** Orders sent in [from, to) (ms), with their traces. */
  sentBetween(from: number, to: number): OrderTrace[] {
    return [...this.#orders.values()].filter((t) => t.sentAt >= from && t.sentAt < to);
  }

  /** Every order sent so far. */
  all(): OrderTrace[] {
    return [...this.#orders.values()];
  }
}

export type { OrderTrace };

/** Accepted: the service took the order (2xx), or, for a synchronous 502/503, it did not. */
export function accepted(trace: OrderTrace): boolean {
  return trace.status !== undefined && trace.status >= 200 && trace.status < 300;
}

/** The poison card crashes the gateway: dead-lettered on the bus, a 502 over HTTP; counted apart, by design. */
export function poison(trace: OrderTrace): boolean {
  return trace.kind === 'poison';
}

/** An order that ended, but not as the saga's scenario says it must. */
export function mismatched(trace: OrderTrace): boolean {
  return trace.final !== undefined && trace.final !== 'failed' && trace.final !== EXPECTED[trace.kind];
}
