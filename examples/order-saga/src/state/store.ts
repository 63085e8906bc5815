/**
 * Where a service keeps its state: a keyed record store with atomic read-modify-write.
 * In one process it is memory; services in separate processes share a directory (a stand-in for
 * the database a real deployment would use), so replicas of a service see one state.
 */
export interface Store<T> {
  get(key: string): Promise<T | undefined>;
  /**
   * Reads the record, lets `change` decide, writes what it returns as `value` (nothing when
   * `value` is undefined) — atomically, also against other processes: the record stays locked
   * until `change` has settled, so `change` may read (or update) records of other stores, always
   * in the same order to avoid deadlocks (the inventory takes its stock record, then a reservation).
   */
  update<R>(key: string, change: (current: T | undefined) => Change<T, R> | Promise<Change<T, R>>): Promise<R>;
  /** Every record whose key starts with `prefix`. */
  list(prefix?: string): Promise<[string, T][]>;
  /** The keys starting with `prefix`, without reading their records (cheap for counting). */
  keys(prefix?: string): Promise<string[]>;
}

/** What an {@link Store.update} writes (`value`, if any) and returns (`result`). */
export interface Change<T, R> {
  value?: T;
  result: R;
}

/** The stores of the saga's services. */
export interface Stores {
  readonly orders: Store<import('../services/order.js').OrderRecord>;
  /** One small record per run (stock scope): the stock the inventory replicas share. */
  readonly stock: Store<import('../services/inventory.js').StockRecord>;
  /** One record per order: its reservation (or rejection) and the events published for it. */
  readonly reservations: Store<import('../services/inventory.js').Reservation>;
  readonly payments: Store<import('../services/payment.js').PaymentRecord>;
  readonly notifications: Store<import('../services/notification.js').NotificationRecord>;
  readonly audit: Store<import('../services/audit.js').AuditRecord>;
  /** Every event a service published (key {@link eventKey}), written after the broker accepted it. */
  readonly published: Store<PublishedRecord>;
}

export interface PublishedRecord {
  readonly type: string;
  readonly channel: string;
  readonly orderId: string;
  /** How many times it was published (2 for the deliberate duplicates). */
  copies: number;
}

/** The key of an event in the published ledger and the audit log: order first, so one run's events list by prefix. */
export function eventKey(orderId: string, source: string, id: string): string {
  return `${orderId} ${source} ${id}`;
}
