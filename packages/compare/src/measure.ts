import { offerLoad, type RequestLatency } from './load.js';
import { accepted, mismatched, type OrderTrace, poison, type Tracker } from './tracker.js';
import type { RunningVariant } from './variants.js';

/** One fixed offered rate. */
export interface RatePoint {
  offeredPerSec: number;
  acceptedPerSec: number;
  /** Orders whose outcome arrived during the rate's load and drain, per second of load. */
  completedPerSec: number;
  latency: RequestLatency;
  completion: { avgMs: number; p99Ms: number };
  /** Non-poison orders not accepted (503, errors, timeouts). */
  failed: number;
  /** Accepted non-poison orders still without an outcome when the drain gave up. */
  pending: number;
  /** CPU seconds of every service process per 1,000 completed orders (= cores per 1,000 orders/s). */
  coresPer1k: number;
  /** The same for the broker's process, when it runs on this machine and can be read. */
  brokerCoresPer1k?: number;
  mismatched: number;
}

/** One second of the recovery phase. */
export interface TimelinePoint {
  /** Seconds since the phase began. */
  t: number;
  sent: number;
  accepted: number;
  failed: number;
  /** Orders confirmed in that second. */
  confirmed: number;
}

export interface Recovery {
  offeredPerSec: number;
  /** Seconds (since the phase began) at which payment was killed and started again. */
  killedAt: number;
  restartedAt: number;
  /** From payment's restart to the first order confirmed after it; -1 if none was within {@link watchedMs}. */
  recoveryMs: number;
  /** How long after the restart orders were watched (load, then drain). */
  watchedMs: number;
  /** Accepted, non-poison orders that never reached an outcome after a full drain. */
  lost: number;
  /** Non-poison orders the variant refused or failed (503, errors, timeouts). */
  failed: number;
  /** Orders sent during the phase. */
  sent: number;
  timeline: TimelinePoint[];
}

/** Accepted orders that must end (poison orders are dead-lettered on the bus) and have not yet. */
function unfinished(traces: readonly OrderTrace[]): number {
  return traces.filter((t) => accepted(t) && !poison(t) && t.final === undefined).length;
}

/** Waits until every accepted order of `traces()` has its outcome, or `timeoutMs` passed. */
async function drain(traces: () => OrderTrace[], timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (unfinished(traces()) > 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function completionOf(traces: readonly OrderTrace[]): { avgMs: number; p99Ms: number } {
  const times = traces
    .filter((t) => t.final !== undefined && t.final !== 'failed' && t.finalAt !== undefined)
    .map((t) => (t.finalAt as number) - t.sentAt)
    .sort((a, b) => a - b);
  const avg = times.length === 0 ? 0 : times.reduce((a, b) => a + b, 0) / times.length;
  return { avgMs: round(avg), p99Ms: round(percentile(times, 99)) };
}

const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** Not accepted and not poison: what the order's client saw fail. */
function failedOf(traces: readonly OrderTrace[]): number {
  return traces.filter((t) => !poison(t) && t.status !== undefined && !accepted(t)).length;
}

/** CPU counters of the variant's processes and of the broker. */
export interface CpuMeter {
  services(): number;
  broker(): number | undefined;
}

/** Offers one rate for `seconds`, lets the outcomes arrive, and measures it. */
export async function measureRate(
  variant: RunningVariant,
  tracker: Tracker,
  cpu: CpuMeter,
  rate: number,
  seconds: number,
  drainMs: number,
): Promise<RatePoint> {
  const from = performance.now();
  const cpuFrom = cpu.services();
  const brokerFrom = cpu.broker();
  const load = await offerLoad(variant, tracker, rate, seconds);
  const traces = () => tracker.sentBetween(from, Number.POSITIVE_INFINITY);
  await drain(traces, drainMs);
  const cpuUsed = cpu.services() - cpuFrom;
  const brokerTo = cpu.broker();
  const all = traces();
  const completed = all.filter((t) => t.final !== undefined && t.final !== 'failed').length;
  const point: RatePoint = {
    offeredPerSec: rate,
    acceptedPerSec: round(all.filter(accepted).length / load.seconds),
    completedPerSec: round(completed / load.seconds),
    latency: { avgMs: round(load.latency.avgMs), p50Ms: load.latency.p50Ms, p99Ms: load.latency.p99Ms },
    completion: completionOf(all),
    failed: failedOf(all) + load.errors,
    pending: unfinished(all),
    coresPer1k: completed === 0 ? 0 : round((cpuUsed / completed) * 1000, 2),
    mismatched: all.filter(mismatched).length,
  };
  if (brokerFrom !== undefined && brokerTo !== undefined && completed > 0) {
    point.brokerCoresPer1k = round(((brokerTo - brokerFrom) / completed) * 1000, 2);
  }
  return point;
}

export interface RecoveryPlan {
  rate: number;
  /** Load before the kill, the outage, and load after the restart, in seconds. */
  beforeS: number;
  outageS: number;
  afterS: number;
  drainMs: number;
}

/** Offers a steady rate, kills the payment service, starts it again after the outage, and follows every order to its end. */
export async function measureRecovery(
  variant: RunningVariant,
  tracker: Tracker,
  plan: RecoveryPlan,
): Promise<Recovery> {
  const from = performance.now();
  const seconds = plan.beforeS + plan.outageS + plan.afterS;
  let killedAt = 0;
  let restartedAt = 0;
  const faults = (async () => {
    await new Promise((resolve) => setTimeout(resolve, plan.beforeS * 1000));
    killedAt = performance.now();
    await variant.payment.kill();
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, killedAt + plan.outageS * 1000 - performance.now())),
    );
    restartedAt = performance.now();
    await variant.payment.restart();
  })();
  const load = await offerLoad(variant, tracker, plan.rate, seconds);
  await faults;
  const traces = () => tracker.sentBetween(from, Number.POSITIVE_INFINITY);
  await drain(traces, plan.drainMs);
  const all = traces();
  const firstAfter = all
    .filter((t) => t.final === 'confirmed' && (t.finalAt as number) >= restartedAt)
    .reduce((min, t) => Math.min(min, t.finalAt as number), Number.POSITIVE_INFINITY);
  const end = Math.max(...all.map((t) => t.finalAt ?? t.answeredAt ?? t.sentAt), from + seconds * 1000);
  const timeline: TimelinePoint[] = [];
  for (let t = 0; from + t * 1000 < end; t++) {
    const inSecond = (at: number | undefined) =>
      at !== undefined && at >= from + t * 1000 && at < from + (t + 1) * 1000;
    timeline.push({
      t,
      sent: all.filter((o) => inSecond(o.sentAt)).length,
      accepted: all.filter((o) => accepted(o) && inSecond(o.answeredAt)).length,
      failed: all.filter((o) => !poison(o) && o.status !== undefined && !accepted(o) && inSecond(o.answeredAt)).length,
      confirmed: all.filter((o) => o.final === 'confirmed' && inSecond(o.finalAt)).length,
    });
  }
  return {
    offeredPerSec: plan.rate,
    killedAt: round((killedAt - from) / 1000),
    restartedAt: round((restartedAt - from) / 1000),
    recoveryMs: Number.isFinite(firstAfter) ? Math.round(firstAfter - restartedAt) : -1,
    watchedMs: Math.round(performance.now() - restartedAt),
    lost: unfinished(all),
    failed: failedOf(all) + load.errors,
    sent: all.length,
    timeline,
  };
}
