import { HistogramCell } from './collected.js';
import { errorType, type LabelCap, OTHER } from './labels.js';
import { DURATION_BUCKETS, END_TO_END_BUCKETS } from './metrics.js';

export type ConsumeLabels = Readonly<{ messaging_system: string; destination: string; consumer_group: string }>;
export type PublishLabels = Readonly<{ messaging_system: string; destination: string; error_type: string }>;
export type ProcessLabels = ConsumeLabels & Readonly<{ error_type: string }>;

/** Raw names remembered per index at most; past it, names are capped on every call (still bounded). */
const MAX_REMEMBERED = 10_000;

/**
 * What one (system, channel, group) has counted. Everything is a plain number or a
 * {@link HistogramCell}, read by the metrics when the registry is scraped: prom-client validates
 * and hashes the labels of every update, which cost more than everything else the metrics do per
 * event.
 */
export class ConsumeSeries {
  consumed = 0;
  inFlight = 0;
  /** By error type. */
  readonly retries = new Map<string, number>();
  /** By reason, then error type. */
  readonly deadLettered = new Map<string, Map<string, number>>();
  readonly endToEnd = new HistogramCell(END_TO_END_BUCKETS);
  /** Handler durations of calls that succeeded: the cell nearly every event goes to. */
  readonly processOk: HistogramCell;
  /** Handler durations by error type (`''` for success), with their labels. */
  readonly process = new Map<string, { readonly labels: ProcessLabels; readonly cell: HistogramCell }>();
  readonly #withError = new Map<string, ProcessLabels>();

  constructor(
    readonly labels: ConsumeLabels,
    readonly cap: LabelCap,
  ) {
    this.processOk = this.processCell('');
  }

  /** The labels with `error_type`, one object per type, reused. */
  withError(type: string): ProcessLabels {
    let labels = this.#withError.get(type);
    if (labels === undefined) {
      labels = Object.freeze({ ...this.labels, error_type: type });
      this.#withError.set(type, labels);
    }
    return labels;
  }

  /** The handler-duration cell of an error type (`''` for success). */
  processCell(type: string): HistogramCell {
    let entry = this.process.get(type);
    if (entry === undefined) {
      entry = { labels: this.withError(type), cell: new HistogramCell(DURATION_BUCKETS) };
      this.process.set(type, entry);
    }
    return entry.cell;
  }

  /** `error_type` of a value a handler threw, capped. */
  errorType(error: unknown): string {
    return this.cap.cap('error_type', errorType(error));
  }

  retried(error: unknown): void {
    const type = this.errorType(error);
    this.retries.set(type, (this.retries.get(type) ?? 0) + 1);
  }

  deadLetter(reason: string | undefined, error: unknown): void {
    const capped = this.cap.cap('reason', reason ?? OTHER);
    let byType = this.deadLettered.get(capped);
    if (byType === undefined) {
      byType = new Map();
      this.deadLettered.set(capped, byType);
    }
    const type = this.errorType(error);
    byType.set(type, (byType.get(type) ?? 0) + 1);
  }
}

/** What one (system, channel) has published, by error type (`''` for confirmed). */
export class PublishSeries {
  readonly sent = new Map<string, number>();
  /** Publish durations by error type, with their labels. */
  readonly durations = new Map<string, { readonly labels: PublishLabels; readonly cell: HistogramCell }>();
  /** The duration cell of confirmed publishes. */
  readonly durationOk: HistogramCell;
  readonly #labels = new Map<string, PublishLabels>();

  constructor(
    readonly system: string,
    readonly destination: string,
  ) {
    this.durationOk = this.durationCell('');
  }

  labels(type: string): PublishLabels {
    let labels = this.#labels.get(type);
    if (labels === undefined) {
      labels = Object.freeze({ messaging_system: this.system, destination: this.destination, error_type: type });
      this.#labels.set(type, labels);
    }
    return labels;
  }

  durationCell(type: string): HistogramCell {
    let entry = this.durations.get(type);
    if (entry === undefined) {
      entry = { labels: this.labels(type), cell: new HistogramCell(DURATION_BUCKETS) };
      this.durations.set(type, entry);
    }
    return entry.cell;
  }

  /** Counts `count` events of one publish and its duration. */
  record(type: string, count: number, seconds: number): void {
    this.sent.set(type, (this.sent.get(type) ?? 0) + count);
    (type === '' ? this.durationOk : this.durationCell(type)).observe(seconds);
  }
}

/**
 * Finds the series of raw names; series are keyed by capped label values, so their number is
 * bounded. Lookups go through nested maps of the raw names, which allocate nothing per event.
 */
export class SeriesIndex {
  readonly #cap: LabelCap;
  readonly #consume = new Map<string, ConsumeSeries>();
  readonly #consumeByRaw = new Map<string, Map<string, Map<string, ConsumeSeries>>>();
  readonly #publish = new Map<string, PublishSeries>();
  readonly #publishByRaw = new Map<string, Map<string, PublishSeries>>();
  #remembered = 0;

  constructor(cap: LabelCap) {
    this.#cap = cap;
  }

  consume(system: string, channel: string, group: string): ConsumeSeries {
    const known = this.#consumeByRaw.get(system)?.get(channel)?.get(group);
    if (known !== undefined) return known;
    const labels = Object.freeze({
      messaging_system: system,
      destination: this.#cap.cap('destination', channel),
      consumer_group: this.#cap.cap('consumer_group', group),
    });
    const key = `${labels.messaging_system}\u0000${labels.destination}\u0000${labels.consumer_group}`;
    let series = this.#consume.get(key);
    if (series === undefined) {
      series = new ConsumeSeries(labels, this.#cap);
      this.#consume.set(key, series);
    }
    if (this.#remembered < MAX_REMEMBERED) {
      this.#remembered++;
      const bySystem = child(this.#consumeByRaw, system, () => new Map<string, Map<string, ConsumeSeries>>());
      child(bySystem, channel, () => new Map<string, ConsumeSeries>()).set(group, series);
    }
    return series;
  }

  publish(system: string, channel: string): PublishSeries {
    const known = this.#publishByRaw.get(system)?.get(channel);
    if (known !== undefined) return known;
    const destination = this.#cap.cap('destination', channel);
    const key = `${system}\u0000${destination}`;
    let series = this.#publish.get(key);
    if (series === undefined) {
      series = new PublishSeries(system, destination);
      this.#publish.set(key, series);
    }
    if (this.#remembered < MAX_REMEMBERED) {
      this.#remembered++;
      child(this.#publishByRaw, system, () => new Map<string, PublishSeries>()).set(channel, series);
    }
    return series;
  }

  /** `error_type` of a failed publish, capped. */
  errorType(error: unknown): string {
    return this.#cap.cap('error_type', errorType(error));
  }

  get consumeSeries(): Iterable<ConsumeSeries> {
    return this.#consume.values();
  }

  get publishSeries(): Iterable<PublishSeries> {
    return this.#publish.values();
  }
}

/** The value of `key` in `map`, created by `make` the first time. */
function child<V>(map: Map<string, V>, key: string, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}
