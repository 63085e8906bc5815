import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Bus, consoleLogger, createBus, parseBrokerUrl } from '@wharf/core';
import { MAX_ORDERS } from './catalog.js';
import { connectOrExplain, SagaUsageError } from './errors.js';
import { type InstanceStats, SAGA_RETRY, type ServiceHost, startHost } from './host.js';
import { httpPlacer, type Placer } from './http.js';
import { type PlannedOrder, planOrders } from './scenario.js';
import { fileStores } from './state/file-store.js';
import { memoryStores } from './state/memory-store.js';
import type { Stores } from './state/store.js';
import { type Observation, type SagaSummary, summarize } from './summary.js';
import { consumerGroups, SERVICES, type ServiceName } from './topology.js';

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
  /** Give up waiting for orders to settle after this long (the summary then reports them). */
  timeoutMs?: number;
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

interface Checked {
  url: string;
  orders: number;
  seed: number | string;
  services: ServiceName[];
  replicas: Partial<Record<ServiceName, number>>;
  stateDir: string | undefined;
  timeoutMs: number;
}

function check(options: SagaOptions): Checked {
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
  return { url, orders, seed, services, replicas, stateDir, timeoutMs };
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

/**
 * Runs the order saga: places `orders` orders generated from `seed`, waits until each is confirmed,
 * cancelled or dead-lettered (bounded), and returns the summary with its invariants checked.
 * Throws `SagaUsageError` for bad options and `SagaBrokerError` when the broker is unreachable.
 */
export async function runSaga(options: SagaOptions): Promise<SagaSummary> {
  const o = check(options);
  const started = performance.now();
  const runId = randomBytes(4).toString('hex');
  const plan = planOrders(o.orders, o.seed, runId);
  const progress = (phase: SagaProgress['phase'], placed: number, settled: number): void => {
    if (!options.onProgress) return;
    const elapsedMs = Math.round(performance.now() - started);
    const count =
      phase === 'placing'
        ? `${fmt(placed)}/${fmt(o.orders)} orders placed`
        : `${fmt(settled)}/${fmt(o.orders)} orders settled`;
    const message = `${phase}: ${count} (${(elapsedMs / 1000).toFixed(1)} s)`;
    const report = { phase, placed, settled, total: o.orders, elapsedMs, message, toString: () => message };
    options.onProgress(report);
  };
  progress('starting', 0, 0);

  const logger = consoleLogger(process.env.WHARF_LOG === 'debug' ? 'debug' : 'error');
  const coordinator = createBus({ url: o.url, source: 'urn:wharf:saga-coordinator', logger });
  let host: ServiceHost | undefined;
  try {
    await connectOrExplain(coordinator);
    // Every group exists before the first order, so no event is unroutable or missed by a late subscriber.
    const groups = new Map<string, string[]>();
    for (const { channel, group } of consumerGroups()) groups.set(channel, [...(groups.get(channel) ?? []), group]);
    for (const [channel, names] of groups) await coordinator.declare(channel, { groups: names, retry: SAGA_RETRY });

    const stores: Stores = o.stateDir ? fileStores(o.stateDir) : memoryStores();
    const statsDir = o.stateDir ? join(o.stateDir, 'stats') : undefined;
    if (o.services.length > 0) {
      host = await startHost({ url: o.url, services: o.services, stores, replicas: o.replicas, logger, statsDir });
    }
    const order = host?.order;
    const place: Placer = order
      ? (planned) => order.place(planned.request, { publishTwice: planned.publishTwice })
      : await httpPlacer(options.orderUrl, o.stateDir);

    const placedAt = performance.now();
    await placeAll(plan, place, (placed) => progress('placing', placed, 0));
    const observation = await settle(o, plan, stores, coordinator, runId, progress);
    const durationMs = performance.now() - placedAt;
    progress('checking', plan.length, plan.length);
    const stats = statsDir ? readStats(statsDir) : (host?.stats() ?? []);
    const summary = await summarize({ ...observation, stats }, stores, {
      seed: o.seed,
      runId,
      broker: coordinator.adapter?.name ?? parseBrokerUrl(o.url).scheme,
      services: o.services,
      durationMs,
    });
    progress('done', plan.length, plan.length - summary.unsettled);
    return summary;
  } finally {
    await host?.close();
    await coordinator.close();
  }
}

const PLACING_CONCURRENCY = 64;

async function placeAll(
  plan: readonly PlannedOrder[],
  place: Placer,
  onPlaced: (placed: number) => void,
): Promise<void> {
  let next = 0;
  let placed = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.length) {
      const planned = plan[next++]!;
      const result = await place(planned);
      if (!result.ok) {
        throw new Error(`[wharf] [saga] the order service refused ${planned.orderId}: ${JSON.stringify(result)}`);
      }
      placed++;
      if (placed % 100 === 0 || placed === plan.length) onPlaced(placed);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PLACING_CONCURRENCY, plan.length) }, worker));
}

