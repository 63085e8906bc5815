import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Bus,
  type BusOptions,
  consoleLogger,
  createBus,
  type Instrumentation,
  type Logger,
  type RetryPolicy,
  type Stats,
} from '@wharf/core';
import { createTracing } from '@wharf/otel';
import { createInbox, createOutbox } from '@wharf/postgres';
import { busBacklog } from '@wharf/prometheus';
import type pg from 'pg';
import { connectOrExplain } from './errors.js';
import { type MetricsEndpoint, type MetricsListen, mergeExpositions, ServiceMetrics, serveMetrics } from './metrics.js';
import { OutboxBus } from './outbox-bus.js';
import { startAuditService } from './services/audit.js';
import { startInventoryService } from './services/inventory.js';
import { startNotificationService } from './services/notification.js';
import { type OrderService, startOrderService } from './services/order.js';
import { startPaymentService } from './services/payment.js';
import { createContext, type Service, type ServiceContext } from './services/runtime.js';
import type { Stores } from './state/store.js';
import { consumerGroups, type ServiceName, sourceOf } from './topology.js';
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
  /**
   * Makes each service's bus (default `createBus`): a test passes its test bus's `createBus`, so the
   * services run on the test's broker and clock and their events are recorded.
   */
  createBus?: (options: BusOptions) => Bus;
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
  /**
   * Prometheus metrics: every service gets a registry of its own and serves it on `GET /metrics`
   * (default: a free port per service on 127.0.0.1). `{ serve: false }` keeps the registries
   * without HTTP endpoints; `false` leaves the buses without metrics.
   */
  metrics?: false | (MetricsListen & { serve?: boolean });
  /**
   * OpenTelemetry spans (`@wharf/otel`) on every bus, made with the global tracer provider: the
   * application registers the SDK (without one every span is a no-op). Default false.
   */
  tracing?: boolean;
  /**
   * `--store postgres`: the order, inventory and payment services handle each event in an inbox
   * transaction and send through the outbox of `schema` (migrated), on `pool`; a relay (not started
   * here) publishes the outbox. Their `stores` must then be PostgreSQL stores on the same pool.
   */
  postgres?: { pool: pg.Pool; schema: string };
  /**
   * Adapter options of each service's buses (`BusOptions.adapterOptions`), e.g. credentials of its own
   * (`wharf saga --secure`: a user per service that may publish only where it sends and consume only its
   * own group). A service without an entry uses the URL's and the environment's credentials.
   */
  adapterOptions?: Partial<Record<ServiceName, Record<string, unknown>>>;
}

/** Services whose state and events go through PostgreSQL with `--store postgres`. */
export const TRANSACTIONAL: readonly ServiceName[] = ['order', 'inventory', 'payment'];

/** Services running in this process. */
export interface ServiceHost {
  /** The first order-service instance, when this host runs one. */
  readonly order: OrderService | undefined;
  /** Each service's metrics (empty with `metrics: false`). */
  readonly metrics: ReadonlyMap<ServiceName, ServiceMetrics>;
  /** Each service's `/metrics` endpoint. */
  readonly metricsEndpoints: readonly MetricsEndpoint[];
  /** Every service's metrics in one Prometheus text document (series labelled `service`). */
  metricsText(): Promise<string>;
  stats(): InstanceStats[];
  close(): Promise<void>;
}

interface Instance {
  readonly id: string;
  readonly bus: Bus;
  readonly ctx: ServiceContext;
  service: Service | undefined;
}

/** The order service with each `place` in a transaction: the order row and its `OrderPlaced` commit together. */
function transactional(service: OrderService, bus: OutboxBus): OrderService {
  return { ...service, place: (body, options) => bus.transaction(() => service.place(body, options)) };
}

/** Starts services, each instance on its own bus (its own connection and dedup store), as separate deployments would. */
export async function startHost(options: HostOptions): Promise<ServiceHost> {
  const logger = options.logger ?? consoleLogger(process.env.WHARF_LOG === 'debug' ? 'debug' : 'error');
  const instances: Instance[] = [];
  const metrics = new Map<ServiceName, ServiceMetrics>();
  const endpoints: MetricsEndpoint[] = [];
  if (options.statsDir) mkdirSync(options.statsDir, { recursive: true });
  const close = async (): Promise<void> => {
    await Promise.all(instances.map((i) => i.service?.stop()));
    await Promise.all(instances.map((i) => i.bus.close()));
    await Promise.all(endpoints.map((e) => e.close()));
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
      const listen = options.metrics === false ? undefined : (options.metrics ?? {});
      // The backlog of the service's groups, read through its first bus when Prometheus scrapes.
      let reader: Bus | undefined;
      const retry = options.retry ?? SAGA_RETRY;
      const groups = consumerGroups(options.namespace)
        .filter(({ group }) => group === name)
        .map(({ channel, group }) => ({ channel, group, retry }));
      const source = busBacklog(
        {
          backlog: (channel, group, read) =>
            reader === undefined
              ? Promise.reject(new Error(`the ${name} service has no bus yet`))
              : reader.backlog(channel, group, read),
        },
        groups,
      );
      const serviceMetrics = listen ? new ServiceMetrics(name, { source, logger }) : undefined;
      if (listen && serviceMetrics) {
        metrics.set(name, serviceMetrics);
        if (listen.serve !== false) endpoints.push(await serveMetrics(serviceMetrics, listen));
      }
      for (let n = 1; n <= count; n++) {
        const instrumentation: Instrumentation[] = [];
        if (serviceMetrics) instrumentation.push(serviceMetrics.bus);
        if (options.tracing) instrumentation.push(createTracing());
        const adapterOptions = options.adapterOptions?.[name];
        const busOptions = {
          url: options.url,
          source: sourceOf(name),
          logger,
          instrumentation,
          ...(adapterOptions ? { adapterOptions } : {}),
        };
        const pg = TRANSACTIONAL.includes(name) ? options.postgres : undefined;
        const outbox = pg && createOutbox(pg.pool, { schema: pg.schema, source: sourceOf(name) });
        // The inbox's commit wakes this process's relay, so what the handler emitted goes out at once.
        const bus =
          pg && outbox
            ? new OutboxBus(
                busOptions,
                outbox,
                createInbox(pg.pool, { schema: pg.schema, afterCommit: () => outbox.nudge() }),
              )
            : (options.createBus ?? createBus)(busOptions);
        reader ??= bus;
        const ctx = createContext({
          metrics: serviceMetrics,
          name,
          bus: createSagaBus(bus, options.namespace),
          stores: options.stores,
          retry: options.retry ?? SAGA_RETRY,
          concurrency: options.concurrency ?? 32,
          logger,
        });
        if (bus instanceof OutboxBus) bus.onDuplicate = () => ctx.counters.duplicates++;
        const instance: Instance = { id: `${name}-${process.pid}-${n}`, bus, ctx, service: undefined };
        instances.push(instance);
        await connectOrExplain(bus, { waitMs: options.brokerWaitMs ?? 15_000, logger });
        const service = await STARTERS[name](ctx);
        instance.service =
          bus instanceof OutboxBus && name === 'order' ? transactional(service as OrderService, bus) : service;
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
  const metricsText = async (): Promise<string> =>
    mergeExpositions(await Promise.all([...metrics.values()].map((m) => m.text())));
  return { order, metrics, metricsEndpoints: endpoints, metricsText, stats, close };
}
