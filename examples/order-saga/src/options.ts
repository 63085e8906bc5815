import { join } from 'node:path';
import { parseBrokerUrl } from '@wharf/core';
import { MAX_ORDERS } from './catalog.js';
import { SagaUsageError } from './errors.js';
import { liveInstances } from './stats.js';
import { SERVICES, type ServiceName } from './topology.js';

/** Options of {@link runSaga}. */
export interface SagaOptions {
  /** Broker URL: `memory://`, `amqp://…`, `kafka://…`, `nats://…`. */
  url: string;
  /** Orders to place: a positive integer, at most 100,000. */
  orders: number;
  /** Seed of the scenario; the same seed gives the same summary on every broker. Default 1. */
  seed?: number | string;
  /**
   * Services to run in this process (default: all five). Run the others with `runServices` in
   * other processes sharing `stateDir`; `[]` makes this process only the coordinator.
   */
  services?: readonly ServiceName[];
  /** Instances of each service in this process, competing in its group (a number for all). Default 1. */
  replicas?: number | Partial<Record<ServiceName, number>>;
  /**
   * Directory the services of a multi-process run share their state through; used when not all
   * services run here, or when services started by `runServices` on this machine are running.
   * Default `.wharf/saga` in the working directory (as for `runServices`).
   */
  stateDir?: string;
  /** The order service's HTTP API when it runs elsewhere. Default: the URL it wrote to `stateDir`. */
  orderUrl?: string;
  /**
   * Runs the saga on channels of its own, `<namespace>.<contract address>` (letters, digits, `_`
   * and `-`), so runs sharing a broker never consume each other's events. Every process of one run
   * must use the same namespace. Default: none, the contract's addresses.
   */
  namespace?: string;
  /**
   * How long to wait for a broker that does not answer at start (starting, restarting) before
   * failing with `SagaBrokerError`. Default 15 s.
   */
  brokerWaitMs?: number;
  /** Give up waiting for orders to settle after this long (the summary then reports them). */
  timeoutMs?: number;
  /**
   * Prometheus metrics on every service (a registry each, served on `/metrics`). Default true;
   * false runs the buses without metrics (to measure what they cost).
   */
  metrics?: boolean;
  /**
   * Writes every service's metrics, in Prometheus text format (series labelled `service`), to this
   * file at the end of the run: those of the services in this process, and those of services in
   * other processes sharing `stateDir` (read from the `/metrics` endpoints they announced there).
   */
  metricsFile?: string;
  /**
   * Port of the services' `/metrics` endpoints: 0 (default) a free port each; N > 0 the order
   * service on N, inventory N+1, payment N+2, notification N+3, audit N+4.
   */
  metricsPort?: number;
  /**
   * OpenTelemetry spans on every service's bus and on `POST /orders`, made with the global tracer
   * provider (register the SDK first; see `scripts/trace-orders.ts`). Default false.
   */
  tracing?: boolean;
  /**
   * Where the order, inventory and payment services keep their state: `'memory'` (default, or the
   * shared `stateDir` of a multi-process run) or `'postgres'`, where each handler runs in an inbox
   * transaction and its events go through a transactional outbox and a relay (`@wharf/postgres`).
   */
  store?: 'memory' | 'postgres';
  /** PostgreSQL of `store: 'postgres'`. Default `postgres://postgres@127.0.0.1:5432/test`. */
  postgresUrl?: string;
  /**
   * Schema of `store: 'postgres'` (created and migrated if needed, kept after the run). Default: a
   * schema of the run's own, `saga_<run id>`, dropped at the end, so runs sharing a database never meet.
   */
  postgresSchema?: string;
  /**
   * Adapter options of each service's buses, e.g. credentials of its own (see `HostOptions.adapterOptions`).
   * The coordinator, which declares every group and observes the run, uses the URL's and the environment's.
   */
  serviceAdapterOptions?: Partial<Record<ServiceName, Record<string, unknown>>>;
  /** Accepted so CLI flags pass straight through; runSaga never prints. */
  json?: boolean;
  onProgress?: (progress: SagaProgress) => void;
}

export interface SagaProgress {
  readonly phase: 'starting' | 'placing' | 'settling' | 'checking' | 'done';
  readonly placed: number;
  readonly settled: number;
  readonly total: number;
  readonly elapsedMs: number;
  /** One line for humans, e.g. `settling: 1,940/2,000 orders settled (2.1 s)`; also what `String(progress)` gives. */
  readonly message: string;
}

/** Where services of a multi-process run share state when no `stateDir` is given (git-ignored). */
export const DEFAULT_STATE_DIR = join('.wharf', 'saga');

export interface Checked {
  url: string;
  orders: number;
  seed: number | string;
  services: ServiceName[];
  replicas: Partial<Record<ServiceName, number>>;
  stateDir: string | undefined;
  timeoutMs: number;
  namespace: string | undefined;
  brokerWaitMs: number;
  metrics: boolean;
  metricsFile: string | undefined;
  metricsPort: number;
  tracing: boolean;
  store: 'memory' | 'postgres';
  postgresUrl: string;
  postgresSchema: string | undefined;
}

/** The PostgreSQL of `--store postgres` when none is given: the local `test` database. */
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

