import { ConfigError, consoleLogger, type GroupBacklog, type Logger } from '@wharf/core';
import { Registry } from 'prom-client';

/** One group's backlog, by state, as a {@link BacklogSource} reports it. */
export interface BacklogEntry extends Pick<GroupBacklog, 'ready' | 'inFlight' | 'delayed' | 'deadLetters'> {
  readonly channel: string;
  readonly group: string;
}

/** Reads the backlog of the groups to export (for example from `bus.backlog(…)` per group). */
export type BacklogSource = () => Promise<readonly BacklogEntry[]>;

/** Options of {@link createPrometheusMetrics}. */
export interface PrometheusOptions {
  /** Where the metrics are registered. Default: a new `Registry` (never prom-client's global one). */
  registry?: Registry;
  /** Distinct values kept per label name before the rest become `_OTHER`. Default 100. */
  maxLabelValues?: number;
  /** Reported as `wharf_consumer_backlog_messages{state}` on scrape. */
  backlog?: BacklogSource;
  /** A backlog read is reused by scrapes within this many milliseconds. Default 5,000. */
  backlogCacheMs?: number;
  /** Where a failed backlog read is reported. Default: console, warnings and errors. */
  logger?: Logger;
}

/** {@link PrometheusOptions} with defaults applied and checked. */
export interface ResolvedOptions {
  readonly registry: Registry;
  readonly maxLabelValues: number;
  readonly backlog: BacklogSource | undefined;
  readonly backlogCacheMs: number;
  readonly logger: Logger;
}

export function resolveOptions(options: PrometheusOptions): ResolvedOptions {
  const maxLabelValues = options.maxLabelValues ?? 100;
  if (!(Number.isInteger(maxLabelValues) && maxLabelValues >= 1)) {
    throw new ConfigError('prometheus', `maxLabelValues must be an integer >= 1, got ${String(maxLabelValues)}`);
  }
  const backlogCacheMs = options.backlogCacheMs ?? 5_000;
  if (!(Number.isFinite(backlogCacheMs) && backlogCacheMs >= 0)) {
    throw new ConfigError(
      'prometheus',
      `backlogCacheMs must be a number of milliseconds >= 0, got ${String(backlogCacheMs)}`,
    );
  }
  if (options.backlog !== undefined && typeof options.backlog !== 'function') {
    throw new ConfigError('prometheus', "backlog must be a function that resolves with the groups' backlogs");
  }
  return {
    registry: options.registry ?? new Registry(),
    maxLabelValues,
    backlog: options.backlog,
    backlogCacheMs,
    logger: options.logger ?? consoleLogger('warn'),
  };
}
