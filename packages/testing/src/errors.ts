import { WharfError } from '@wharf/core';

/** `settled()` waited its bound and events were still in flight; the message lists them by group. */
export class SettleTimeoutError extends WharfError {
  override readonly name = 'SettleTimeoutError';
  constructor(message: string) {
    super('ERR_WHARF_TEST_SETTLE_TIMEOUT', 'testing', message);
  }
}

/**
 * A real broker holds retry delays in real time: the kit cannot make them pass faster than
 * `delay × timeScale`. Thrown when a subscription's scaled delay would still be longer than
 * `maxRealDelayMs`, rather than let a test wait that long.
 */
export class RealTimeError extends WharfError {
  override readonly name = 'RealTimeError';
  constructor(message: string) {
    super('ERR_WHARF_TEST_REAL_TIME', 'testing', message);
  }
}

/** No broker of the kind asked for could be started or found. */
export class BrokerStartError extends WharfError {
  override readonly name = 'BrokerStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_TEST_BROKER_START', 'testing', message, options);
  }
}
