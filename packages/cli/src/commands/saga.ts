import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { brokerUrl, parse, UsageError } from '../args.js';
import { json, type Output } from '../output.js';

export const sagaUsage = `wharf saga [--broker <url>] [--orders N] [--seed S] [--services order,inventory,…] [--namespace NS] [--broker-wait SECONDS] [--metrics-file PATH] [--metrics-port N]
           [--store memory|postgres] [--postgres-url <url>] [--postgres-schema S] [--json]
wharf demo

Runs the order saga (order, inventory, payment, notification and audit services) on a broker and
prints the outcome summary and invariants; the same seed gives the same summary on every broker.
--services runs only those services (for separate processes); every process of one run gives the
same --namespace to have channels of its own (<NS>.<address>) on a shared broker. --broker-wait bounds
how long to wait for a broker that does not answer at start (default: forever with --services, 15 s
otherwise), then exits with status 1. Every service serves Prometheus metrics on GET /metrics
(--metrics-port N: order on N, inventory N+1, payment N+2, notification N+3, audit N+4; default a
free port each); --metrics-file writes every service's metrics, in Prometheus text format, at the
end of the run. --store postgres keeps the order, inventory and payment services' state in PostgreSQL
(--postgres-url, default postgres://postgres@127.0.0.1:5432/test): each handler runs in an inbox
transaction and its events go through a transactional outbox and a relay; the run gets a schema of
its own, dropped at the end (--postgres-schema S keeps state in S instead). demo = saga on memory://.`;

interface SagaModule {
  runSaga(options: Record<string, unknown>): Promise<unknown>;
  runServices(options: Record<string, unknown>): Promise<unknown>;
  formatSummary(summary: unknown): string;
}

async function loadSaga(): Promise<SagaModule> {
  const name = '@wharf/example-order-saga';
  try {
    return (await import(name)) as SagaModule;
  } catch {
    try {
      const resolved = createRequire(join(process.cwd(), 'noop.js')).resolve(name);
      return (await import(pathToFileURL(resolved).href)) as SagaModule;
    } catch (cause) {
      throw new UsageError(
        `the order saga example (${name}) is not available: run from a Wharf checkout (${String(cause)})`,
      );
    }
  }
}

function sagaFailed(summary: unknown): boolean {
  const invariants = (summary as { invariants?: Record<string, { ok: boolean }> }).invariants ?? {};
  return Object.values(invariants).some((i) => !i.ok);
}

export async function saga(argv: string[], output: Output, demo = false): Promise<number> {
  const { values } = parse(argv, {
    broker: { type: 'string' },
    orders: { type: 'string' },
    seed: { type: 'string' },
    services: { type: 'string' },
    replicas: { type: 'string' },
    namespace: { type: 'string' },
    'broker-wait': { type: 'string' },
    'metrics-file': { type: 'string' },
    'metrics-port': { type: 'string' },
    store: { type: 'string' },
    'postgres-url': { type: 'string' },
    'postgres-schema': { type: 'string' },
    json: { type: 'boolean' },
  });
  const url = demo ? 'memory://' : brokerUrl(values.broker);
  const orders = values.orders === undefined ? (demo ? 200 : 100) : Number(values.orders);
  if (!Number.isInteger(orders) || orders < 1)
    throw new UsageError(`--orders must be a positive integer, got "${values.orders}"`);
  const seed = values.seed ?? '42';
  const brokerWait = values['broker-wait'] === undefined ? undefined : Number(values['broker-wait']);
  if (brokerWait !== undefined && !(Number.isFinite(brokerWait) && brokerWait >= 0))
    throw new UsageError(`--broker-wait must be a number of seconds (0 or more), got "${values['broker-wait']}"`);
  const brokerWaitMs = brokerWait === undefined ? {} : { brokerWaitMs: brokerWait * 1_000 };
  const metricsPort = values['metrics-port'] === undefined ? undefined : Number(values['metrics-port']);
  if (metricsPort !== undefined && !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort <= 65_530))
    throw new UsageError(`--metrics-port must be an integer from 0 to 65530, got "${values['metrics-port']}"`);
  if (values['metrics-file'] !== undefined && values.services)
    throw new UsageError('--metrics-file is for the coordinator: a --services process serves its metrics on /metrics');
  const metrics = {
    ...(metricsPort === undefined ? {} : { metricsPort }),
    ...(values['metrics-file'] ? { metricsFile: values['metrics-file'] } : {}),
  };
  if (values.store !== undefined && values.store !== 'memory' && values.store !== 'postgres')
    throw new UsageError(`--store must be memory or postgres, got "${values.store}"`);
  if (values.store === 'postgres' && values.services)
    throw new UsageError('--store postgres runs every service in one process: it cannot be combined with --services');
  const store = {
    ...(values.store ? { store: values.store } : {}),
    ...(values['postgres-url'] ? { postgresUrl: values['postgres-url'] } : {}),
    ...(values['postgres-schema'] ? { postgresSchema: values['postgres-schema'] } : {}),
  };
  const mod = await loadSaga();
  if (values.services) {
    await mod.runServices({
      url,
      seed,
      services: values.services.split(',').map((s) => s.trim()),
      ...(values.namespace ? { namespace: values.namespace } : {}),
      ...brokerWaitMs,
      ...metrics,
    });
    return 0;
  }
  const summary = await mod.runSaga({
    url,
    orders,
    seed,
    ...(values.replicas ? { replicas: Number(values.replicas) } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...brokerWaitMs,
    ...metrics,
    ...store,
    onProgress: values.json ? undefined : (progress: { message: string }) => output.err(progress.message),
  });
  if (values.json) json(output, summary);
  else output.out(mod.formatSummary(summary));
  return sagaFailed(summary) ? 1 : 0;
}
