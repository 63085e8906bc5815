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
import { errorType, LabelCap, OTHER } from './labels.js';
import { defineMetrics, type WharfMetricSet } from './metrics.js';
import { type PrometheusOptions, resolveOptions } from './options.js';

type ConsumeLabels = { messaging_system: string; destination: string; consumer_group: string };

/**
 * Wharf's metrics on a prom-client registry, fed by the bus's instrumentation hook. Give it to
 * `createBus({ instrumentation })` and serve `registry.metrics()`; see the package README.
 */
export class PrometheusMetrics implements Instrumentation {
  /** The registry holding the metrics: the one given in the options, or a new one. */
  readonly registry: Registry;
  readonly #metrics: WharfMetricSet;
  readonly #cap: LabelCap;

  constructor(options: PrometheusOptions = {}) {
    const resolved = resolveOptions(options);
    this.registry = resolved.registry;
    this.#cap = new LabelCap(resolved.maxLabelValues);
    this.#metrics = defineMetrics(this.registry);
    const source = resolved.backlog;
    if (source !== undefined) {
      const reader = new BacklogReader(source, resolved.backlogCacheMs, resolved.logger);
      const cap = this.#cap;
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
    const system = operation.system;
    const destination = this.#cap.cap('destination', operation.channel);
    const { sent, publishDuration } = this.#metrics;
    return {
      end: (error?: unknown) => {
        const labels = {
          messaging_system: system,
          destination,
          error_type: error === undefined ? '' : this.#cap.cap('error_type', errorType(error)),
        };
        sent.inc(labels, count);
        publishDuration.observe(labels, (performance.now() - started) / 1000);
      },
    };
  }

  handle(operation: HandleOperation): HandleScope {
    const labels = this.#consumeLabels(operation);
    const { inFlight, endToEnd, processDuration } = this.#metrics;
    inFlight.inc(labels);
    const time = operation.event.time;
    if (time !== undefined) {
      const sent = Date.parse(time);
      if (Number.isFinite(sent)) endToEnd.observe(labels, Math.max(0, Date.now() - sent) / 1000);
    }
    return {
      handled: (result: HandlerResult) => {
        inFlight.dec(labels);
        const failed = result.error !== undefined || result.aborted;
        const type = failed ? this.#cap.cap('error_type', result.aborted ? OTHER : errorType(result.error)) : '';
        processDuration.observe({ ...labels, error_type: type }, result.durationMs / 1000);
      },
    };
  }

  settled(settlement: Settlement): void {
    const labels = this.#consumeLabels(settlement);
    this.#metrics.consumed.inc(labels);
    if (settlement.outcome === 'retried') {
      this.#metrics.retries.inc({ ...labels, error_type: this.#cap.cap('error_type', errorType(settlement.error)) });
    } else if (settlement.outcome === 'dead-lettered') {
      this.#metrics.deadLettered.inc({
        ...labels,
        reason: this.#cap.cap('reason', settlement.reason ?? OTHER),
        error_type: this.#cap.cap('error_type', errorType(settlement.error)),
      });
    }
  }

  #consumeLabels(operation: { system: string; channel: string; group: string }): ConsumeLabels {
    return {
      messaging_system: operation.system,
      destination: this.#cap.cap('destination', operation.channel),
      consumer_group: this.#cap.cap('consumer_group', operation.group),
    };
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
