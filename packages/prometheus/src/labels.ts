/** The value a label gets once its cap is reached, and for errors that are not class instances. */
export const OTHER = '_OTHER';

/**
 * Bounds the distinct values of each label name. The first `max` values seen are kept, later ones
 * become `_OTHER`: an unbounded label (a channel per tenant, an error class per message) would
 * otherwise grow the registry and every scrape without limit. Values once kept stay kept, so a
 * gauge that is raised and lowered always moves the same series.
 */
export class LabelCap {
  readonly #max: number;
  readonly #seen = new Map<string, Set<string>>();

  constructor(max: number) {
    this.#max = max;
  }

  /** `value`, or `_OTHER` when `name` already has `max` other values. */
  cap(name: string, value: string): string {
    let values = this.#seen.get(name);
    if (values === undefined) {
      values = new Set();
      this.#seen.set(name, values);
    }
    if (values.has(value)) return value;
    if (values.size >= this.#max) return OTHER;
    values.add(value);
    return value;
  }
}

/** The error's class name (`TypeError`, `PaymentDeclinedError`), or `_OTHER` for a thrown non-Error. */
export function errorType(error: unknown): string {
  if (!(error instanceof Error)) return OTHER;
  const name = error.constructor?.name;
  return typeof name === 'string' && name !== '' ? name : OTHER;
}
