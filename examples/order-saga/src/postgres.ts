import { type Bus, type Logger, redactUrl } from '@wharf/core';
import { createOutbox, migrate, type Relay } from '@wharf/postgres';
import pg from 'pg';
import { SagaStoreError } from './errors.js';
import type { Checked } from './options.js';
import { createStateTable, postgresStores } from './state/postgres-store.js';
import type { Stores } from './state/store.js';

/** The PostgreSQL side of a `--store postgres` run: its stores, what the host needs, and the relay. */
export interface PostgresState {
  readonly schema: string;
  readonly stores: Stores;
  readonly host: { pool: pg.Pool; schema: string };
  /** Starts the relay that publishes the outbox through `bus`. */
  startRelay(bus: Bus): Relay;
  /** Stops the relay, drops the run's own schema (not one given with `postgresSchema`), ends the pools. */
  close(): Promise<void>;
}

/**
 * Connects, creates and migrates the run's schema (the outbox, inbox and lease tables of
 * `@wharf/postgres`, and the saga's state table). Throws `SagaStoreError` when PostgreSQL cannot be
 * reached or the schema cannot be set up.
 */
export async function openPostgresState(o: Checked, runId: string, logger: Logger): Promise<PostgresState> {
  const schema = o.postgresSchema ?? `saga_${runId}`;
  // Handlers hold a connection for their whole transaction; the relay gets a pool of its own so a
  // burst of handlers never starves it (it must keep publishing for them to get new events).
  const pool = new pg.Pool({ connectionString: o.postgresUrl, max: 16, application_name: `wharf-saga-${runId}` });
  const relayPool = new pg.Pool({ connectionString: o.postgresUrl, max: 3, application_name: `wharf-relay-${runId}` });
  for (const p of [pool, relayPool]) {
    p.on('error', (error) => logger.warn(`[saga] an idle PostgreSQL connection failed: ${String(error)}`));
  }
  try {
    await migrate(pool, { schema });
    await createStateTable(pool, schema);
  } catch (cause) {
    await Promise.all([pool.end(), relayPool.end()]).catch(() => {});
    throw new SagaStoreError(
      `cannot set up the saga's PostgreSQL store (schema "${schema}") on ${redactUrl(o.postgresUrl)}: ${
        cause instanceof Error ? cause.message : String(cause)
      } — is PostgreSQL running?`,
      { cause },
    );
  }
  let relay: Relay | undefined;
  return {
    schema,
    stores: postgresStores(pool, schema),
    host: { pool, schema },
    startRelay(bus) {
      // The relay's poll is its fallback only: the inbox's and the order transaction's commits nudge it.
      relay = createOutbox(relayPool, { schema }).startRelay(bus, { pollIntervalMs: 250, logger });
      return relay;
    },
    async close() {
      await relay?.stop();
      if (o.postgresSchema === undefined) {
        await pool
          .query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
          .catch((error) => logger.warn(`[saga] could not drop the run's schema ${schema}: ${String(error)}`));
      }
      await Promise.all([pool.end(), relayPool.end()]);
    },
  };
}
