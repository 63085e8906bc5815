import { WharfError } from '@wharf/core';

/** A PostgreSQL operation of the outbox, relay, inbox or migrations failed; `cause` is the driver's error. */
export class PostgresError extends WharfError {
  override readonly name = 'PostgresError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_POSTGRES', 'postgres', message, options);
  }
}

/** The relay no longer holds a partition's lease (expired or taken over): it must not mark rows as sent. */
export class LeaseLostError extends WharfError {
  override readonly name = 'LeaseLostError';
  constructor(message: string) {
    super('ERR_WHARF_LEASE_LOST', 'postgres', message);
  }
}
