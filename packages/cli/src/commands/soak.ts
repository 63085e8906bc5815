import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createBus, silentLogger, stampPayload, windowed } from '@wharf/core';
import { UsageError } from '../args.js';

/** One memory reading of the soak's process, taken between bursts about every `sampleEveryMs`. */
export interface SoakSample {
  /** Seconds since sampling started (after the warm-up). */
  readonly atS: number;
  readonly rssMb: number;
  readonly heapUsedMb: number;
  /** Memory outside the JS heap that V8 knows of (Buffers): where RSS moves when the heap does not. */
  readonly externalMb: number;
  /** Events published and handled since sampling started. */
  readonly events: number;
  /** Events per second handled since the previous sample. */
  readonly throughput: number;
}

/** Least-squares slopes of the memory figures against time. */
export interface SoakSlopes {
  readonly rssMbPerMin: number;
  readonly heapUsedMbPerMin: number;
}

export interface SoakResult {
  readonly seconds: number;
  readonly events: number;
  readonly throughput: number;
  /** True when each sample was taken after a full garbage collection (heapUsed is then the live heap). */
  readonly gcBeforeSample: boolean;
  readonly samples: readonly SoakSample[];
  /** Over every sample. */
  readonly slopes: SoakSlopes;
  /**
   * Over the samples of the second half only: what fills once (the dedup store's 100k keys, JIT
   * code, connection buffers) rises early and then stays, so a leak is the slope that stays here.
   */
  readonly lateSlopes: SoakSlopes;
}

export interface SoakOptions {
  readonly url: string;
  readonly channel: string;
  readonly group: string;
  /** Events per publish burst: the soak publishes bursts of this many, waits for them, and repeats. */
  readonly events: number;
  readonly size: number;
  readonly window: number;
  readonly durationMs: number;
  readonly sampleEveryMs: number;
  readonly onSample?: (sample: SoakSample) => void;
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Parses `10m`, `180s`, `1h`, `500ms` into milliseconds; a bare number is refused as ambiguous. */
export function parseDuration(value: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  const unit = match?.[2];
  const ms = match && unit ? Number(match[1]) * (UNITS[unit] ?? 0) : Number.NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new UsageError(`--${flag} must be a duration such as 10m, 180s or 500ms, got "${value}"`);
  }
  return ms;
}

/** Slope of `y` against `x` by least squares; 0 with fewer than two distinct x. */
export function leastSquaresSlope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * A full collection before each reading, so heapUsed is the live heap and not wherever the young
 * generation happened to be: without it, heapUsed swings by tens of MB between samples and hides a
 * slow leak. `--expose-gc` can be switched on at run time; the function is then reachable from a
 * fresh context. Undefined if this Node refuses, and the soak says so.
 */
function exposeGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as () => void;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

const mb = (bytes: number): number => Math.round((bytes / 1_048_576) * 100) / 100;
const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function slopes(samples: readonly SoakSample[]): SoakSlopes {
  return {
    rssMbPerMin: round3(leastSquaresSlope(samples.map((s) => [s.atS / 60, s.rssMb]))),
    heapUsedMbPerMin: round3(leastSquaresSlope(samples.map((s) => [s.atS / 60, s.heapUsedMb]))),
  };
}

/**
 * Runs the bus bench without stopping for `durationMs`: one bus and one subscription for the whole
 * run, as a service has, publishing bursts of `events` with `window` in flight and waiting for each
 * burst to be handled. One channel for the whole soak rather than one per burst: declaring and
 * deleting hundreds of quorum queues is what wedged RabbitMQ here before (FIELD-NOTES), and a
 * long-lived bus is where a leak would live. Memory is read about every `sampleEveryMs`, after a
 * warm-up burst, and once at the end.
 */
export async function soak(options: SoakOptions): Promise<SoakResult> {
  const gc = exposeGc();
  const bus = createBus({ url: options.url, logger: silentLogger });
  try {
    let handled = 0;
    let target = 0;
    let caughtUp: (() => void) | undefined;
    await bus.subscribe(
      options.channel,
      { group: options.group, concurrency: options.window, dedup: true, retry: { maxAttempts: 1 } },
      () => {
        if (++handled === target) caughtUp?.();
      },
    );
    const burst = async (): Promise<void> => {
      const reached = new Promise<void>((resolve) => {
        caughtUp = resolve;
      });
      target += options.events;
      await windowed(options.events, options.window, () =>
        bus.publish(options.channel, { type: 'BenchEvent', data: stampPayload(options.size) }),
      );
      if (handled < target) await reached;
    };
    // Unsampled: JIT, connections and the first pulls are start-up, not drift.
    await burst();
    const base = handled;
    const t0 = performance.now();
    const samples: SoakSample[] = [];
    let last = { at: t0, handled: base };
    const sample = (): void => {
      gc?.();
      const now = performance.now();
      const memory = process.memoryUsage();
      const s: SoakSample = {
        atS: Math.round((now - t0) / 10) / 100,
        rssMb: mb(memory.rss),
        heapUsedMb: mb(memory.heapUsed),
        externalMb: mb(memory.external),
        events: handled - base,
        throughput: now > last.at ? Math.round(((handled - last.handled) * 1000) / (now - last.at)) : 0,
      };
      last = { at: now, handled };
      samples.push(s);
      options.onSample?.(s);
    };
    sample();
    // Read between bursts, when nothing is in flight: heapUsed is then what the bus keeps, not the
    // window's events and buffers of the moment, which made the readings swing by ±3 MB. A reading
    // is due every `sampleEveryMs` and taken at the first burst boundary after that.
    let due = t0 + options.sampleEveryMs;
    const ended = (): boolean => performance.now() - t0 >= options.durationMs;
    while (!ended()) {
      await burst();
      // memory:// settles in microtasks only: without a turn of the event loop between bursts,
      // nothing queued as a macrotask (timers, signals such as --heapsnapshot-signal) would run.
      await new Promise((resolve) => setImmediate(resolve));
      if (performance.now() >= due || ended()) {
        sample();
        while (due <= performance.now()) due += options.sampleEveryMs;
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const half = seconds / 2;
    return {
      seconds: Math.round(seconds * 100) / 100,
      events: handled - base,
      throughput: Math.round((handled - base) / seconds),
      gcBeforeSample: gc !== undefined,
      samples,
      slopes: slopes(samples),
      lateSlopes: slopes(samples.filter((s) => s.atS >= half)),
    };
  } finally {
    await bus.close();
  }
}
