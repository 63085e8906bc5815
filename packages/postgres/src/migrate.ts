import { readdir, readFile } from 'node:fs/promises';
import type { Pool } from 'pg';
import { PostgresError } from './errors.js';
import { LOCK_MIGRATE, type SchemaOptions, schemaName } from './options.js';

/** The SQL files shipped in the package (`migrations/`, beside `src/` and `dist/`). */
const MIGRATIONS = new URL('../migrations/', import.meta.url);

/** What {@link migrate} did. */
export interface MigrateResult {
  readonly schema: string;
  /** Files applied by this call, in order (empty when the schema was up to date). */
  readonly applied: readonly string[];
}

/**
 * Creates the schema if needed and applies the package's SQL migrations that it has not applied yet,
 * in file-name order, recording each in `<schema>.wharf_migrations`. Idempotent, and safe when several
 * processes migrate at once: all of it runs in one transaction under a transaction-scoped advisory
 * lock per schema, so a second migrator waits and then finds nothing to do.
 *
 * @example
 * ```ts
 * const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
 * await migrate(pool, { schema: 'shop' });
 * ```
 */
export async function migrate(pool: Pool, options: SchemaOptions = {}): Promise<MigrateResult> {
  const schema = schemaName(options);
  const files = (await readdir(MIGRATIONS)).filter((name) => name.endsWith('.sql')).sort();
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_MIGRATE, schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    // Unqualified names in the SQL files land in the target schema.
    await client.query(`SET LOCAL search_path TO "${schema}"`);
    await client.query(
      'CREATE TABLE IF NOT EXISTS wharf_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await client.query<{ name: string }>('SELECT name FROM wharf_migrations')).rows.map((row) => row.name),
    );
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      const sql = await readFile(new URL(file, MIGRATIONS), 'utf8');
      try {
        await client.query(sql);
      } catch (cause) {
        throw new PostgresError(`migration ${file} failed in schema "${schema}": ${(cause as Error).message}`, {
          cause,
        });
      }
      await client.query('INSERT INTO wharf_migrations (name) VALUES ($1)', [file]);
      applied.push(file);
    }
    await client.query('COMMIT');
    return { schema, applied };
  } catch (error) {
    failed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    if (error instanceof PostgresError) throw error;
    throw new PostgresError(`migrating schema "${schema}" failed: ${(error as Error).message}`, { cause: error });
  } finally {
    client.release(failed);
  }
}
