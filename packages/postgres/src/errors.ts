import { WharfError } from '@wharf/core';

/** A PostgreSQL operation of the outbox, relay, inbox or migrations failed; `cause` is the driver's error. */
export class PostgresError extends WharfError {
  override readonly name: string = 'PostgresError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_POSTGRES', 'postgres', message, options);
  }
}

/**
 * PostgreSQL could not be reached, or the connection broke (the server stopping or restarting, a
 * network fault). A transaction that failed this way was not committed, unless the connection broke
 * while its COMMIT was in flight; retry once the database answers.
 */
export class PostgresUnavailableError extends PostgresError {
  override readonly name: string = 'PostgresUnavailableError';
}

/** The relay no longer holds a partition's lease (expired or taken over): it must not mark rows as sent. */
export class LeaseLostError extends WharfError {
  override readonly name = 'LeaseLostError';
  constructor(message: string) {
    super('ERR_WHARF_LEASE_LOST', 'postgres', message);
  }
}

/** Socket errors and SQLSTATEs of a server that is gone, shutting down or not accepting connections yet. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  '57P01', // admin_shutdown: the server is stopping
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or shutting down
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);

/** True for a driver error that means "the database is not there", not "the statement is wrong". */
export function isUnavailable(cause: unknown): boolean {
  if (cause instanceof PostgresUnavailableError) return true;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  const message = cause instanceof Error ? cause.message : String(cause);
  // node-postgres reports a dropped socket with these messages and no code.
  return /Connection terminated|connection timeout|Client has encountered a connection error|Client was closed/i.test(
    message,
  );
}

/**
 * The error to throw for a failed database operation: {@link PostgresUnavailableError} when the
 * database is unreachable (with what to do), {@link PostgresError} otherwise.
 */
export function postgresError(doing: string, cause: unknown, options: { committing?: boolean } = {}): PostgresError {
  if (cause instanceof PostgresError) return cause;
  const detail = cause instanceof Error ? cause.message : String(cause);
  if (isUnavailable(cause)) {
    // A COMMIT whose connection broke in flight may have committed; the outbox's unique (source, id)
    // makes a retry with the same event ids safe: a second append of a committed event fails.
    const outcome = options.committing
      ? 'The transaction was not committed unless the connection broke while COMMIT was in flight: retry with the same event ids'
      : 'Nothing was committed; retry when it answers';
    return new PostgresUnavailableError(
      `${doing} failed: PostgreSQL is unreachable (${detail}) — is it running? ${outcome}`,
      {
        cause,
      },
    );
  }
  return new PostgresError(`${doing} failed: ${detail}`, { cause });
}
