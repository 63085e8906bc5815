/** `wharf compare` could not run: a service did not start, the broker cannot be used. */
export class CompareError extends Error {
  override readonly name: string = 'CompareError';
}

/** A bad option; the message says which and what it accepts. */
export class CompareUsageError extends CompareError {
  override readonly name = 'CompareUsageError';
}
