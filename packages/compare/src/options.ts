import { parseBrokerUrl } from '@wharf/core';
import { CompareUsageError } from './errors.js';

/** Options of {@link runCompare}. */
export interface CompareOptions {
  /** The broker of the bus variant (not `memory://`: its services run in separate processes). */
  url: string;
  /** Offered orders per second, one load run each. Default 50, 100, 200. */
  rates?: readonly number[];
  /** Seconds of load per rate. Default 10. */
  durationS?: number;
  /** Offered rate of the recovery phase. Default: the lowest of `rates`. */
  recoveryRate?: number;
  /**
   * Seconds the payment service stays down in the recovery phase. Default 10. Load runs
   * min(5, durationS) s before the kill and max(10, outageS + 5) s after the restart: the
   * synchronous side's circuit breaker waits 5 s between trials, and a trial made before payment
   * listens again costs another 5.
   */
  outageS?: number;
  /** How long to wait for the bus variant's outstanding orders after a rate (ms). Default 30 s. */
  drainMs?: number;
  /** Scenario seed (the saga's). Default 7. */
  seed?: number | string;
  /** Progress lines (stderr in the CLI). */
  onProgress?: (message: string) => void;
}

export type ResolvedOptions = Required<Omit<CompareOptions, 'onProgress' | 'outageS'>> &
  Pick<CompareOptions, 'onProgress'> & { recoveryPhases: { beforeS: number; outageS: number; afterS: number } };

export const DEFAULT_RATES = [50, 100, 200] as const;

/** Defaults applied and every option checked, with a message saying what is accepted. */
export function resolveOptions(options: CompareOptions): ResolvedOptions {
  const { scheme } = parseBrokerUrl(options.url);
  if (scheme === 'memory') {
    throw new CompareUsageError(
      '[wharf] [compare] memory:// lives inside one process, and the bus variant runs each service in its own: pass a real broker (amqp://, kafka://, nats://)',
    );
  }
  const rates = [...(options.rates ?? DEFAULT_RATES)];
  if (rates.length === 0 || rates.some((r) => !Number.isFinite(r) || r <= 0)) {
    throw new CompareUsageError(
      `[wharf] [compare] --rates must be positive numbers of orders per second, got ${rates.join(',')}`,
    );
  }
  const durationS = options.durationS ?? 10;
  if (!(durationS >= 1))
    throw new CompareUsageError(`[wharf] [compare] --duration must be at least 1 second, got ${durationS}`);
  const outageS = options.outageS ?? 10;
  if (!(outageS >= 1))
    throw new CompareUsageError(`[wharf] [compare] --outage must be at least 1 second, got ${outageS}`);
  return {
    url: options.url,
    rates: rates.sort((a, b) => a - b),
    durationS,
    recoveryRate: options.recoveryRate ?? Math.min(...rates),
    recoveryPhases: { beforeS: Math.min(5, durationS), outageS, afterS: Math.max(10, outageS + 5) },
    drainMs: options.drainMs ?? 30_000,
    seed: options.seed ?? 7,
    onProgress: options.onProgress,
  };
}
