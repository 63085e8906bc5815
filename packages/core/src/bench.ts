/**
 * Shared shape of `wharf bench` measurements, so each adapter can ship a raw-client baseline
 * measured exactly like the bus: same event count, payload bytes, durability and publish window.
 */
export interface BenchOptions {
  readonly url: string;
  /** Events to send and consume. */
  readonly events: number;
  /** Payload bytes per event. */
  readonly size: number;
  /** Publishes in flight at once (unconfirmed). */
  readonly window: number;
  /** A fresh channel name for this run. */
  readonly channel: string;
}

export interface BenchResult {
  readonly events: number;
  readonly seconds: number;
  /** Events published, consumed and acked per second, end to end. */
  readonly throughput: number;
  /** Publish-to-handler latency percentiles, ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Client CPU time (user + system) per event, µs. */
  readonly cpuUsPerEvent: number;
}

/** A raw-client baseline: what the bus is compared against. */
export type RawBaseline = (options: BenchOptions) => Promise<BenchResult>;

/**
 * Collects per-event latencies and wall/CPU time; `finish()` computes a `BenchResult`.
 * Start it right before the first publish.
 */
export function startMeasurement(events: number): { record(latencyMs: number): void; finish(): BenchResult } {
  const latencies = new Float64Array(events);
  let n = 0;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  return {
    record(latencyMs: number): void {
      if (n < events) latencies[n++] = latencyMs;
    },
    finish(): BenchResult {
      const seconds = (performance.now() - t0) / 1000;
      const used = process.cpuUsage(cpu);
      const sorted = latencies.subarray(0, n).sort();
      const at = (q: number): number => (n === 0 ? 0 : (sorted[Math.min(n - 1, Math.floor(q * n))] ?? 0));
      return {
        events: n,
        seconds,
        throughput: n / seconds,
        p50Ms: at(0.5),
        p99Ms: at(0.99),
        cpuUsPerEvent: (used.user + used.system) / Math.max(1, n),
      };
    },
  };
}

/** Writes the send time into the first 8 bytes of a payload of `size` bytes (at least 8). */
export function stampPayload(size: number): Uint8Array {
  const buf = Buffer.alloc(Math.max(8, size), 120);
  buf.writeDoubleLE(performance.timeOrigin + performance.now(), 0);
  return buf;
}

/** Latency in ms of a payload stamped by {@link stampPayload}. */
export function payloadAge(payload: Uint8Array): number {
  const sent = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).readDoubleLE(0);
  return performance.timeOrigin + performance.now() - sent;
}

/**
 * Calls `send(i)` for every `i` below `count`, keeping at most `window` calls unresolved, and
 * resolves when all have resolved; rejects with the first failure. Bus and raw baselines pace their
 * publishes with this one loop, so the comparison measures the clients and not the loops.
 */
export async function windowed(
  count: number,
  window: number,
  send: (index: number) => Promise<unknown>,
): Promise<void> {
  let inFlight = 0;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const settled = (): void => {
    inFlight--;
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const failed = (error: unknown): void => {
    failure ??= { error };
    settled();
  };
  for (let i = 0; i < count; i++) {
    while (inFlight >= window) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    if (failure) throw failure.error;
    inFlight++;
    send(i).then(settled, failed);
  }
  while (inFlight > 0) {
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  if (failure) throw failure.error;
}
