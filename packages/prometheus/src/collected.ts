import {
  Counter,
  type CounterConfiguration,
  Histogram,
  type HistogramConfiguration,
  type LabelValues,
  type MetricObjectWithValues,
  type MetricValueWithName,
} from 'prom-client';

/*
 * prom-client validates and hashes the labels of every `inc`, `set` and `observe` (a child from
 * `labels(…)` does too: it only pre-binds the object). At tens of thousands of events per second
 * that was most of what the metrics cost, so the series keep plain numbers on the hot path and the
 * metrics below read them when the registry is scraped. They are ordinary prom-client metrics to
 * the registry (`metrics()`, `getMetricsAsJSON()`, `resetMetrics()`, cluster aggregation).
 */

/** Clears the numbers a metric reads, for `registry.resetMetrics()` / `metric.reset()`. */
type Clear = () => void;

/** A counter written from the series' numbers on scrape; `reset()` zeroes those numbers too. */
export class CollectedCounter<T extends string> extends Counter<T> {
  // Assigned after `super`: prom-client's constructor calls `reset()` before it exists.
  clearSeries: Clear | undefined;

  constructor(configuration: CounterConfiguration<T> & { collect(this: Counter<T>): void }, clear: Clear) {
    super(configuration);
    this.clearSeries = clear;
  }

  override reset(): void {
    this.clearSeries?.();
    super.reset();
  }
}

/** Prom-client's `reset` without clearing the series: what a `collect` calls before writing them again. */
export function clearExported(metric: Counter<string>): void {
  Counter.prototype.reset.call(metric);
}

/**
 * One histogram series' counts: observed on the hot path with no allocation, exported on scrape.
 * `counts[i]` is the number of values in (bounds[i-1], bounds[i]]; values above the last bound only
 * count in `count`, as `+Inf`.
 */
export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }

  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** What a {@link CollectedHistogram} exports: each series' labels and cell. */
export type HistogramCells<T extends string> = () => Iterable<readonly [LabelValues<T>, HistogramCell]>;

type Sample<T extends string> = MetricValueWithName<T | 'le'> & { sharedLabels?: LabelValues<T> };

/**
 * A histogram whose series are {@link HistogramCell}s held elsewhere, exported in prom-client's own
 * format. `observe` on this object is not used by the package and would be lost on scrape.
 */
export class CollectedHistogram<T extends string> extends Histogram<T> {
  readonly #cells: HistogramCells<T>;
  readonly #name: string;
  readonly #help: string;
  clearSeries: Clear | undefined;

  constructor(configuration: HistogramConfiguration<T>, cells: HistogramCells<T>, clear: Clear) {
    super(configuration);
    this.#cells = cells;
    this.#name = configuration.name;
    this.#help = configuration.help;
    this.clearSeries = clear;
  }

  override reset(): void {
    this.clearSeries?.();
    super.reset();
  }

  /** As prom-client's: `le` in `labels`, the series' labels apart (the text format adds them). */
  async getForPromString(): Promise<MetricObjectWithValues<Sample<T>>> {
    return this.#export(false);
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    return this.#export(true) as MetricObjectWithValues<MetricValueWithName<T>>;
  }

  #export(splay: boolean): MetricObjectWithValues<Sample<T>> {
    const values: Sample<T>[] = [];
    const bucket = `${this.#name}_bucket`;
    const sample = (metricName: string, labels: LabelValues<T>, own: LabelValues<T | 'le'>, value: number) =>
      values.push(
        splay
          ? { metricName, labels: { ...own, ...labels }, value }
          : { metricName, labels: own, sharedLabels: labels, value },
      );
    for (const [labels, cell] of this.#cells()) {
      if (cell.count === 0) continue;
      let cumulative = 0;
      cell.bounds.forEach((le, i) => {
        cumulative += cell.counts[i] ?? 0;
        sample(bucket, labels, { le } as LabelValues<T | 'le'>, cumulative);
      });
      sample(bucket, labels, { le: '+Inf' } as LabelValues<T | 'le'>, cell.count);
      sample(`${this.#name}_sum`, labels, {}, cell.sum);
      sample(`${this.#name}_count`, labels, {}, cell.count);
    }
    return {
      name: this.#name,
      help: this.#help,
      type: 'histogram' as unknown as MetricObjectWithValues<Sample<T>>['type'],
      values,
      aggregator: (this as unknown as { aggregator: string }).aggregator,
    } as unknown as MetricObjectWithValues<Sample<T>>;
  }
}
