import {
  AdapterNotInstalledError,
  AuthenticationError,
  ClosedError,
  ConfigError,
  ContractViolationError,
  InvalidEventError,
  InvalidUrlError,
  type Logger,
  MessageTooLargeError,
  UnroutableError,
} from '@wharf/core';
import { PostgresError } from '@wharf/postgres';
import { SagaUsageError } from './errors.js';

/**
 * Errors no retry can fix: bad configuration or input, a closed bus, a failed outbox append (its
 * transaction is aborted: the handler must fail, and the bus retries it in a new transaction). Anything else a broker call
 * throws (unreachable, connection lost, publish timeout, backpressure…) may pass once the broker
 * is back, so the saga waits for it instead of giving up on an order.
 */
export function isPermanent(error: unknown): boolean {
  return [
    AdapterNotInstalledError,
    AuthenticationError,
    ClosedError,
    ConfigError,
    ContractViolationError,
    InvalidEventError,
    InvalidUrlError,
    MessageTooLargeError,
    PostgresError,
    SagaUsageError,
    UnroutableError,
  ].some((type) => error instanceof type);
}

/**
 * Runs a broker call until it succeeds, waiting with backoff (200 ms doubling to 2 s) while it
 * fails with a transient error, for at most `waitMs`; then, or on a permanent error, throws the
 * last error. Safe only for idempotent calls: declares, and publishes of events with fixed ids.
 */
export async function untilBrokerAnswers<T>(
  what: string,
  work: () => Promise<T>,
  options: { waitMs: number; logger: Logger },
): Promise<T> {
  const deadline = Date.now() + options.waitMs;
  let delay = 200;
  let warned = false;
  for (;;) {
    try {
      const result = await work();
      if (warned) options.logger.info(`[saga] ${what}: the broker answers again`);
      return result;
    } catch (error) {
      if (isPermanent(error) || Date.now() + delay > deadline) throw error;
      if (!warned) {
        options.logger.warn(
          `[saga] ${what} failed (${error instanceof Error ? error.message : String(error)}); waiting for the broker, up to ${Math.round(options.waitMs / 1000)} s`,
        );
        warned = true;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}
