import type {
  HandleOperation,
  HandlerResult,
  HandleScope,
  Instrumentation,
  PublishOperation,
  PublishScope,
  Settlement,
} from '@wharf/core';
import { Gauge, type Registry } from 'prom-client';
import { BacklogReader } from './backlog.js';
import { LabelCap, OTHER } from './labels.js';
import { defineMetrics } from './metrics.js';
import { type PrometheusOptions, resolveOptions } from './options.js';
import { SeriesIndex } from './series.js';

/**
 * Wharf's metrics on a prom-client registry, fed by the bus's instrumentation hook. Give it to
 * `createBus({ instrumentation })` and serve `registry.metrics()`; see the package README.
 */
export class PrometheusMetrics implements Instrumentation {
  /** The registry holding the metrics: the one given in the options, or a new one. */
  readonly registry: Registry;
  readonly #series: SeriesIndex;
  #lastTime: string | undefined;
  #lastParsed = Number.NaN;

  constructor(options: PrometheusOptions = {}) {
    const resolved = resolveOptions(options);
    this.registry = resolved.registry;
    const cap = new LabelCap(resolved.maxLabelValues);
    this.#series = new SeriesIndex(cap);
    defineMetrics(this.registry, this.#series);
    const source = resolved.backlog;
    if (source !== undefined) {
      const reader = new BacklogReader(source, resolved.backlogCacheMs, resolved.logger);
      const gauge: Gauge<'destination' | 'consumer_group' | 'state'> = new Gauge({
        name: 'wharf_consumer_backlog_messages',
        help: 'Events of a consumer group by state (ready, in_flight, delayed, dead_letter), read from the broker on scrape',
        labelNames: ['destination', 'consumer_group', 'state'],
        registers: [this.registry],
        collect: () => reader.collect(gauge, cap),
      });
    }
  }

  publish(operation: PublishOperation): PublishScope {
    const started = performance.now();
    const count = operation.events.length;
    const series = this.#series.publish(operation.system, operation.channel);
    return {
      end: (error?: unknown) => {
        const type = error === undefined ? '' : this.#series.errorType(error);
        series.record(type, count, (performance.now() - started) / 1000);
      },
    };
  }

  handle(operation: HandleOperation): HandleScope {
    const series = this.#series.consume(operation.system, operation.channel, operation.group);
    series.inFlight++;
    const sent = this.#eventTime(operation.event.time);
    if (Number.isFinite(sent)) series.endToEnd.observe(Math.max(0, Date.now() - sent) / 1000);
    return {
      handled: (result: HandlerResult) => {
        series.inFlight--;
        const seconds = result.durationMs / 1000;
        if (result.error === undefined && !result.aborted) series.processOk.observe(seconds);
        else series.processCell(result.aborted ? OTHER : series.errorType(result.error)).observe(seconds);
      },
    };
  }

  /**
   * `Date.parse` of an event's `time`, NaN when it has none. The last answer is kept: a burst of
   * events published in one millisecond carries one timestamp string, parsed once.
   */
  #eventTime(time: string | undefined): number {
    if (time === undefined) return Number.NaN;
    if (time !== this.#lastTime) {
      this.#lastTime = time;
      this.#lastParsed = Date.parse(time);
    }
    return this.#lastParsed;
  }

  settled(settlement: Settlement): void {
    const series = this.#series.consume(settlement.system, settlement.channel, settlement.group);
    series.consumed++;
    if (settlement.outcome === 'retried') series.retried(settlement.error);
    else if (settlement.outcome === 'dead-lettered') series.deadLetter(settlement.reason, settlement.error);
  }
}

/**
 * Creates Wharf's Prometheus metrics. Never calls `collectDefaultMetrics` and never touches
 * prom-client's global registry unless you pass it.
 *
 * @example
 * ```ts
 * const metrics = createPrometheusMetrics();
 * const bus = createBus({ url: 'memory://', instrumentation: metrics });
 * // serve `await metrics.registry.metrics()` as text/plain on /metrics
 * ```
 */
export function createPrometheusMetrics(options: PrometheusOptions = {}): PrometheusMetrics {
  return new PrometheusMetrics(options);
}
