import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Bus, consoleLogger, createBus, type Logger, type RetryPolicy, type Stats } from '@wharf/core';
import { connectOrExplain } from './errors.js';
import { startAuditService } from './services/audit.js';
import { startInventoryService } from './services/inventory.js';
import { startNotificationService } from './services/notification.js';
import { type OrderService, startOrderService } from './services/order.js';
import { startPaymentService } from './services/payment.js';
import { createContext, type Service, type ServiceContext } from './services/runtime.js';
import type { Stores } from './state/store.js';
import { type ServiceName, sourceOf } from './topology.js';
import { createSagaBus } from './typed-bus.js';

/**
 * The saga's retry policy: short delays so a run is quick. A flaky charge succeeds on its third
 * attempt; a poison one is dead-lettered after the fourth.
 */
export const SAGA_RETRY: RetryPolicy = { maxAttempts: 4, delays: [100, 200, 300] };

const STARTERS: Record<ServiceName, (ctx: ServiceContext) => Promise<Service>> = {
  order: startOrderService,
  inventory: startInventoryService,
  payment: startPaymentService,
  notification: startNotificationService,
  audit: startAuditService,
};

/** Counters of one service instance, as the coordinator sums them. */
export interface InstanceStats {
  readonly service: ServiceName;
  readonly instance: string;
  readonly bus: Stats;
  /** Duplicates the service itself recognised (beyond the bus's dedup store). */
  readonly serviceDuplicates: number;
}

export interface HostOptions {
  url: string;
  services: readonly ServiceName[];
  stores: Stores;
  /** Instances per service in this process (each with its own bus, competing in the group). Default 1. */
  replicas?: Partial<Record<ServiceName, number>>;
  concurrency?: number;
  retry?: RetryPolicy;
  logger?: Logger;
  /** Where to write this process's counters for a coordinator in another process. */
  statsDir?: string;
  /** Channel namespace of the run (see `SagaOptions.namespace`). */
  namespace?: string;
  /** How long a service waits for a broker that does not answer at start. Default 15 s. */
  brokerWaitMs?: number;
}

/** Services running in this process. */
export interface ServiceHost {
  /** The first order-service instance, when this host runs one. */
  readonly order: OrderService | undefined;
  stats(): InstanceStats[];
  close(): Promise<void>;
}

interface Instance {
  readonly id: string;
  readonly bus: Bus;
  readonly ctx: ServiceContext;
  service: Service | undefined;
}

/** Starts services, each instance on its own bus (its own connection and dedup store), as separate deployments would. */
export async function startHost(options: HostOptions): Promise<ServiceHost> {
  const logger = options.logger ?? consoleLogger(process.env.WHARF_LOG === 'debug' ? 'debug' : 'error');
  const instances: Instance[] = [];
  if (options.statsDir) mkdirSync(options.statsDir, { recursive: true });
  const close = async (): Promise<void> => {
    await Promise.all(instances.map((i) => i.service?.stop()));
    await Promise.all(instances.map((i) => i.bus.close()));
    writeStats();
    if (timer) clearInterval(timer);
  };
  const stats = (): InstanceStats[] =>
    instances.map((i) => ({
      service: i.ctx.name,
      instance: i.id,
      bus: i.bus.stats(),
      serviceDuplicates: i.ctx.counters.duplicates,
    }));
  let timer: NodeJS.Timeout | undefined;
  const writeStats = (): void => {
    if (!options.statsDir) return;
    for (const entry of stats()) {
      // Write then rename: the coordinator must never read half a file.
      const file = join(options.statsDir, `${entry.instance}.json`);
      writeFileSync(`${file}.tmp`, JSON.stringify(entry));
      renameSync(`${file}.tmp`, file);
    }
  };

  try {
    for (const name of options.services) {
      const count = options.replicas?.[name] ?? 1;
      for (let n = 1; n <= count; n++) {
        const bus = createBus({ url: options.url, source: sourceOf(name), logger });
        const ctx = createContext({
          name,
          bus: createSagaBus(bus, options.namespace),
          stores: options.stores,
          retry: options.retry ?? SAGA_RETRY,
          concurrency: options.concurrency ?? 32,
          logger,
        });
        const instance: Instance = { id: `${name}-${process.pid}-${n}`, bus, ctx, service: undefined };
        instances.push(instance);
        await connectOrExplain(bus, { waitMs: options.brokerWaitMs ?? 15_000, logger });
        instance.service = await STARTERS[name](ctx);
      }
    }
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
  if (options.statsDir) {
    writeStats();
    timer = setInterval(writeStats, 100);
    timer.unref();
  }
  const order = instances.find((i) => i.ctx.name === 'order')?.service as OrderService | undefined;
  return { order, stats, close };
}
