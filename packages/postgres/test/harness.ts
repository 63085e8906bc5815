import { randomBytes } from 'node:crypto';
import { type Bus, type CloudEvent, createBus, silentLogger } from '@wharf/core';
import pg from 'pg';
import { afterEach } from 'vitest';
import { migrate, type Relay } from '../src/index.js';

/** The shared PostgreSQL (trust auth, database `test`). */
export const PG_URL = process.env.WHARF_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A schema name no other test or run uses. */
export function uniqueSchema(label: string): string {
  return `wt_${label}_${randomBytes(4).toString('hex')}`;
}

/** A migrated schema of its own and a pool; `drop()` removes the schema and ends the pool. */
export interface TestDb {
  readonly schema: string;
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

export async function testDb(label: string, max = 10): Promise<TestDb> {
  const schema = uniqueSchema(label);
  const pool = new pg.Pool({ connectionString: PG_URL, max });
  // A test that kills connections must not crash the runner through an idle client's error.
  pool.on('error', () => undefined);
  await migrate(pool, { schema });
  return {
    schema,
    pool,
    async drop() {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 20 ms until it returns true, or throws after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A memory bus with one subscription recording every event of `channel`, in arrival order. */
export async function recordingBus(
  channel: string,
  options: { url?: string; adapterOptions?: Record<string, unknown> } = {},
): Promise<{ bus: Bus; received: CloudEvent[] }> {
  const bus = createBus({
    url: options.url ?? 'memory://',
    logger: silentLogger,
    adapterOptions: options.adapterOptions,
  });
  const received: CloudEvent[] = [];
  await bus.subscribe(channel, { group: 'rec', dedup: false }, async (event) => {
    received.push(event);
  });
  return { bus, received };
}

/**
 * What the tests of one describe block share: `cleanups` run after each test, newest first (the
 * bus before the schema it wrote to); `setup` gives a migrated schema dropped afterwards; `track`
 * stops a relay afterwards; `channel` names a fresh channel with `prefix`.
 */
export function testScope(prefix: string) {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    cleanups,
    async setup(label: string, connections = 10): Promise<TestDb> {
      const db = await testDb(label, connections);
      cleanups.push(() => db.drop());
      return db;
    },
    track<R extends Pick<Relay, 'stop'>>(relay: R): R {
      cleanups.push(() => relay.stop());
      return relay;
    },
    channel: (): string => `${prefix}-${randomBytes(3).toString('hex')}`,
  };
}