export function checkOptions(options: SagaOptions): Checked {
  if (options === null || typeof options !== 'object') throw new SagaUsageError('runSaga needs an options object');
  const { orders } = options;
  if (typeof orders !== 'number' || !Number.isInteger(orders) || orders < 1) {
    throw new SagaUsageError(`--orders must be a positive integer, got ${String(orders)}`);
  }
  if (orders > MAX_ORDERS) throw new SagaUsageError(`--orders must be at most ${MAX_ORDERS}, got ${orders}`);
  let seed = options.seed ?? 1;
  if (!((typeof seed === 'number' && Number.isInteger(seed)) || (typeof seed === 'string' && seed.length > 0))) {
    throw new SagaUsageError(`--seed must be an integer or a non-empty string, got ${String(seed)}`);
  }
  // `--seed 42` arrives as a string: it is the same scenario as the number 42.
  if (typeof seed === 'string' && /^\d{1,9}$/.test(seed)) seed = Number(seed);
  const url = options.url ?? process.env.WHARF_BROKER ?? 'memory://';
  parseBrokerUrl(url);
  const services = checkServices(options.services ?? SERVICES);
  const replicas: Partial<Record<ServiceName, number>> = {};
  for (const service of SERVICES) {
    const count = typeof options.replicas === 'number' ? options.replicas : (options.replicas?.[service] ?? 1);
    if (!Number.isInteger(count) || count < 1 || count > 64) {
      throw new SagaUsageError(`replicas must be an integer from 1 to 64, got ${String(count)} for ${service}`);
    }
    replicas[service] = count;
  }
  if (services.length < SERVICES.length && parseBrokerUrl(url).scheme === 'memory') {
    throw new SagaUsageError(
      'memory:// lives inside one process, so services in other processes cannot reach it: run every service here or use a real broker',
    );
  }
  // Services started with runServices on this machine keep their state in the default directory;
  // a run that also hosts services here must share it, or one order would live in two states.
  const split =
    services.length < SERVICES.length ||
    (parseBrokerUrl(url).scheme !== 'memory' && liveInstances(join(DEFAULT_STATE_DIR, 'stats')) > 0);
  const stateDir = options.stateDir ?? (split ? DEFAULT_STATE_DIR : undefined);
  const timeoutMs = options.timeoutMs ?? 60_000 + orders * 20;
  const namespace = checkNamespace(options.namespace);
  const brokerWaitMs = options.brokerWaitMs ?? 15_000;
  if (!(brokerWaitMs >= 0)) throw new SagaUsageError(`brokerWaitMs must be 0 or more, got ${String(brokerWaitMs)}`);
  const metricsPort = checkMetricsPort(options.metricsPort);
  const metricsFile = options.metricsFile;
  if (metricsFile !== undefined && (typeof metricsFile !== 'string' || metricsFile === '')) {
    throw new SagaUsageError(`--metrics-file must be a file path, got ${JSON.stringify(metricsFile)}`);
  }
  const tracing = options.tracing === true;
  const metrics = options.metrics !== false;
  if (!metrics && metricsFile !== undefined) throw new SagaUsageError('--metrics-file needs the metrics on');
  const store = options.store ?? 'memory';
  if (store !== 'memory' && store !== 'postgres') {
    throw new SagaUsageError(`--store must be memory or postgres, got ${JSON.stringify(store)}`);
  }
  if (store === 'postgres' && stateDir !== undefined) {
    throw new SagaUsageError(
      '--store postgres runs every service in this process (services in other processes or a --state-dir are not supported with it yet)',
    );
  }
  const postgresUrl = options.postgresUrl ?? DEFAULT_POSTGRES_URL;
  if (!/^postgres(ql)?:\/\//.test(postgresUrl)) {
    throw new SagaUsageError(`--postgres-url must be a postgres:// URL, got ${JSON.stringify(postgresUrl)}`);
  }
  const postgresSchema = options.postgresSchema;
  if (postgresSchema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(postgresSchema)) {
    throw new SagaUsageError(
      `--postgres-schema must be a lower-case SQL identifier (letters, digits, _), got ${JSON.stringify(postgresSchema)}`,
    );
  }
  if (store === 'memory' && (options.postgresUrl !== undefined || postgresSchema !== undefined)) {
    throw new SagaUsageError('--postgres-url and --postgres-schema need --store postgres');
  }
  return {
    store,
    postgresUrl,
    postgresSchema,
    metrics,
    url,
    orders,
    seed,
    services,
    replicas,
    stateDir,
    timeoutMs,
    namespace,
    brokerWaitMs,
    metricsFile,
    metricsPort,
    tracing,
  };
}

/** Validates the base port of the services' `/metrics` endpoints (0 = a free port each). */
export function checkMetricsPort(port: unknown): number {
  if (port === undefined) return 0;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_530) {
    throw new SagaUsageError(`--metrics-port must be an integer from 0 to 65530, got ${String(port)}`);
  }
  return port;
}

/** Validates a channel namespace (`--namespace t1`): empty or absent means none. */
export function checkNamespace(namespace: unknown): string | undefined {
  if (namespace === undefined || namespace === '') return undefined;
  if (typeof namespace !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(namespace)) {
    throw new SagaUsageError(
      `--namespace must be 1-64 letters, digits, "_" or "-", starting with a letter or digit, got ${JSON.stringify(namespace)}`,
    );
  }
  return namespace;
}

/** Validates a list of service names (`--services order,inventory`). */
export function checkServices(services: readonly string[]): ServiceName[] {
  if (!Array.isArray(services)) throw new SagaUsageError('services must be a list of service names');
  for (const name of services) {
    if (!SERVICES.includes(name as ServiceName)) {
      throw new SagaUsageError(`unknown service "${name}"; the services are ${SERVICES.join(', ')}`);
    }
  }
  return [...new Set(services)] as ServiceName[];
}
