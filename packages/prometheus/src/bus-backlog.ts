import type { Bus, RetryPolicy } from '@wharf/core';
import type { BacklogSource } from './options.js';

/** A group whose backlog is exported; `retry` as given to `subscribe` (RabbitMQ counts its tier queues by it). */
export interface ExportedGroup {
  readonly channel: string;
  readonly group: string;
  readonly retry?: RetryPolicy;
}

/**
 * The backlog source for `createPrometheusMetrics({ backlog })` that reads `bus.backlog(…)` for each
 * group, one at a time (each read is a broker round trip or a few). A group that cannot be read
 * fails the whole read, which the metrics report as an error and an empty gauge, rather than a
 * partial one that would look like an idle group.
 */
export function busBacklog(bus: Pick<Bus, 'backlog'>, groups: readonly ExportedGroup[]): BacklogSource {
  return async () => {
    const rows = [];
    for (const { channel, group, retry } of groups) {
      const backlog = await bus.backlog(channel, group, retry === undefined ? {} : { retry });
      rows.push({
        channel,
        group,
        ready: backlog.ready,
        inFlight: backlog.inFlight,
        delayed: backlog.delayed,
        deadLetters: backlog.deadLetters,
      });
    }
    return rows;
  };
}
