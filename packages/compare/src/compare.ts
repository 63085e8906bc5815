import { randomBytes } from 'node:crypto';
import { importAdapterModule, parseBrokerUrl, redactUrl } from '@wharf/core';
import { channelGroups } from '@wharf/example-order-saga';
import { namespaced, OPERATIONS } from '@wharf/example-order-saga/business';
import { describeMachine, type Machine } from './machine.js';
import { type CpuMeter, measureRate, measureRecovery, type RatePoint, type Recovery } from './measure.js';
import { type CompareOptions, resolveOptions } from './options.js';
import { cpuSeconds, listenerPid } from './processes.js';
import { Tracker } from './tracker.js';
import { type RunningVariant, startAsync, startSync, WATCH_GROUP } from './variants.js';

/** One variant's figures: the headline (at saturation, and through the payment outage) and the detail. */
export interface VariantResult {
  /** Highest accepted orders/s over the offered rates. */
  acceptedPerSec: number;
  /** `POST /orders` latency at that rate. */
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  /** From the request to the order's outcome, at that rate. */
  completionAvgMs: number;
  completionP99Ms: number;
  /** CPU of every service process per 1,000 completed orders/s, at that rate. */
  coresPer1k: number;
  /** The broker's process, the same way (bus variant, broker on this machine). */
  brokerCoresPer1k?: number;
  /** Payment outage: from its restart to the first confirmed order after it. */
  recoveryMs: number;
  /** Payment outage: accepted orders never completed. */
  lost: number;
  /** Payment outage: orders refused or failed. */
  failed: number;
  rates: RatePoint[];
  recovery: Recovery;
}

/** What `wharf compare --json` prints. */
export interface CompareResult {
  machine: Machine;
  broker: string;
  settings: { rates: number[]; durationS: number; recoveryRate: number; seed: number | string };
  sync: VariantResult;
  async: VariantResult;
}

/** The broker's port on this machine, for its CPU; undefined for a remote or unknown broker. */
function localBrokerPort(url: string): number | undefined {
  const { scheme, hosts } = parseBrokerUrl(url);
  const first = hosts[0];
  if (!first || !['127.0.0.1', 'localhost', '::1'].includes(first.host)) return undefined;
  const defaults: Record<string, number> = { amqp: 5672, amqps: 5671, kafka: 9092, nats: 4222, tls: 4222 };
  return first.port ?? defaults[scheme];
}

/**
 * Measures the order flow as synchronous HTTP calls and as the saga on the bus, with the same load:
 * each offered rate for `durationS`, then a payment outage at the recovery rate. The variants run
 * one after the other, never together, so each has the machine to itself (as far as other work allows).
 */
