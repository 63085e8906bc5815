/**
 * Our own retry bookkeeping headers. The attempt number travels with the message rather than in
 * RabbitMQ's `x-death` (ignored on republish since 3.13) or any broker-specific counter.
 */
export const ATTEMPT_HEADER = 'wharf-attempt';
export const FIRST_FAILURE_HEADER = 'wharf-first-failure';

/** Reads the attempt number from a header value; anything missing or malformed counts as the first attempt. */
export function readAttempt(value: unknown): number {
  const text =
    typeof value === 'string'
      ? value
      : value instanceof Uint8Array
        ? Buffer.from(value).toString()
        : String(value ?? '');
  const n = Number.parseInt(text, 10);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/** The bookkeeping headers a republished retry carries, so its next delivery knows its attempt. */
export function retryHeaders(instruction: { attempt: number; firstFailureAt: string }): Record<string, string> {
  return { [ATTEMPT_HEADER]: String(instruction.attempt), [FIRST_FAILURE_HEADER]: instruction.firstFailureAt };
}
