import type { DeadLetter } from '@wharf/core';
import { initialStock } from './catalog.js';
import type { InstanceStats } from './host.js';
import { EXPECTED, type Outcome, type PlannedOrder } from './scenario.js';
import { stockScope } from './services/inventory.js';
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
  /** Dead letters (events) by the reason core recorded. */
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

const n = (value: number): string => value.toLocaleString('en-US');

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
  const deadLettersByReason: Record<string, number> = {};
  for (const { deadLetter } of observation.deadLetters) {
    const reason = deadLetter.info?.reason ?? 'unknown';
    deadLettersByReason[reason] = (deadLettersByReason[reason] ?? 0) + 1;
  }
  const confirmed = plan.filter((p) => outcome.get(p.orderId) === 'confirmed');
  const cancelled = plan.filter((p) => outcome.get(p.orderId)?.startsWith('cancelled:'));
  const dead = plan.filter((p) => outcome.get(p.orderId) === 'dead-lettered');
  const unsettled = plan.filter((p) => outcome.get(p.orderId) === 'unsettled');

  // 1. every order terminal or dead-lettered with a reason
  const reasonless = dead.filter((p) => (deadOrders.get(p.orderId) ?? []).some((d) => !d.info?.reason));
  const settled: Invariant = {
    ok: unsettled.length === 0 && reasonless.length === 0,
    detail:
      unsettled.length > 0
        ? `${n(unsettled.length)} orders neither terminal nor dead-lettered, e.g. ${ids(unsettled)}`
        : reasonless.length > 0
          ? `${n(reasonless.length)} dead letters carry no reason, e.g. ${ids(reasonless)}`
          : `${n(plan.length)} orders: ${n(confirmed.length + cancelled.length)} terminal, ${n(dead.length)} dead-lettered with a reason`,
  };

  // 2. each order ended as its scenario kind says
  const wrong = plan.filter((p) => outcome.get(p.orderId) !== EXPECTED[p.kind]);
  const outcomes: Invariant = {
    ok: wrong.length === 0,
    detail:
      wrong.length === 0
        ? `all ${n(plan.length)} orders ended as the scenario predicts`
        : `${n(wrong.length)} orders ended otherwise, e.g. ${wrong
            .slice(0, 3)
            .map((p) => `${p.orderId} (${p.kind}) ${outcome.get(p.orderId)}`)
            .join(', ')}`,
  };

  // 3. stock = initial − items of confirmed orders (− items still held for dead-lettered orders)
  const initial = initialStock();
  const ledger = plan.length > 0 ? await stores.inventory.get(stockScope(plan[0]!.orderId)) : undefined;
  const final = ledger?.stock ?? initial;
  const expected: Record<string, number> = { ...initial };
  const take = (p: PlannedOrder): number => {
    let items = 0;
    for (const line of orders.get(p.orderId)?.lines ?? p.request.lines) {
      expected[line.sku] = (expected[line.sku] ?? 0) - line.quantity;
      items += line.quantity;
    }
    return items;
  };
  const confirmedItems = confirmed.reduce((sum, p) => sum + take(p), 0);
  const holding = dead.filter((p) => ledger?.reservations[p.orderId]?.status === 'reserved');
  const heldItems = holding.reduce((sum, p) => sum + take(p), 0);
  const skus = Object.keys({ ...initial, ...final });
  const off = skus.filter((sku) => final[sku] !== expected[sku]);
  const negative = skus.filter((sku) => (final[sku] ?? 0) < 0);
  const stock: Invariant = {
    ok: off.length === 0 && negative.length === 0,
    detail:
      off.length > 0 || negative.length > 0
        ? `${[...new Set([...off, ...negative])]
            .map((sku) => `${sku}: ${final[sku]} in stock, expected ${expected[sku]}`)
            .join('; ')}`
        : `${skus.length} SKUs: final = initial − ${n(confirmedItems)} items of ${n(confirmed.length)} confirmed orders` +
          (holding.length > 0
            ? ` − ${n(heldItems)} items held for ${n(holding.length)} dead-lettered orders (until replayed)`
            : '') +
          '; never negative',
  };

  // 4. exactly one charge per confirmed order, none for the others
  const payments = new Map((await stores.payments.list(prefix)).map(([key, value]) => [key, value]));
  const badCharges = plan.filter((p) => {
    const charges = payments.get(p.orderId)?.charges ?? 0;
    return outcome.get(p.orderId) === 'confirmed' ? charges !== 1 : charges !== 0;
  });
  const totalCharges = [...payments.values()].reduce((sum, r) => sum + r.charges, 0);
  const charges: Invariant = {
    ok: badCharges.length === 0,
    detail:
      badCharges.length === 0
        ? `${n(totalCharges)} charges: one for each of ${n(confirmed.length)} confirmed orders, none for ${n(cancelled.length)} cancelled and ${n(dead.length)} dead-lettered`
        : `${n(badCharges.length)} orders charged wrongly, e.g. ${badCharges
            .slice(0, 3)
            .map((p) => `${p.orderId} ${outcome.get(p.orderId)} with ${payments.get(p.orderId)?.charges ?? 0} charges`)
            .join(', ')}`,
  };

  // 5. the audit log holds every published event exactly once
  const published = await stores.published.list(prefix);
  const logged = await stores.audit.list(prefix);
  const loggedKeys = new Set(logged.map(([key]) => key));
  const publishedKeys = new Set(published.map(([key]) => key));
  const missing = [...publishedKeys].filter((key) => !loggedKeys.has(key));
  const extra = [...loggedKeys].filter((key) => !publishedKeys.has(key));
  const repeated = logged.length - loggedKeys.size;
  const audit: Invariant = {
    ok: missing.length === 0 && extra.length === 0 && repeated === 0,
    detail:
      missing.length + extra.length + repeated === 0
        ? `${n(published.length)} published events, each in the audit log exactly once`
        : `${missing.length} published events missing from the audit log${missing.length ? ` (e.g. ${missing[0]})` : ''}, ${extra.length} logged but never published, ${repeated} logged twice`,
  };

  // 6. every terminal order was notified once
  const notes = new Map(await stores.notifications.list(prefix));
  const terminal = [...confirmed, ...cancelled];
  const unnotified = terminal.filter((p) => !notes.get(p.orderId)?.published);
  const wrongNote = [...dead, ...unsettled].filter((p) => notes.has(p.orderId));
  const notifications: Invariant = {
    ok: unnotified.length === 0 && wrongNote.length === 0,
    detail:
      unnotified.length + wrongNote.length === 0
        ? `${n(terminal.length)} customers notified once, each about a terminal order`
        : `${unnotified.length} terminal orders without a notification, ${wrongNote.length} notifications for unfinished orders`,
  };

  const invariants = { settled, outcomes, stock, charges, audit, notifications };
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
    notificationsSent: [...notes.values()].filter((r) => r.published).length,
    invariants,
    run: {
      broker: meta.broker,
      runId: meta.runId,
      services: meta.services,
      dedup: { bus: sum((s) => s.bus.duplicates), services: sum((s) => s.serviceDuplicates) },
    },
    timings: {
      durationMs: Math.round(meta.durationMs),
      ordersPerSecond: seconds > 0 ? Math.round(plan.length / seconds) : 0,
    },
  };
}

function ids(orders: readonly PlannedOrder[]): string {
  return orders
    .slice(0, 3)
    .map((p) => p.orderId)
    .join(', ');
}

function sorted(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

/** A summary without what legitimately differs between runs and brokers (`run`, `timings`). */
export function comparable(summary: SagaSummary): Omit<SagaSummary, 'run' | 'timings'> {
  const { run: _run, timings: _timings, ...rest } = summary;
  return rest;
}
