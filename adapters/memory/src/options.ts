import { ConfigError, parseBrokerUrl } from '@wharf/core';

/** Timers the broker uses for retry delays; inject a fake one to test delays without waiting. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
};

/** Options of the memory adapter. */
export interface MemoryAdapterOptions {
  /** Injectable clock for retry delays. Default: the system clock. */
  clock?: Clock;
  /** Largest encoded event accepted, bytes. Default 64 MiB. */
  maxMessageBytes?: number;
}

export interface ResolvedMemoryOptions {
  readonly brokerName: string;
  readonly clock: Clock;
  readonly maxMessageBytes: number;
}

/** `memory://` and `memory://name` name an in-process broker; the same name shares one broker. */
export function resolveOptions(url: string, options: MemoryAdapterOptions): ResolvedMemoryOptions {
  const parsed = parseBrokerUrl(url);
  if (parsed.scheme !== 'memory')
    throw new ConfigError('memory', `the memory adapter takes memory:// URLs, got ${parsed.scheme}://`);
  const maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1) {
    throw new ConfigError('memory', `maxMessageBytes must be a positive integer, got ${String(maxMessageBytes)}`);
  }
  return { brokerName: parsed.hosts[0]?.host ?? 'default', clock: options.clock ?? systemClock, maxMessageBytes };
}
