import type { DeadLetter } from '@wharf/core';
import { initialStock } from './catalog.js';
import { EXPECTED, type Outcome, type PlannedOrder } from './scenario.js';
import { reservationOf, stockScope } from './services/inventory.js';
import type { OrderRecord } from './services/order.js';
import type { Stores } from './state/store.js';
import type { Invariant } from './summary.js';

/** A run as the invariants see it: the plan, what each order reached, and the services' state. */
export interface RunView {
  readonly plan: readonly PlannedOrder[];
  readonly orders: ReadonlyMap<string, OrderRecord>;
  readonly outcome: ReadonlyMap<string, Outcome | 'unsettled'>;
  readonly deadOrders: ReadonlyMap<string, readonly DeadLetter[]>;
  readonly confirmed: readonly PlannedOrder[];
  readonly cancelled: readonly PlannedOrder[];
  readonly dead: readonly PlannedOrder[];
  readonly unsettled: readonly PlannedOrder[];
  readonly stores: Stores;
  /** Order ids of this run start with it. */
  readonly prefix: string;
}

const n = (value: number): string => value.toLocaleString('en-US');

function ids(orders: readonly PlannedOrder[]): string {
  return orders
    .slice(0, 3)
    .map((p) => p.orderId)
    .join(', ');
}

/** Every order is terminal or dead-lettered with a reason. */
export function settledInvariant(run: RunView): Invariant {
  const { plan, deadOrders, confirmed, cancelled, dead, unsettled } = run;
  const reasonless = dead.filter((p) => (deadOrders.get(p.orderId) ?? []).some((d) => !d.info?.reason));
  return {
    ok: unsettled.length === 0 && reasonless.length === 0,
    detail:
      unsettled.length > 0
        ? `${n(unsettled.length)} orders neither terminal nor dead-lettered, e.g. ${unsettled
            .slice(0, 5)
            .map((p) => `${p.orderId} (${p.kind}, ${run.orders.get(p.orderId)?.state ?? 'never stored'})`)
            .join(', ')}`
        : reasonless.length > 0
          ? `${n(reasonless.length)} dead letters carry no reason, e.g. ${ids(reasonless)}`
          : `${n(plan.length)} orders: ${n(confirmed.length + cancelled.length)} terminal, ${n(dead.length)} dead-lettered with a reason`,
  };
}

/** Each order ended as its scenario kind says. */
export function outcomesInvariant(run: RunView): Invariant {
  const { plan, outcome } = run;
  const wrong = plan.filter((p) => outcome.get(p.orderId) !== EXPECTED[p.kind]);
  return {
    ok: wrong.length === 0,
    detail:
      wrong.length === 0
        ? `all ${n(plan.length)} orders ended as the scenario predicts`
        : `${n(wrong.length)} orders ended otherwise, e.g. ${wrong
            .slice(0, 3)
            .map((p) => `${p.orderId} (${p.kind}) ${outcome.get(p.orderId)}`)
            .join(', ')}`,
  };
}

/** Final stock = initial − items of confirmed orders (− items still held for dead-lettered orders). */
export async function stockInvariant(run: RunView): Promise<Invariant> {
  const { plan, orders, confirmed, dead, stores } = run;
  const initial = initialStock();
  const ledger = plan.length > 0 ? await stores.stock.get(stockScope(plan[0]!.orderId)) : undefined;
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
  const holding: PlannedOrder[] = [];
  for (const p of dead) if ((await reservationOf(stores, p.orderId))?.status === 'reserved') holding.push(p);
  const heldItems = holding.reduce((sum, p) => sum + take(p), 0);
  const skus = Object.keys({ ...initial, ...final });
  const off = skus.filter((sku) => final[sku] !== expected[sku]);
  const negative = skus.filter((sku) => (final[sku] ?? 0) < 0);
  return {
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
}

/** Exactly one charge per confirmed order, none for the others. */
export async function chargesInvariant(run: RunView): Promise<Invariant> {
  const { plan, outcome, confirmed, cancelled, dead, stores, prefix } = run;
  const payments = new Map((await stores.payments.list(prefix)).map(([key, value]) => [key, value]));
  const badCharges = plan.filter((p) => {
    const charges = payments.get(p.orderId)?.charges ?? 0;
    return outcome.get(p.orderId) === 'confirmed' ? charges !== 1 : charges !== 0;
  });
  const totalCharges = [...payments.values()].reduce((sum, r) => sum + r.charges, 0);
  return {
    ok: badCharges.length === 0,
    detail:
      badCharges.length === 0
        ? `${n(totalCharges)} charges: one for each of ${n(confirmed.length)} confirmed orders, none for ${n(cancelled.length)} cancelled and ${n(dead.length)} dead-lettered`
        : `${n(badCharges.length)} orders charged wrongly, e.g. ${badCharges
            .slice(0, 3)
            .map((p) => `${p.orderId} ${outcome.get(p.orderId)} with ${payments.get(p.orderId)?.charges ?? 0} charges`)
            .join(', ')}`,
  };
}

/** The audit log holds every published event exactly once. */
export async function auditInvariant(run: RunView): Promise<Invariant> {
  const { stores, prefix } = run;
  const published = await stores.published.list(prefix);
  const logged = await stores.audit.list(prefix);
  const loggedKeys = new Set(logged.map(([key]) => key));
  const publishedKeys = new Set(published.map(([key]) => key));
  const missing = [...publishedKeys].filter((key) => !loggedKeys.has(key));
  const extra = [...loggedKeys].filter((key) => !publishedKeys.has(key));
  const repeated = logged.length - loggedKeys.size;
  return {
    ok: missing.length === 0 && extra.length === 0 && repeated === 0,
    detail:
      missing.length + extra.length + repeated === 0
        ? `${n(published.length)} published events, each in the audit log exactly once`
        : `${missing.length} published events missing from the audit log${missing.length ? ` (e.g. ${missing[0]})` : ''}, ${extra.length} logged but never published, ${repeated} logged twice`,
  };
}

/** Every terminal order was notified once, no other order was. */
export async function notificationsInvariant(run: RunView): Promise<Invariant> {
  const { confirmed, cancelled, dead, unsettled, stores, prefix } = run;
  const notes = new Map(await stores.notifications.list(prefix));
  const terminal = [...confirmed, ...cancelled];
  const unnotified = terminal.filter((p) => !notes.get(p.orderId)?.published);
  const wrongNote = [...dead, ...unsettled].filter((p) => notes.has(p.orderId));
  return {
    ok: unnotified.length === 0 && wrongNote.length === 0,
    detail:
      unnotified.length + wrongNote.length === 0
        ? `${n(terminal.length)} customers notified once, each about a terminal order`
        : `${unnotified.length} terminal orders without a notification, ${wrongNote.length} notifications for unfinished orders`,
  };
}
