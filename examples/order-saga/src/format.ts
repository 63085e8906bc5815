import type { SagaSummary } from './summary.js';

const n = (value: number): string => value.toLocaleString('en-US');

const LABELS: Record<keyof SagaSummary['invariants'], string> = {
  settled: 'every order terminal or dead-lettered with a reason',
  outcomes: 'every order ended as its scenario says',
  stock: 'final stock = initial − items of confirmed orders',
  charges: 'exactly one charge per confirmed order, none otherwise',
  audit: 'the audit log holds every published event exactly once',
  notifications: 'every terminal order notified exactly once',
};

function breakdown(record: Readonly<Record<string, number>>): string {
  const parts = Object.entries(record).map(([reason, count]) => `${reason} ${n(count)}`);
  return parts.length > 0 ? `  (${parts.join(', ')})` : '';
}

/** The summary for humans: outcomes, counters, throughput and each invariant with ✓ or ✗. */
export function formatSummary(summary: SagaSummary): string {
  const row = (label: string, value: number | string, extra = ''): string =>
    `  ${label.padEnd(22)}${String(typeof value === 'number' ? n(value) : value).padStart(8)}${extra}`;
  const lines = [
    `Order saga on ${summary.run.broker} — ${n(summary.orders)} orders, seed ${summary.seed} (run ${summary.run.runId})`,
    '',
    row('confirmed', summary.confirmed),
    row('cancelled', summary.cancelled, breakdown(summary.cancelledByReason)),
    row('dead-lettered', summary.deadLettered, breakdown(summary.deadLettersByReason)),
    ...(summary.unsettled > 0 ? [row('unsettled', summary.unsettled)] : []),
    row('retries', summary.retries),
    row(
      'duplicates suppressed',
      summary.duplicatesSuppressed,
      `  (consumers dropped ${n(summary.run.dedup.bus)} by dedup store, ${n(summary.run.dedup.services)} by own state)`,
    ),
    row('events published', summary.eventsPublished, `  (${n(summary.eventsPublishedTwice)} deliberately twice)`),
    row('notifications sent', summary.notificationsSent),
    row(
      'incidents',
      summary.incidents,
      summary.incidents > 0 ? '  (events off the normal path: see the error log)' : '',
    ),
    row(
      'throughput',
      `${n(summary.timings.ordersPerSecond)}`,
      ` orders/s  (${(summary.timings.durationMs / 1000).toFixed(2)} s)`,
    ),
    '',
    'Invariants',
    ...Object.entries(summary.invariants).map(
      ([key, invariant]) =>
        `  ${invariant.ok ? '✓' : '✗'} ${LABELS[key as keyof SagaSummary['invariants']]}\n      ${invariant.detail}`,
    ),
    '',
    summary.ok ? 'All invariants hold.' : 'Some invariants FAILED.',
  ];
  return lines.join('\n');
}
