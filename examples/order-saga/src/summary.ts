import type { DeadLetter } from '@wharf/core';
import type { InstanceStats } from './host.js';
import {
  auditInvariant,
  chargesInvariant,
  notificationsInvariant,
  outcomesInvariant,
  settledInvariant,
  stockInvariant,
} from './invariants.js';
import type { Outcome, PlannedOrder } from './scenario.js';
import type { OrderRecord } from './services/order.js';
import type { Stores } from './state/store.js';

/** One checked property of a run. */
export interface Invariant {
  readonly ok: boolean;
  readonly detail: string;
}

/** The result of a saga run. Apart from `run` and `timings` it is the same on every broker for a seed. */
export interface SagaSummary {
  readonly ok: boolean;
  readonly seed: number | string;
  readonly orders: number;
  readonly confirmed: number;
  readonly cancelled: number;
  readonly cancelledByReason: Readonly<Record<string, number>>;
  /** Orders whose saga stopped at a dead-lettered event. */
  readonly deadLettered: number;
  /** Dead-lettered events by the reason core recorded, each counted once (a fault can store one twice). */
  readonly deadLettersByReason: Readonly<Record<string, number>>;
  /** Orders that reached none of the above before the timeout (0 in a good run). */
  readonly unsettled: number;
  /** Handler retries scheduled by the policy, over every service. */
  readonly retries: number;
  /**
   * Extra copies of events (the deliberate duplicates) that changed nothing: each one is dropped by
   * the broker (JetStream's id window), the bus's dedup store or the service's own idempotency —
   * where, differs by broker (`run.dedup`); that none had an effect is what the invariants check.
   */
  readonly duplicatesSuppressed: number;
  /** Distinct events the services published, and how many of them were deliberately published twice. */
  readonly eventsPublished: number;
  readonly eventsPublishedTwice: number;
  readonly notificationsSent: number;
  /**
   * Events that left the normal path without a settlement the services asked for (a broker
   * delivery cap reached without a confirmed dead letter, a message removed by retention, a stalled
   * consumer restarted…): `stats().incidents` summed over every service instance. Each one was
   * logged as an error naming its channel, group and event id. 0 in a healthy run.
   */
  readonly incidents: number;
  readonly invariants: {
    readonly settled: Invariant;
    readonly outcomes: Invariant;
    readonly stock: Invariant;
    readonly charges: Invariant;
    readonly audit: Invariant;
    readonly notifications: Invariant;
  };
  /** Where and how it ran (differs between runs). */
  readonly run: {
    readonly broker: string;
    readonly runId: string;
    readonly services: readonly string[];
    /** Duplicate deliveries dropped by consumers: by the bus's dedup store, by the services' own checks. */
    readonly dedup: { readonly bus: number; readonly services: number };
    /**
     * Where the time went, per service (summed over its instances): deliveries handled and the time
     * spent in their handlers (`stats().handlerMs`), for profiling a broker's run.
     */
    readonly handlers: Readonly<Record<string, { readonly delivered: number; readonly handlerMs: number }>>;
  };
  readonly timings: {
    readonly durationMs: number;
    readonly ordersPerSecond: number;
  };
}

/** Everything a summary is computed from. */
export interface Observation {
  readonly plan: readonly PlannedOrder[];
  readonly orders: ReadonlyMap<string, OrderRecord>;
  /** Dead letters of this run, by order id. */
  readonly deadLetters: readonly { orderId: string; deadLetter: DeadLetter }[];
  readonly stats: readonly InstanceStats[];
}

/** The outcome an order reached, as observed. */
export function observedOutcome(order: OrderRecord | undefined, deadLettered: boolean): Outcome | 'unsettled' {
  if (order?.state === 'confirmed') return 'confirmed';
  if (order?.state === 'cancelled') return `cancelled:${order.reason}` as Outcome;
  return deadLettered ? 'dead-lettered' : 'unsettled';
}

