import { Gauge, type Registry } from 'prom-client';
import { CollectedCounter, CollectedHistogram, clearExported } from './collected.js';
import type { SeriesIndex } from './series.js';

/** The OpenTelemetry semantic conventions' duration buckets for messaging, 5 ms to 10 s. */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

/** The same, continued to 1 h: an event waits seconds to minutes in a retry tier before it is handled. */
export const END_TO_END_BUCKETS: readonly number[] = Object.freeze([
  ...DURATION_BUCKETS,
  30,
  60,
  120,
  300,
  600,
  1800,
  3600,
]);

const PUBLISH = ['messaging_system', 'destination', 'error_type'] as const;
const CONSUME = ['messaging_system', 'destination', 'consumer_group'] as const;

/**
 * Every metric this package registers. The numbers live in `index` (plain numbers and histogram
 * cells, updated as events happen) and are written to prom-client when the registry is scraped.
 * `registry.resetMetrics()` zeroes counters and histograms; the in-flight gauge is what runs now,
 * so it stays.
 */
export function defineMetrics(registry: Registry, index: SeriesIndex) {
  const registers = [registry];
  const consume = () => index.consumeSeries;
  const publish = () => index.publishSeries;
  return {
    sent: new CollectedCounter(
      {
        name: 'messaging_client_sent_messages_total',
        help: 'Events the bus published, confirmed by the broker or failed (error_type set)',
        labelNames: PUBLISH,
        registers,
        collect() {
          clearExported(this);
          for (const series of publish()) {
            for (const [type, count] of series.sent) this.inc(series.labels(type), count);
          }
        },
      },
      () => {
        for (const series of publish()) series.sent.clear();
      },
    ),
    publishDuration: new CollectedHistogram(
      {
        name: 'messaging_client_operation_duration_seconds',
        help: 'Duration of a publish (one event or one batch) until the broker confirmed it or it failed',
        labelNames: PUBLISH,
        buckets: [...DURATION_BUCKETS],
        registers,
      },
      function* () {
        for (const series of publish()) for (const { labels, cell } of series.durations.values()) yield [labels, cell];
      },
      () => {
        for (const series of publish()) for (const { cell } of series.durations.values()) cell.clear();
      },
    ),
    consumed: new CollectedCounter(
      {
        name: 'messaging_client_consumed_messages_total',
        help: 'Deliveries the bus settled (acked, retried, dead-lettered, released, duplicate or discarded)',
        labelNames: CONSUME,
        registers,
        collect() {
          clearExported(this);
          for (const series of consume()) this.inc(series.labels, series.consumed);
        },
      },
      () => {
        for (const series of consume()) series.consumed = 0;
      },
    ),
    processDuration: new CollectedHistogram(
      {
        name: 'messaging_process_duration_seconds',
        help: 'Duration of one handler call (error_type set when it threw)',
        labelNames: [...CONSUME, 'error_type'],
        buckets: [...DURATION_BUCKETS],
        registers,
      },
      function* () {
        for (const series of consume()) for (const { labels, cell } of series.process.values()) yield [labels, cell];
      },
      () => {
        for (const series of consume()) for (const { cell } of series.process.values()) cell.clear();
      },
    ),
    retries: new CollectedCounter(
      {
        name: 'wharf_retries_total',
        help: 'Failed handler calls whose event was scheduled for another attempt',
        labelNames: [...CONSUME, 'error_type'],
        registers,
        collect() {
          clearExported(this);
          for (const series of consume()) {
            for (const [type, count] of series.retries) this.inc(series.withError(type), count);
          }
        },
      },
      () => {
        for (const series of consume()) series.retries.clear();
      },
    ),
    deadLettered: new CollectedCounter(
      {
        name: 'wharf_dead_lettered_total',
        help: 'Events written to a dead-letter destination, by reason',
        labelNames: [...CONSUME, 'reason', 'error_type'],
        registers,
        collect() {
          clearExported(this);
          for (const series of consume()) {
            for (const [reason, byType] of series.deadLettered) {
              for (const [type, count] of byType) this.inc({ ...series.withError(type), reason }, count);
            }
          }
        },
      },
      () => {
        for (const series of consume()) series.deadLettered.clear();
      },
    ),
    inFlight: new Gauge({
      name: 'wharf_handler_in_flight',
      help: 'Handler calls running now',
      labelNames: CONSUME,
      registers,
      collect() {
        this.reset();
        for (const series of consume()) this.set(series.labels, series.inFlight);
      },
    }),
    endToEnd: new CollectedHistogram(
      {
        name: 'wharf_end_to_end_latency_seconds',
        help: 'From the event time attribute to the start of a handler call (clamped at 0; retries included)',
        labelNames: CONSUME,
        buckets: [...END_TO_END_BUCKETS],
        registers,
      },
      function* () {
        for (const series of consume()) yield [series.labels, series.endToEnd];
      },
      () => {
        for (const series of consume()) series.endToEnd.clear();
      },
    ),
  };
}

export type WharfMetricSet = ReturnType<typeof defineMetrics>;
