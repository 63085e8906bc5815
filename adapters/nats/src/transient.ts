import { isTransient } from './errors.js';

/** Delays between tries of a dead-letter read: about 5 s in all, enough for a server restart to finish. */
export const READ_BACKOFF_MS: readonly number[] = [250, 500, 1_000, 1_500, 2_000];

/**
 * Delays between tries of a stream or consumer declaration. Each try waits up to `connectTimeoutMs` (5 s) for the
 * JetStream API; five tries span about 29 s with the default, so a server that is slow for seconds (many
 * processes declaring at once on a loaded machine, a restart) does not fail a service's start-up, and one that
 * does not answer at all still fails it with a typed error.
 */
export const DECLARE_BACKOFF_MS: readonly number[] = [250, 500, 1_000, 2_000];

/**
 * One idempotent JetStream API request, tried again on a transient failure (timeout, no responders while
 * JetStream starts, dropped connection) after each delay of `backoff`; other failures are thrown at once.
 */
export async function retrying<T>(request: () => Promise<T>, backoff: readonly number[] = READ_BACKOFF_MS): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await request();
    } catch (error) {
      const wait = backoff[n];
      if (wait === undefined || !isTransient(error)) throw error;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