export async function summarize(
  observation: Observation,
  stores: Stores,
  meta: { seed: number | string; runId: string; broker: string; services: readonly string[]; durationMs: number },
): Promise<SagaSummary> {
  const { plan, orders } = observation;
  const prefix = `ord_${meta.runId}-`;
  const deadOrders = new Map<string, DeadLetter[]>();
  for (const { orderId, deadLetter } of observation.deadLetters) {
    deadOrders.set(orderId, [...(deadOrders.get(orderId) ?? []), deadLetter]);
  }
  const outcome = new Map(
    plan.map((p) => [p.orderId, observedOutcome(orders.get(p.orderId), deadOrders.has(p.orderId))]),
  );
  const cancelledByReason: Record<string, number> = {};
  for (const o of outcome.values()) {
    if (o.startsWith('cancelled:')) {
      const reason = o.slice('cancelled:'.length);
      cancelledByReason[reason] = (cancelledByReason[reason] ?? 0) + 1;
    }
  }
  // One per dead-lettered event: dead-lettering is at-least-once, so a fault between storing a dead
  // letter and acking the original (a closed channel) stores the event's dead letter twice.
  const deadLettersByReason: Record<string, number> = {};
  const counted = new Set<string>();
  observation.deadLetters.forEach(({ deadLetter }, index) => {
    const key = deadLetter.event?.id ?? `undecodable-${index}`;
    if (counted.has(key)) return;
    counted.add(key);
    const reason = deadLetter.info?.reason ?? 'unknown';
    deadLettersByReason[reason] = (deadLettersByReason[reason] ?? 0) + 1;
  });
  const confirmed = plan.filter((p) => outcome.get(p.orderId) === 'confirmed');
  const cancelled = plan.filter((p) => outcome.get(p.orderId)?.startsWith('cancelled:'));
  const dead = plan.filter((p) => outcome.get(p.orderId) === 'dead-lettered');
  const unsettled = plan.filter((p) => outcome.get(p.orderId) === 'unsettled');

  const run = { plan, orders, outcome, deadOrders, confirmed, cancelled, dead, unsettled, stores, prefix };
  const invariants = {
    settled: settledInvariant(run),
    outcomes: outcomesInvariant(run),
    stock: await stockInvariant(run),
    charges: await chargesInvariant(run),
    audit: await auditInvariant(run),
    notifications: await notificationsInvariant(run),
  };
  const published = await stores.published.list(prefix);
  const notes = await stores.notifications.list(prefix);
  const sum = (pick: (s: InstanceStats) => number): number => observation.stats.reduce((t, s) => t + pick(s), 0);
  const seconds = meta.durationMs / 1000;
  return {
    ok: Object.values(invariants).every((i) => i.ok),
    seed: meta.seed,
    orders: plan.length,
    confirmed: confirmed.length,
    cancelled: cancelled.length,
    cancelledByReason: sorted(cancelledByReason),
    deadLettered: dead.length,
    deadLettersByReason: sorted(deadLettersByReason),
    unsettled: unsettled.length,
    retries: sum((s) => s.bus.retried),
    duplicatesSuppressed: published.reduce((total, [, r]) => total + r.copies - 1, 0),
    eventsPublished: published.length,
    eventsPublishedTwice: published.filter(([, r]) => r.copies > 1).length,
    notificationsSent: notes.filter(([, r]) => r.published).length,
    incidents: sum((s) => s.bus.incidents ?? 0),
    invariants,
    run: {
      broker: meta.broker,
      runId: meta.runId,
      services: meta.services,
      dedup: { bus: sum((s) => s.bus.duplicates), services: sum((s) => s.serviceDuplicates) },
      handlers: perService(observation.stats),
    },
    timings: {
      durationMs: Math.round(meta.durationMs),
      ordersPerSecond: seconds > 0 ? Math.round(plan.length / seconds) : 0,
    },
  };
}

function sorted(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

/** A summary without what legitimately differs between runs and brokers (`run`, `timings`). */
export function comparable(summary: SagaSummary): Omit<SagaSummary, 'run' | 'timings'> {
  const { run: _run, timings: _timings, ...rest } = summary;
  return rest;
}

function perService(stats: readonly InstanceStats[]): Record<string, { delivered: number; handlerMs: number }> {
  const out: Record<string, { delivered: number; handlerMs: number }> = {};
  for (const s of stats) {
    const entry = out[s.service] ?? { delivered: 0, handlerMs: 0 };
    out[s.service] = entry;
    entry.delivered += s.bus.delivered;
    entry.handlerMs += Math.round(s.bus.handlerMs);
  }
  return out;
}
