import { type Bus, createBus, silentLogger } from '@wharf/core';
import { namespaced, OPERATIONS } from '@wharf/example-order-saga/business';
import { ServiceProcess } from './processes.js';

/** The group in which the harness watches the bus variant's outcomes (besides the saga's own groups). */
export const WATCH_GROUP = 'compare';

/** Final outcome of an order as the harness saw it. */
export type Final = 'confirmed' | 'cancelled:inventory-rejected' | 'cancelled:payment-failed' | 'failed';

/** A running variant: its processes and where it takes orders. */
export interface RunningVariant {
  readonly name: 'sync' | 'async';
  readonly orderUrl: string;
  readonly processes: readonly ServiceProcess[];
  /** The payment service, which the recovery phase kills and starts again. */
  readonly payment: ServiceProcess;
  /**
   * How a 2xx answer to `POST /orders` is read: the synchronous order's final state, or undefined
   * when the order was only accepted and its outcome comes from the bus.
   */
  finalFromResponse(body: string): Final | undefined;
  stop(): Promise<void>;
}

/** The synchronous variant: order, inventory, payment, each its own process, calling one another over HTTP. */
export async function startSync(): Promise<RunningVariant> {
  const [inventory, payment] = await Promise.all([
    ServiceProcess.start('sync', 'inventory', { port: 0 }),
    ServiceProcess.start('sync', 'payment', { port: 0 }),
  ]);
  const order = await ServiceProcess.start('sync', 'order', {
    port: 0,
    inventoryUrl: inventory.url,
    paymentUrl: payment.url,
  });
  const processes = [order, inventory, payment];
  return {
    name: 'sync',
    orderUrl: order.url,
    processes,
    payment,
    finalFromResponse(body) {
      const { state, reason } = JSON.parse(body) as { state?: string; reason?: string };
      if (state === 'confirmed') return 'confirmed';
      if (state === 'cancelled')
        return reason === 'payment-failed' ? 'cancelled:payment-failed' : 'cancelled:inventory-rejected';
      return 'failed';
    },
    stop: () => Promise.all(processes.map((p) => p.stop())).then(() => {}),
  };
}

/**
 * The bus variant: the saga's five services, each its own process, on `url` in `namespace`; the
 * harness watches `OrderConfirmed` and `OrderCancelled` in a group of its own to see each order end.
 */
export async function startAsync(
  url: string,
  namespace: string,
  onFinal: (orderId: string, final: Final) => void,
): Promise<RunningVariant> {
  const watcher: Bus = createBus({ url, logger: silentLogger });
  await watcher.connect();
  const watch = async (operation: 'confirmOrder' | 'cancelOrder'): Promise<void> => {
    await watcher.subscribe(
      namespaced(OPERATIONS[operation].channel, namespace),
      { group: WATCH_GROUP, concurrency: 64, retry: { maxAttempts: 1 } },
      (event) => {
        const data = event.data as { orderId: string; reason?: string };
        onFinal(
          data.orderId,
          operation === 'confirmOrder'
            ? 'confirmed'
            : data.reason === 'payment-failed'
              ? 'cancelled:payment-failed'
              : 'cancelled:inventory-rejected',
        );
      },
    );
  };
  await watch('confirmOrder');
  await watch('cancelOrder');
  const config = { port: 0, url, namespace };
  const others = await Promise.all(
    ['inventory', 'payment', 'notification', 'audit'].map((service) => ServiceProcess.start('async', service, config)),
  );
  const order = await ServiceProcess.start('async', 'order', config);
  const processes = [order, ...others];
  return {
    name: 'async',
    orderUrl: order.url,
    processes,
    payment: others[1] as ServiceProcess,
    finalFromResponse: () => undefined,
    async stop() {
      await Promise.all(processes.map((p) => p.stop()));
      await watcher.close();
    },
  };
}
