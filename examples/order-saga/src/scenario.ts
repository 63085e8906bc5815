import { CURRENCY, LIMITED, MAGIC_CENTS, PRODUCTS } from './catalog.js';
import type { OrderLine } from './contract.js';

/** What the scenario makes an order do. */
export type OrderKind = 'ok' | 'flaky' | 'declined' | 'out-of-stock' | 'poison';

/** The outcome an order of each kind must reach. */
export type Outcome = 'confirmed' | 'cancelled:inventory-rejected' | 'cancelled:payment-failed' | 'dead-lettered';

export const EXPECTED: Readonly<Record<OrderKind, Outcome>> = {
  ok: 'confirmed',
  flaky: 'confirmed',
  declined: 'cancelled:payment-failed',
  'out-of-stock': 'cancelled:inventory-rejected',
  poison: 'dead-lettered',
};

/** The body of `POST /orders`. */
export interface OrderRequest {
  orderId?: string;
  customerId: string;
  customerEmail?: string;
  lines: OrderLine[];
}

export interface PlannedOrder {
  readonly orderId: string;
  readonly kind: OrderKind;
  /** Publish its events twice (a producer retrying after a lost confirm). */
  readonly publishTwice: boolean;
  readonly request: OrderRequest;
}

/** Share of each kind; `ok` takes the rest. */
const MIX: readonly [OrderKind, number][] = [
  ['flaky', 0.1],
  ['declined', 0.1],
  ['out-of-stock', 0.1],
  ['poison', 0.03],
];
const DUPLICATE_SHARE = 0.08;

/** A seeded PRNG (mulberry32): the same seed gives the same scenario on every machine. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed given as a number or any string, as a 32-bit integer. */
export function seedNumber(seed: number | string): number {
  if (typeof seed === 'number' && Number.isInteger(seed)) return seed >>> 0;
  let hash = 0x811c9dc5;
  for (const char of String(seed)) hash = Math.imul(hash ^ (char.codePointAt(0) ?? 0), 0x01000193);
  return hash >>> 0;
}

/** The orders of a run: kinds and contents derive from the seed only; ids carry the run id. */
export function planOrders(count: number, seed: number | string, runId: string): PlannedOrder[] {
  const next = random(seedNumber(seed));
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  const kinds: OrderKind[] = [];
  for (const [kind, share] of MIX) {
    const n = count >= 10 ? Math.max(1, Math.round(count * share)) : next() < share ? 1 : 0;
    for (let i = 0; i < n && kinds.length < count; i++) kinds.push(kind);
  }
  while (kinds.length < count) kinds.push('ok');
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j] as OrderKind, kinds[i] as OrderKind];
  }

  return kinds.map((kind, i) => {
    const orderId = `ord_${runId}-${String(i + 1).padStart(5, '0')}`;
    const customer = int(1, 500);
    const products = [...PRODUCTS].sort(() => next() - 0.5).slice(0, int(1, 3));
    const lines: OrderLine[] = products.map((p) => ({
      sku: p.sku,
      quantity: int(1, 3),
      unitPrice: { amount: p.price, currency: CURRENCY },
    }));
    const magic =
      kind === 'declined'
        ? MAGIC_CENTS.declined
        : kind === 'flaky'
          ? MAGIC_CENTS.flaky
          : kind === 'poison'
            ? MAGIC_CENTS.poison
            : 0;
    const first = lines[0] as OrderLine;
    if (magic > 0) {
      first.quantity = 1;
      first.unitPrice = { amount: first.unitPrice.amount + magic, currency: CURRENCY };
    }
    if (kind === 'out-of-stock') {
      lines.push({
        sku: LIMITED.sku,
        quantity: int(LIMITED.stock + 1, LIMITED.stock + 4),
        unitPrice: { amount: LIMITED.price, currency: CURRENCY },
      });
    }
    // Only orders whose handling never fails are duplicated, so retry counts stay the same on every broker.
    const publishTwice = (kind === 'ok' || kind === 'declined' || kind === 'out-of-stock') && next() < DUPLICATE_SHARE;
    return {
      orderId,
      kind,
      publishTwice,
      request: { orderId, customerId: `cus_${customer}`, customerEmail: `customer${customer}@example.com`, lines },
    };
  });
}
