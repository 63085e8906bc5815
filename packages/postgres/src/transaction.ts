import type { Pool, PoolClient } from 'pg';
import { postgresError } from './errors.js';

/** What a transaction's work decided: commit or roll back, and the value to hand back. */
export interface Finished<R> {
  readonly commit: boolean;
  readonly value: R;
}

/**
 * Runs `work` between BEGIN and COMMIT (or ROLLBACK, when it says so or throws) on a pooled client.
 * Database failures become `PostgresError`s naming `doing`; a client whose connection broke is
 * released as broken, so the pool never hands it out again. A failed COMMIT is marked `committing`:
 * the transaction may or may not have been kept.
 */
export async function inTransaction<R>(
  pool: Pool,
  doing: string,
  work: (client: PoolClient) => Promise<Finished<R>>,
): Promise<Finished<R>> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (cause) {
    throw postgresError(doing, cause);
  }
  let broken = false;
  try {
    try {
      await client.query('BEGIN');
    } catch (cause) {
      broken = true;
      throw postgresError(doing, cause);
    }
    let finished: Finished<R>;
    try {
      finished = await work(client);
      if (!finished.commit) {
        await client.query('ROLLBACK');
        return finished;
      }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    }
    try {
      await client.query('COMMIT');
    } catch (cause) {
      broken = true;
      throw postgresError(`committing ${doing}`, cause, { committing: true });
    }
    return finished;
  } finally {
    client.release(broken);
  }
}
