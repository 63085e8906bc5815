import type { Money } from './contract.js';

/** A product the inventory service stocks. Prices are in cents; every catalogue price is whole euros. */
export interface Product {
  readonly sku: string;
  readonly price: number;
  readonly stock: number;
}

export const CURRENCY = 'EUR';

/**
 * Stock is sized so that no run of at most {@link MAX_ORDERS} orders (3 items per line at most) can
 * exhaust a regular product: whether an order is served then never depends on the order in which a
 * broker delivers events, and the summary is the same on every broker.
 */
export const PRODUCTS: readonly Product[] = [
  { sku: 'BOOK-0001', price: 1900, stock: 400_000 },
  { sku: 'MUG-0042', price: 1200, stock: 350_000 },
  { sku: 'LAMP-0007', price: 4500, stock: 300_000 },
  { sku: 'PEN-0100', price: 300, stock: 900_000 },
  { sku: 'TEE-0023', price: 2500, stock: 500_000 },
  { sku: 'BAG-0011', price: 3900, stock: 320_000 },
];

/** A limited edition of which fewer are in stock than any order for it asks: those orders are rejected. */
export const LIMITED: Product = { sku: 'LIMITED-ED-01', price: 9900, stock: 5 };

export const MAX_ORDERS = 100_000;

/** The stock every run starts from. */
export function initialStock(): Record<string, number> {
  const stock: Record<string, number> = {};
  for (const product of [...PRODUCTS, LIMITED]) stock[product.sku] = product.stock;
  return stock;
}

/**
 * The payment sandbox reacts to the cents of the total, as card sandboxes react to magic amounts:
 * catalogue prices are whole euros, so only orders the scenario marks carry these cents.
 */
export const MAGIC_CENTS = { declined: 51, flaky: 52, poison: 53 } as const;

/** A flaky charge fails on this many attempts, then succeeds. */
export const FLAKY_FAILURES = 2;

export type GatewayBehaviour = 'approve' | 'decline' | 'flaky' | 'poison';

export function gatewayBehaviour(total: Money): GatewayBehaviour {
  switch (total.amount % 100) {
    case MAGIC_CENTS.declined:
      return 'decline';
    case MAGIC_CENTS.flaky:
      return 'flaky';
    case MAGIC_CENTS.poison:
      return 'poison';
    default:
      return 'approve';
  }
}
