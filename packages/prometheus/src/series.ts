import { errorType, type LabelCap, OTHER } from './labels.js';

export type ConsumeLabels = Readonly<{ messaging_system: string; destination: string; consumer_group: string }>;
export type PublishLabels = Readonly<{ messaging_system: string; destination: string; error_type: string }>;

/** Raw names remembered per series at most; past it, names are capped on every call (still bounded). */
const MAX_REMEMBERED = 10_000;

/**
 * What one (system, channel, group) has counted. Counters and the gauge are plain numbers, written
 * to prom-client when it is scraped: prom-client validates and hashes the labels of every update,
 * which cost more than everything else the metrics do per event.
 */
export class ConsumeSeries {
  consumed = 0;
  inFlight = 0;
  /** By error type. */
  readonly retries = new Map<string, number>();
  /** By reason, then error type. */
  readonly deadLettered = new Map<string, Map<string, number>>();
  readonly #withError = new Map<string, ConsumeLabels & { error_type: string }>();

  constructor(
    readonly labels: ConsumeLabels,
    readonly cap: LabelCap,
  ) {}

  /** The labels with `error_type`, one object per type, reused. */
  withError(type: string): ConsumeLabels & { error_type: string } {
    let labels = this.#withError.get(type);
    if (labels === undefined) {
      labels = Object.freeze({ ...this.labels, error_type: type });
      this.#withError.set(type, labels);
    }
    return labels;
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
  readonly #labels = new Map<string, PublishLabels>();

  constructor(
    readonly system: string,
    readonly destination: string,
  ) {}

  labels(type: string): PublishLabels {
    let labels = this.#labels.get(type);
    if (labels === undefined) {
      labels = Object.freeze({ messaging_system: this.system, destination: this.destination, error_type: type });
      this.#labels.set(type, labels);
    }
    return labels;
  }
}

/** Finds the series of raw names; series are keyed by capped label values, so their number is bounded. */
export class SeriesIndex {
  readonly #cap: LabelCap;
  readonly #consume = new Map<string, ConsumeSeries>();
  readonly #consumeByRaw = new Map<string, ConsumeSeries>();
  readonly #publish = new Map<string, PublishSeries>();
  readonly #publishByRaw = new Map<string, PublishSeries>();

  constructor(cap: LabelCap) {
    this.#cap = cap;
  }

  consume(system: string, channel: string, group: string): ConsumeSeries {
    const raw = `${system}\u0000${channel}\u0000${group}`;
    const known = this.#consumeByRaw.get(raw);
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
    if (this.#consumeByRaw.size < MAX_REMEMBERED) this.#consumeByRaw.set(raw, series);
    return series;
  }

  publish(system: string, channel: string): PublishSeries {
    const raw = `${system}\u0000${channel}`;
    const known = this.#publishByRaw.get(raw);
    if (known !== undefined) return known;
    const destination = this.#cap.cap('destination', channel);
    const key = `${system}\u0000${destination}`;
    let series = this.#publish.get(key);
    if (series === undefined) {
      series = new PublishSeries(system, destination);
      this.#publish.set(key, series);
    }
    if (this.#publishByRaw.size < MAX_REMEMBERED) this.#publishByRaw.set(raw, series);
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
