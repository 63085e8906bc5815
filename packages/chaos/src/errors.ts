/** Base class of every error `@wharf/chaos` throws; `cause` carries the underlying failure. */
export class ChaosError extends Error {
  override readonly name: string = 'ChaosError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(`[wharf] [chaos] ${message}`, options);
  }
}

/** A managed broker could not be started, stopped or controlled. */
export class BrokerControlError extends ChaosError {
  override readonly name = 'BrokerControlError';
}

/** A broker (or anything) did not answer within a bound. */
export class ChaosTimeoutError extends ChaosError {
  override readonly name = 'ChaosTimeoutError';
}

/** Options given to a chaos function are invalid. */
export class ChaosOptionsError extends ChaosError {
  override readonly name = 'ChaosOptionsError';
}

/** The fault proxy could not listen or forward. */
export class ProxyError extends ChaosError {
  override readonly name = 'ProxyError';
}
