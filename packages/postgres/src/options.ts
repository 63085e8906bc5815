import { ConfigError } from '@wharf/core';

/** Where the tables live. Default schema `wharf`. */
export interface SchemaOptions {
  /** PostgreSQL schema holding the outbox, lease and inbox tables. Default `wharf`. */
  schema?: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** The schema name, checked (lower-case identifier), so it can be quoted into SQL safely. */
export function schemaName(options: SchemaOptions | undefined): string {
  const schema = options?.schema ?? 'wharf';
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema)) {
    throw new ConfigError(
      'postgres',
      `schema must be a lower-case SQL identifier (letters, digits, _; at most 63), got ${JSON.stringify(schema)}`,
    );
  }
  return schema;
}

/** `"schema".table`, for SQL text. */
export function table(schema: string, name: string): string {
  return `"${schema}".${name}`;
}

/** Reads an integer option within bounds, or its default. */
export function intOption(value: number | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError('postgres', `${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * Advisory lock namespaces (the first key of the two-key form), so Wharf's locks never meet an
 * application's single-key locks. 0x5748 is "WH".
 */
export const LOCK_MIGRATE = 0x57480001;
export const LOCK_KEY = 0x57480002;

/** The inbox key of an event: source and id, which the bus joins with NUL (not storable in text). */
export function inboxKey(source: string, id: string): string {
  return JSON.stringify([source, id]);
}
