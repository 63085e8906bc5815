import {
  AdapterNotInstalledError,
  AuthenticationError,
  type Bus,
  ConfigError,
  InvalidUrlError,
  type Logger,
  redactUrl,
  WharfError,
} from '@wharf/core';

export const USAGE =
  'usage: wharf saga --broker <url> --orders <N> --seed <S> [--json] [--services order,inventory,payment,notification,audit]';

/** The saga was asked for something it cannot do (`--orders 0`, an unknown service…). */
export class SagaUsageError extends WharfError {
  override readonly name = 'SagaUsageError';
  readonly usage = USAGE;
  constructor(message: string) {
    super('ERR_WHARF_USAGE', 'saga', `${message}\n${USAGE}`);
  }
}

/** The broker could not be reached when the saga started. */
export class SagaBrokerError extends WharfError {
  override readonly name = 'SagaBrokerError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_BROKER_UNREACHABLE', 'saga', message, options);
  }
}

/** The PostgreSQL of `--store postgres` could not be reached or set up when the saga started. */
export class SagaStoreError extends WharfError {
  override readonly name = 'SagaStoreError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_STORE_UNREACHABLE', 'saga', message, options);
  }
}

const CONNECT_TIMEOUT_MS = 15_000;

/**
 * Connects a bus, turning any failure or a hang into one clear error naming the (redacted) broker.
 * With `waitMs`, a broker that is not there yet (starting, restarting) is tried again with backoff
 * for that long, logging once that the service waits for it.
 */
export async function connectOrExplain(bus: Bus, wait?: { waitMs: number; logger: Logger }): Promise<void> {
  const deadline = Date.now() + (wait?.waitMs ?? 0);
  let delay = 250;
  for (;;) {
    try {
      await connectOnce(bus);
      return;
    } catch (error) {
      // Wrong credentials or options will not fix themselves: only an unreachable broker is waited for.
      const cause = (error as { cause?: unknown }).cause;
      const fixable =
        error instanceof SagaBrokerError && !(cause instanceof AuthenticationError || cause instanceof ConfigError);
      if (!wait || !fixable || Date.now() + delay > deadline) throw error;
      if (delay === 250) {
        wait.logger.warn(
          `[saga] ${error.message.replace(/^\[wharf\] \[saga\] /, '')}; waiting for it (up to ${Math.round(wait.waitMs / 1000)} s)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

async function connectOnce(bus: Bus): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
  });
  try {
    await Promise.race([bus.connect(), timeout]);
  } catch (error) {
    // These already say what to do; "unreachable" would mislead.
    if (error instanceof AdapterNotInstalledError || error instanceof InvalidUrlError) throw error;
    const broker = redactUrl(bus.url);
    // An adapter's own error already says what to do; anything else gets the generic hint.
    const message =
      error instanceof WharfError
        ? `cannot start the saga on ${broker}: ${error.message}`
        : `cannot start the saga: the broker ${broker} is not reachable (${error instanceof Error ? error.message : String(error)}) — is it running? start one with pnpm wharf brokers up`;
    throw new SagaBrokerError(message, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** A record of the shared state directory stayed locked by a live process for too long. */
export class FileStoreLockError extends WharfError {
  override readonly name = 'FileStoreLockError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(
      'ERR_WHARF_SAGA_STATE_LOCKED',
      'saga',
      `${message}: another saga process holds it; if none is running, delete the .lock file`,
      options,
    );
  }
}