/** Polls the services' state until every order is terminal or dead-lettered and the audit log caught up. */
async function settle(
  o: Checked,
  plan: readonly PlannedOrder[],
  stores: Stores,
  bus: Bus,
  runId: string,
  progress: (phase: SagaProgress['phase'], placed: number, settled: number) => void,
): Promise<Omit<Observation, 'stats'>> {
  const prefix = `ord_${runId}-`;
  const deadline = performance.now() + o.timeoutMs;
  const local = !o.stateDir && parseBrokerUrl(o.url).scheme === 'memory';
  const pollMs = o.stateDir ? 200 : 100;
  const deadLetterEveryMs = local ? 100 : 500;
  let deadLetters: Observation['deadLetters'] = [];
  let lastDeadLetterCheck = 0;
  let lastReported = -1;
  for (;;) {
    const terminal = new Set<string>();
    for (const [id, order] of await stores.orders.list(prefix)) if (order.state !== 'placed') terminal.add(id);
    const now = performance.now();
    if (terminal.size + deadLetters.length < plan.length && now - lastDeadLetterCheck > deadLetterEveryMs) {
      deadLetters = await listDeadLetters(bus, prefix);
      lastDeadLetterCheck = performance.now();
    }
    const dead = new Set(deadLetters.map((d) => d.orderId).filter((id) => !terminal.has(id)));
    const settled = terminal.size + dead.size;
    if (settled !== lastReported) progress('settling', plan.length, settled);
    lastReported = settled;
    if (settled >= plan.length && (await caughtUp(stores, prefix, terminal.size))) break;
    if (now > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  // One last look, so the summary sees every dead letter and counter of the final state.
  await new Promise((resolve) => setTimeout(resolve, o.stateDir ? 300 : 0));
  deadLetters = await listDeadLetters(bus, prefix);
  return { plan, orders: new Map(await stores.orders.list(prefix)), deadLetters };
}

/** True when every terminal order was notified and the audit log holds every published event of the run. */
async function caughtUp(stores: Stores, prefix: string, terminal: number): Promise<boolean> {
  const notified = (await stores.notifications.list(prefix)).filter(([, r]) => r.published).length;
  if (notified < terminal) return false;
  const published = (await stores.published.list(prefix)).length;
  const logged = (await stores.audit.list(prefix)).length;
  return logged >= published;
}

async function listDeadLetters(bus: Bus, prefix: string): Promise<Observation['deadLetters']> {
  const out: { orderId: string; deadLetter: import('@wharf/core').DeadLetter }[] = [];
  for (const { channel, group } of consumerGroups()) {
    for (const deadLetter of await bus.listDeadLetters(channel, group, { limit: 100_000 })) {
      const event = deadLetter.event;
      const orderId = event?.subject ?? (event?.data as { orderId?: string } | undefined)?.orderId ?? '';
      if (orderId.startsWith(prefix)) out.push({ orderId, deadLetter });
    }
  }
  return out;
}

const fmt = (value: number): string => value.toLocaleString('en-US');

/** True unless the process is known to be gone (its counters are from an earlier run). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Service instances of other processes, still running, that keep their counters in `dir`. */
function liveInstances(dir: string): number {
  return readStats(dir).filter((s) => Number(s.instance.split('-').at(-2)) !== process.pid).length;
}

function readStats(dir: string): InstanceStats[] {
  let names: string[] = [];
  try {
    // Files are named <service>-<pid>-<n>.json; a dead process's counters belong to an earlier run.
    names = readdirSync(dir).filter((name) => name.endsWith('.json') && alive(Number(name.split('-').at(-2))));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    try {
      return [JSON.parse(readFileSync(join(dir, name), 'utf8')) as InstanceStats];
    } catch {
      return [];
    }
  });
}
