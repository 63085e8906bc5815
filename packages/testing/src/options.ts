import type { ContractTypes, RuntimeContract } from '@wharf/asyncapi';
import { type BusOptions, ConfigError, parseBrokerUrl } from '@wharf/core';

/** Options of {@link createTestBus}. */
export interface TestBusOptions<C extends ContractTypes = ContractTypes> {
  /** The generated contract (`wharf codegen`): `typed` sends and subscribes by operation, recorders are typed by channel. */
  contract?: RuntimeContract<C>;
  /**
   * A real broker URL to run the same test against. Default: `WHARF_TEST_BROKER`, else memory with
   * a virtual clock. On a real broker every channel and group gets a per-bus prefix and is deleted by `close()`.
   */
  broker?: string;
  /**
   * On a real broker, retry delays are multiplied by this before the broker holds them (a 30 s
   * delay waits 30 ms at the default 0.001): the broker cannot be made to skip time. Default 0.001.
   */
  timeScale?: number;
  /** On a real broker, a scaled delay longer than this throws `RealTimeError` at subscribe. Default 2,000 ms. */
  maxRealDelayMs?: number;
  /** How long `settled()` waits before it throws `SettleTimeoutError`. Default 10 s (30 s on a real broker). */
  settleTimeoutMs?: number;
  /** Options for every bus the kit creates (source, logger, dedup, validator, instrumentation…). */
  bus?: Omit<BusOptions, 'url' | 'adapter'>;
  /** Adapter options on a real broker (Kafka gets test-friendly session and poll settings unless given here). */
  adapterOptions?: Record<string, unknown>;
}

/**
 * Kafka settings that make a test take seconds: a short session and heartbeat so group joins settle
 * fast (6 s is the broker's minimum session timeout), short long-polls so due retries are picked up at once.
 */
export const KAFKA_TEST_OPTIONS: Readonly<Record<string, unknown>> = Object.freeze({
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 300,
  rebalanceTimeoutMs: 10_000,
  maxWaitTimeMs: 100,
  commitIntervalMs: 200,
  releaseBackoffMs: 100,
  connectTimeoutMs: 10_000,
});

export interface ResolvedTestBusOptions {
  /** Undefined: memory with a virtual clock. */
  readonly broker: string | undefined;
  readonly scheme: string;
  readonly timeScale: number;
  readonly maxRealDelayMs: number;
  readonly settleTimeoutMs: number;
  readonly adapterOptions: Record<string, unknown>;
}

export function resolveOptions(options: TestBusOptions<ContractTypes>): ResolvedTestBusOptions {
  const url = options.broker ?? (process.env.WHARF_TEST_BROKER || undefined);
  const scheme = url === undefined ? 'memory' : parseBrokerUrl(url).scheme;
  const broker = scheme === 'memory' ? undefined : url;
  const timeScale = options.timeScale ?? 0.001;
  if (!(typeof timeScale === 'number' && timeScale > 0 && timeScale <= 1)) {
    throw new ConfigError('testing', `timeScale must be a number above 0 and at most 1, got ${String(timeScale)}`);
  }
  const maxRealDelayMs = options.maxRealDelayMs ?? 2_000;
  if (!(typeof maxRealDelayMs === 'number' && maxRealDelayMs >= 0)) {
    throw new ConfigError(
      'testing',
      `maxRealDelayMs must be a number of milliseconds >= 0, got ${String(maxRealDelayMs)}`,
    );
  }
  const settleTimeoutMs = options.settleTimeoutMs ?? (broker === undefined ? 10_000 : 30_000);
  return {
    broker,
    scheme,
    timeScale: broker === undefined ? 1 : timeScale,
    maxRealDelayMs: broker === undefined ? Number.POSITIVE_INFINITY : maxRealDelayMs,
    settleTimeoutMs,
    adapterOptions: { ...(scheme === 'kafka' ? KAFKA_TEST_OPTIONS : {}), ...options.adapterOptions },
  };
}
