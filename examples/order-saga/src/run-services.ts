import { mkdirSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseBrokerUrl, type RetryPolicy, redactUrl } from '@wharf/core';
import { SagaUsageError } from './errors.js';
import { type HostOptions, startHost } from './host.js';
import { createOrderApi } from './http.js';
import { announceMetrics } from './metrics.js';
import { checkMetricsPort, checkNamespace, checkServices, DEFAULT_STATE_DIR } from './options.js';
import { fileStores } from './state/file-store.js';
import { memoryStores } from './state/memory-store.js';
import { SERVICES, type ServiceName } from './topology.js';

/** Options of {@link startServices} and {@link runServices}. */
export interface ServicesOptions {
  url: string;
  /** Makes each service's bus (default `createBus`); see `HostOptions.createBus`. */
  createBus?: HostOptions['createBus'];
  /** Which services to run (default all five). */
  services?: readonly string[];
  /** Instances of each service in this process. Default 1. */
  replicas?: Partial<Record<ServiceName, number>>;
  /**
   * Directory shared with the other processes of the run (state and counters): default
   * `.wharf/saga` in the working directory; `false` keeps state in memory (all services in this process).
   */
  stateDir?: string | false;
  /** Port of the order service's HTTP API (0 = any free port). Default 0. */
  port?: number;
  /** Interface the HTTP API listens on. Default 127.0.0.1. */
  host?: string;
  /** Honour the saga's `x-wharf-fault` header. Default true. */
  faultInjection?: boolean;
  retry?: RetryPolicy;
  /**
   * How long to wait for a broker that does not answer at start before failing. Default: as long
   * as it takes (a service outlives its broker's restarts, as under an orchestrator).
   */
  brokerWaitMs?: number;
  /** Channel namespace of the run: the same as the coordinator's (see `SagaOptions.namespace`). */
  namespace?: string;
  /**
   * Port of the services' `/metrics` endpoints: 0 (default) a free port each; N > 0 the order
   * service on N, inventory N+1, payment N+2, notification N+3, audit N+4. They listen on `host`.
   * With a state directory each endpoint is announced in `<stateDir>/metrics/`, where the
   * coordinator's `metricsFile` finds it.
   */
  metricsPort?: number;
  /** OpenTelemetry spans on the buses and on `POST /orders` (see `SagaOptions.tracing`). Default false. */
  tracing?: boolean;
  /** Accepted for CLI pass-through: the scenario comes from the coordinator's seed. */
  seed?: number | string;
}

export interface RunningServices {
  readonly services: readonly ServiceName[];
  /** Base URL of the order service's HTTP API, when this process runs it. */
  readonly orderUrl: string | undefined;
  /** Each service's `/metrics` URL. */
  readonly metricsUrls: Readonly<Partial<Record<ServiceName, string>>>;
  close(): Promise<void>;
}

/** Starts services in this process; resolves once they consume. */
export async function startServices(options: ServicesOptions): Promise<RunningServices> {
  const services = checkServices(options.services ?? SERVICES);
  if (services.length === 0) throw new SagaUsageError('--services names no service');
  parseBrokerUrl(options.url);
  const stateDir = options.stateDir === false ? undefined : (options.stateDir ?? DEFAULT_STATE_DIR);
  if (stateDir) mkdirSync(stateDir, { recursive: true });
  const stores = stateDir ? fileStores(stateDir) : memoryStores();
  const namespace = checkNamespace(options.namespace);
  const host = await startHost({
    url: options.url,
    ...(options.createBus ? { createBus: options.createBus } : {}),
    services,
    stores,
    ...(options.replicas ? { replicas: options.replicas } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
    ...(stateDir ? { statsDir: join(stateDir, 'stats') } : {}),
    ...(namespace ? { namespace } : {}),
    brokerWaitMs: options.brokerWaitMs ?? Number.MAX_SAFE_INTEGER,
    metrics: { port: checkMetricsPort(options.metricsPort), host: options.host ?? '127.0.0.1' },
    tracing: options.tracing === true,
  });
  const unannounce = stateDir ? announceMetrics(stateDir, host.metricsEndpoints) : () => {};
  let server: Server | undefined;
  let orderUrl: string | undefined;
  if (host.order) {
    server = createOrderApi(host.order, {
      faultInjection: options.faultInjection ?? true,
      tracing: options.tracing === true,
    });
    const listening = server;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    const address = server.address() as AddressInfo;
    orderUrl = `http://${address.address}:${address.port}`;
    if (stateDir) writeFileSync(join(stateDir, 'order-url'), orderUrl);
  }
  return {
    services,
    orderUrl,
    metricsUrls: Object.fromEntries(host.metricsEndpoints.map((e) => [e.service, e.url])),
    async close() {
      unannounce();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await host.close();
    },
  };
}

/**
 * Runs services as one process of a multi-process saga until SIGTERM or SIGINT, then shuts down
 * gracefully (in-flight events finish or return to the broker).
 */
export async function runServices(
  options: ServicesOptions & { onReady?: (running: RunningServices) => void },
): Promise<void> {
  const running = await startServices(options);
  if (options.onReady) options.onReady(running);
  else {
    const api = running.orderUrl ? `; order API at ${running.orderUrl}` : '';
    const metrics = Object.entries(running.metricsUrls)
      .map(([service, url]) => `${service} ${url}`)
      .join(', ');
    process.stderr.write(
      `[saga] ${running.services.join(', ')} running on ${redactUrl(options.url)}${api}; metrics: ${metrics}; SIGTERM or Ctrl-C stops\n`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await running.close();
}
