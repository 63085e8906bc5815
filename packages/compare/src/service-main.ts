// One service process of the comparison: `node service-main.js <sync|async> <service>`, configured
// by the WHARF_COMPARE_SERVICE environment variable (JSON). Prints `ready <url>` once it serves.
import { runServices } from '@wharf/example-order-saga';
import { inventoryRoutes } from './sync/inventory.js';
import { jsonServer, listen } from './sync/json-http.js';
import { orderRoutes } from './sync/order.js';
import { paymentRoutes } from './sync/payment.js';

/** What the harness passes a service process. */
export interface ServiceConfig {
  /** Port of its HTTP API (0 = any): a restarted sync payment keeps its port, the order service calls it there. */
  port: number;
  /** Async: the broker URL and the run's channel namespace. */
  url?: string;
  namespace?: string;
  /** Sync order service: where inventory and payment listen. */
  inventoryUrl?: string;
  paymentUrl?: string;
}

const [variant, service] = process.argv.slice(2);
// The harness is gone (killed, crashed): stop the way an orchestrator would stop us.
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
const config = JSON.parse(process.env.WHARF_COMPARE_SERVICE ?? '{}') as ServiceConfig;

if (variant === 'async') {
  await runServices({
    url: config.url as string,
    services: [service as string],
    // Each process keeps its state in memory, as the sync services do: a shared file store would
    // make the bus variant pay for a disk the synchronous one does not touch.
    stateDir: false,
    port: config.port,
    faultInjection: false,
    ...(config.namespace ? { namespace: config.namespace } : {}),
    onReady: (running) => process.stdout.write(`ready ${running.orderUrl ?? '-'}\n`),
  });
} else {
  const order =
    service === 'order'
      ? orderRoutes({ inventory: config.inventoryUrl as string, payment: config.paymentUrl as string })
      : undefined;
  const route = order?.route ?? (service === 'inventory' ? inventoryRoutes() : paymentRoutes());
  const server = jsonServer(route);
  const url = await listen(server, config.port);
  process.stdout.write(`ready ${url}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await order?.close();
}
