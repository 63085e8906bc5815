import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { consoleLogger, createBus, parseBrokerUrl } from '@wharf/core';
import { untilBrokerAnswers } from './broker-wait.js';
import { connectOrExplain } from './errors.js';
import { SAGA_RETRY, type ServiceHost, startHost } from './host.js';
import { httpPlacer, type Placer } from './http.js';
import { mergeExpositions, remoteMetrics, writeMetricsFile } from './metrics.js';
import { observe } from './observe.js';
import { checkOptions, type SagaOptions, type SagaProgress } from './options.js';
import { openPostgresState, type PostgresState } from './postgres.js';
import { type PlannedOrder, planOrders } from './scenario.js';
import { fileStores } from './state/file-store.js';
import { memoryStores } from './state/memory-store.js';
import type { Stores } from './state/store.js';
import { readStats } from './stats.js';
import { type SagaSummary, summarize } from './summary.js';
import { channelGroups } from './topology.js';

export type { SagaOptions, SagaProgress } from './options.js';

/**
 * Runs the order saga: places `orders` orders generated from `seed`, waits until each is confirmed,
 * cancelled or dead-lettered (bounded), and returns the summary with its invariants checked.
 * Throws `SagaUsageError` for bad options and `SagaBrokerError` when the broker is unreachable.
 */
export async function runSaga(options: SagaOptions): Promise<SagaSummary> {
  const o = checkOptions(options);
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
  let postgres: PostgresState | undefined;
  let relayBus: ReturnType<typeof createBus> | undefined;
  try {
    await connectOrExplain(coordinator, { waitMs: o.brokerWaitMs, logger });
    // Every group exists before the first order, so no event is unroutable or missed by a late subscriber.
    for (const [channel, names] of channelGroups(o.namespace)) {
      await untilBrokerAnswers(
        `declaring ${channel}`,
        () => coordinator.declare(channel, { groups: names, retry: SAGA_RETRY }),
        { waitMs: o.brokerWaitMs, logger },
      );
    }

    if (o.store === 'postgres') {
      postgres = await openPostgresState(o, runId, logger);
      relayBus = createBus({ url: o.url, source: 'urn:wharf:saga-relay', logger });
      await connectOrExplain(relayBus, { waitMs: o.brokerWaitMs, logger });
      postgres.startRelay(relayBus);
    }
    const stores: Stores = postgres?.stores ?? (o.stateDir ? fileStores(o.stateDir) : memoryStores());
    const statsDir = o.stateDir ? join(o.stateDir, 'stats') : undefined;
    if (o.services.length > 0) {
      host = await startHost({
        url: o.url,
        services: o.services,
        stores,
        replicas: o.replicas,
        logger,
        statsDir,
        brokerWaitMs: o.brokerWaitMs,
        metrics: o.metrics ? { port: o.metricsPort } : false,
        tracing: o.tracing,
        ...(postgres ? { postgres: postgres.host } : {}),
        ...(o.namespace ? { namespace: o.namespace } : {}),
        ...(options.serviceAdapterOptions ? { adapterOptions: options.serviceAdapterOptions } : {}),
      });
    }
    const order = host?.order;
    const place: Placer = order
      ? (planned) => order.place(planned.request, { publishTwice: planned.publishTwice })
      : await httpPlacer(options.orderUrl, o.stateDir);

    const placedAt = performance.now();
    await placeAll(plan, place, (placed) => progress('placing', placed, 0));
    const observation = await observe(o, plan, stores, coordinator, runId, progress, logger);
    const durationMs = performance.now() - placedAt;
    const dead = new Set(observation.deadLetters.map((d) => d.orderId));
    const settled = plan.filter((p) => {
      const state = observation.orders.get(p.orderId)?.state;
      return (state !== undefined && state !== 'placed') || dead.has(p.orderId);
    }).length;
    progress('checking', plan.length, settled);
    if (o.metricsFile) {
      const texts = [(await host?.metricsText()) ?? ''];
      if (o.stateDir) texts.push(...(await remoteMetrics(o.stateDir, logger)));
      writeMetricsFile(o.metricsFile, mergeExpositions(texts));
    }
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
    await postgres?.close();
    await relayBus?.close();
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

const fmt = (value: number): string => value.toLocaleString('en-US');
