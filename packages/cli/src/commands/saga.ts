import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse, UsageError } from '../args.js';
import { applyConnection, brokerConnection, connectionFlags, connectionUsage } from '../connection.js';
import { json, type Output } from '../output.js';
import { secureUp } from '../secure.js';
import {
  SECURE_SAGA_KINDS,
  type SecureSagaKind,
  type ServiceAccess,
  type ServiceAdapterOptions,
  secureSagaUsers,
} from '../secure-saga.js';

export const sagaUsage = `wharf saga [--broker <url>] [--orders N] [--seed S] [--services order,inventory,…] [--namespace NS] [--broker-wait SECONDS] [--metrics-file PATH] [--metrics-port N]
           [--store memory|postgres] [--postgres-url <url>] [--postgres-schema S] [--json]
wharf saga --secure --broker rabbitmq|nats|kafka [--orders N] [--seed S] [--namespace NS] [--json]
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
its own, dropped at the end (--postgres-schema S keeps state in S instead). demo = saga on memory://.

--secure runs the saga with least privilege on the secure brokers (wharf brokers up secure; started
if none run): every service connects as a user of its own (over mutual TLS; on Kafka over TLS with
SCRAM-SHA-512, its rights as ACLs) that may publish only to the channels it sends on and consume only
its own group; the coordinator (declaring, observing) connects as the admin user. The users are <NS>-<service> (saga-<service> without --namespace), with passwords
made for the run in files (mode 0600) under the secure brokers' directory; no password is printed.

${connectionUsage}`;

interface SagaModule {
  runSaga(options: Record<string, unknown>): Promise<unknown>;
  runServices(options: Record<string, unknown>): Promise<unknown>;
  formatSummary(summary: unknown): string;
  serviceAccess(namespace?: string): ServiceAccess[];
}

/**
 * `--secure`: finds or starts the secure brokers, creates one least-privilege user per service, and
 * returns the admin connection's URL (its credentials applied to this process's environment) and each
 * service's adapter options.
 */
async function secureRun(
  broker: string | undefined,
  namespace: string | undefined,
  mod: SagaModule,
  output: Output,
): Promise<{ url: string; serviceAdapterOptions: ServiceAdapterOptions }> {
  if (!SECURE_SAGA_KINDS.includes(broker as SecureSagaKind))
    throw new UsageError(
      `--secure needs --broker rabbitmq, --broker nats or --broker kafka, got ${JSON.stringify(broker ?? '')}`,
    );
  const kind = broker as SecureSagaKind;
  output.err('finding or starting the secure brokers (wharf brokers up secure)…');
  const { state, started } = await secureUp();
  if (started)
    output.err(
      `secure brokers started (files in ${state.dir}); they keep running: wharf brokers down secure stops them`,
    );
  const endpoint = state[kind];
  if (!endpoint)
    throw new UsageError(
      `the secure brokers in ${state.dir} have no ${kind}: wharf brokers down secure, then try again`,
    );
  // The admin connection: exactly the flags `wharf brokers up secure` prints for this broker.
  const { values } = parse([...endpoint.args], { ...connectionFlags, broker: { type: 'string' } });
  const url = applyConnection(brokerConnection(values.broker, values));
  const { users, options } = await secureSagaUsers(state, kind, mod.serviceAccess(namespace), namespace);
  output.err(`least privilege on ${kind}: services run as ${users.join(', ')} (passwords in ${state.dir}/users)`);
  return { url, serviceAdapterOptions: options };
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
    ...connectionFlags,
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
    secure: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const secure = values.secure === true;
  if (secure) {
    const conflicting = [
      ...Object.keys(connectionFlags),
      'services',
      'store',
      'postgres-url',
      'postgres-schema',
    ].filter((flag) => values[flag as keyof typeof values] !== undefined);
    if (demo || conflicting.length > 0)
      throw new UsageError(
        `--secure chooses the broker's connection and runs every service here: it cannot be combined with ${demo ? 'demo' : conflicting.map((f) => `--${f}`).join(', ')}`,
      );
  }
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
  const secured = secure ? await secureRun(values.broker, values.namespace, mod, output) : undefined;
  const url = demo ? 'memory://' : (secured?.url ?? applyConnection(brokerConnection(values.broker, values)));
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
    ...(secured ? { serviceAdapterOptions: secured.serviceAdapterOptions } : {}),
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
