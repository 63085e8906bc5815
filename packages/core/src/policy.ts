import { ConfigError } from './errors.js';

/**
 * How a failed event is retried. Give either explicit `delays` (one per retry) or an exponential
 * `backoff`; with neither, the default schedule is 5 s then 30 s.
 *
 * @example
 * ```ts
 * { maxAttempts: 5, backoff: { initialMs: 1000, multiplier: 2, maxMs: 60_000 }, jitter: 0.1 }
 * ```
 */
export interface RetryPolicy {
  /** Total deliveries to the handler, the first included. `1` means no retry. Default 3. */
  maxAttempts?: number;
  /** Delay before each retry in ms: `delays[0]` before attempt 2, and so on; the last one repeats. */
  delays?: readonly number[];
  /** Exponential delays: `initialMs * multiplier^(n-1)`, capped at `maxMs`. */
  backoff?: { initialMs: number; multiplier?: number; maxMs?: number };
  /** Random spread of each delay, as a fraction (0.1 = ±10 %). Default 0. */
  jitter?: number;
}

/** A validated policy: `delays` has exactly `maxAttempts - 1` entries (the retry tiers). */
export interface NormalizedRetryPolicy {
  readonly maxAttempts: number;
  readonly delays: readonly number[];
  readonly jitter: number;
}

export const DEFAULT_RETRY_POLICY: NormalizedRetryPolicy = Object.freeze({
  maxAttempts: 3,
  delays: Object.freeze([5_000, 30_000]),
  jitter: 0,
});

const MAX_ATTEMPTS_LIMIT = 1_000;
/** 24 days: the largest delay every broker's TTL and every JS timer accepts. */
const MAX_DELAY_MS = 2 ** 31 - 1;

function checkDelay(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_DELAY_MS) {
    throw new ConfigError(
      'policy',
      `${what} must be a number of milliseconds from 0 to ${MAX_DELAY_MS}, got ${String(value)}`,
    );
  }
  return Math.round(value);
}

/** Validates a policy and expands it into one delay per retry; throws `ConfigError`. */
export function normalizeRetryPolicy(policy: RetryPolicy | undefined): NormalizedRetryPolicy {
  if (policy === undefined) return DEFAULT_RETRY_POLICY;
  const maxAttempts = policy.maxAttempts ?? DEFAULT_RETRY_POLICY.maxAttempts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS_LIMIT) {
    throw new ConfigError(
      'policy',
      `retry.maxAttempts must be an integer from 1 to ${MAX_ATTEMPTS_LIMIT}, got ${String(maxAttempts)}`,
    );
  }
  const jitter = policy.jitter ?? 0;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) {
    throw new ConfigError('policy', `retry.jitter must be a fraction from 0 to 1, got ${String(jitter)}`);
  }
  if (policy.delays !== undefined && policy.backoff !== undefined) {
    throw new ConfigError('policy', 'give retry.delays or retry.backoff, not both');
  }
  const retries = maxAttempts - 1;
  let delays: number[];
  if (policy.delays !== undefined) {
    if (!Array.isArray(policy.delays) || (policy.delays.length === 0 && retries > 0)) {
      throw new ConfigError('policy', 'retry.delays must be a non-empty array of milliseconds');
    }
    const given = policy.delays.map((d, i) => checkDelay(d, `retry.delays[${i}]`));
    delays = Array.from({ length: retries }, (_, i) => given[Math.min(i, given.length - 1)] as number);
  } else if (policy.backoff !== undefined) {
    const initial = checkDelay(policy.backoff.initialMs, 'retry.backoff.initialMs');
    const multiplier = policy.backoff.multiplier ?? 2;
    if (typeof multiplier !== 'number' || !(multiplier >= 1) || !Number.isFinite(multiplier)) {
      throw new ConfigError('policy', `retry.backoff.multiplier must be a number >= 1, got ${String(multiplier)}`);
    }
    const max = checkDelay(policy.backoff.maxMs ?? MAX_DELAY_MS, 'retry.backoff.maxMs');
    delays = Array.from({ length: retries }, (_, i) => Math.min(max, Math.round(initial * multiplier ** i)));
  } else {
    const base = DEFAULT_RETRY_POLICY.delays;
    delays = Array.from({ length: retries }, (_, i) => base[Math.min(i, base.length - 1)] as number);
  }
  return Object.freeze({ maxAttempts, delays: Object.freeze(delays), jitter });
}

/**
 * The delay before the retry that follows failed attempt `attempt` (1-based), with jitter applied.
 * `random` is injectable so tests are deterministic.
 */
export function retryDelay(policy: NormalizedRetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = policy.delays[Math.min(attempt - 1, policy.delays.length - 1)] ?? 0;
  if (policy.jitter === 0 || base === 0) return base;
  const spread = base * policy.jitter;
  return Math.max(0, Math.round(base - spread + random() * 2 * spread));
}

/** The distinct delays of a policy: the retry tiers a broker must hold (one TTL queue or retry topic each). */
export function retryTiers(policy: NormalizedRetryPolicy): number[] {
  return [...new Set(policy.delays)].sort((a, b) => a - b);
}