export async function runCompare(options: CompareOptions): Promise<CompareResult> {
  const o = resolveOptions(options);
  const progress = o.onProgress ?? (() => {});
  const machine = describeMachine();
  const brokerPort = localBrokerPort(o.url);
  const brokerPid = brokerPort === undefined ? undefined : listenerPid(brokerPort);
  const runId = randomBytes(3).toString('hex');

  const measure = async (variant: RunningVariant, tracker: Tracker, withBroker: boolean): Promise<VariantResult> => {
    const cpu: CpuMeter = {
      services: () => variant.processes.reduce((sum, p) => sum + p.cpuSeconds(), 0),
      broker: () => (withBroker && brokerPid !== undefined ? cpuSeconds(brokerPid) : undefined),
    };
    // JIT, connection pools and consumer groups warm up before anything is measured.
    progress(`[compare] ${variant.name}: warming up at ${o.rates[0]} orders/s`);
    await measureRate(variant, tracker, cpu, o.rates[0] as number, 2, o.drainMs);
    const rates: RatePoint[] = [];
    for (const rate of o.rates) {
      progress(`[compare] ${variant.name}: ${rate} orders/s for ${o.durationS} s`);
      const point = await measureRate(variant, tracker, cpu, rate, o.durationS, o.drainMs);
      progress(
        `[compare] ${variant.name}: ${rate}/s offered → ${point.acceptedPerSec}/s accepted, ${point.completedPerSec}/s completed, p99 ${point.latency.p99Ms} ms, completion p99 ${point.completion.p99Ms} ms, ${point.coresPer1k} cores per 1k/s`,
      );
      rates.push(point);
    }
    const { beforeS, outageS, afterS } = o.recoveryPhases;
    progress(`[compare] ${variant.name}: payment outage of ${outageS} s at ${o.recoveryRate} orders/s`);
    const recovery = await measureRecovery(variant, tracker, {
      rate: o.recoveryRate,
      beforeS,
      outageS,
      afterS,
      drainMs: Math.max(o.drainMs, 60_000),
    });
    progress(
      `[compare] ${variant.name}: recovered in ${recovery.recoveryMs} ms; ${recovery.lost} lost, ${recovery.failed} failed of ${recovery.sent}`,
    );
    const top = rates.reduce((best, r) => (r.acceptedPerSec > best.acceptedPerSec ? r : best), rates[0] as RatePoint);
    return {
      acceptedPerSec: top.acceptedPerSec,
      avgMs: top.latency.avgMs,
      p50Ms: top.latency.p50Ms,
      p99Ms: top.latency.p99Ms,
      completionAvgMs: top.completion.avgMs,
      completionP99Ms: top.completion.p99Ms,
      coresPer1k: top.coresPer1k,
      ...(top.brokerCoresPer1k !== undefined ? { brokerCoresPer1k: top.brokerCoresPer1k } : {}),
      recoveryMs: recovery.recoveryMs,
      lost: recovery.lost,
      failed: recovery.failed,
      rates,
      recovery,
    };
  };

  progress(`[compare] starting the synchronous variant (order → inventory → payment over HTTP)`);
  const syncTracker = new Tracker(o.seed, `${runId}s`);
  const sync = await startSync();
  let syncResult: VariantResult;
  try {
    syncResult = await measure(sync, syncTracker, false);
  } finally {
    await sync.stop();
  }

  const namespace = `cmp${runId}`;
  progress(`[compare] starting the bus variant (the saga's five services) on ${redactUrl(o.url)}`);
  const asyncTracker = new Tracker(o.seed, `${runId}a`);
  let asyncResult: VariantResult;
  try {
    const bus = await startAsync(o.url, namespace, (orderId, final) => asyncTracker.finished(orderId, final));
    try {
      asyncResult = await measure(bus, asyncTracker, true);
    } finally {
      await bus.stop();
    }
  } finally {
    await deleteChannels(o.url, namespace);
  }

  return {
    machine,
    broker: redactUrl(o.url),
    settings: { rates: [...o.rates], durationS: o.durationS, recoveryRate: o.recoveryRate, seed: o.seed },
    sync: syncResult,
    async: asyncResult,
  };
}

/**
 * Deletes what the bus variant declared in its namespace (queues/topics/streams, retry tiers, dead
 * letters), through the adapter's own harness. Never throws: a broker that is gone has nothing left.
 */
async function deleteChannels(url: string, namespace: string): Promise<void> {
  const watched = new Set(
    [OPERATIONS.confirmOrder.channel, OPERATIONS.cancelOrder.channel].map((c) => namespaced(c, namespace)),
  );
  try {
    const { conformanceHarness } = (await importAdapterModule(url)) as unknown as {
      conformanceHarness(url: string): {
        cleanup(channel: string, groups: readonly string[], retryDelaysMs?: readonly number[]): Promise<void>;
      };
    };
    const harness = conformanceHarness(url);
    for (const [channel, groups] of channelGroups(namespace)) {
      const all = watched.has(channel) ? [...groups, WATCH_GROUP] : groups;
      // The saga's retry tiers (100, 200, 300 ms): named, or their queues outlive the run.
      await harness.cleanup(channel, all, [100, 200, 300]).catch(() => {});
    }
  } catch {
    // The adapter is not installed or the broker is gone: nothing to delete.
  }
}
