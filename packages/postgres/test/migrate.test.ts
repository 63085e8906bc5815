import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/index.js';
import { PG_URL, uniqueSchema } from './harness.js';

describe('postgres: migrate', () => {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 8 });
  const schemas: string[] = [];
  afterAll(async () => {
    for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('applies the shipped SQL files once, then finds nothing to do', async () => {
    const schema = uniqueSchema('mig');
    schemas.push(schema);
    const first = await migrate(pool, { schema });
    expect(first.applied).toEqual(['001_outbox.sql', '002_inbox.sql']);
    const second = await migrate(pool, { schema });
    expect(second.applied).toEqual([]);
    const { rows } = await pool.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
      [schema],
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      'inbox',
      'outbox',
      'outbox_dead_letters',
      'outbox_leases',
      'outbox_relays',
      'wharf_migrations',
    ]);
  });

  it('is safe when several processes migrate the same schema at once', async () => {
    const schema = uniqueSchema('migc');
    schemas.push(schema);
    // Separate pools stand for separate processes: each migrates on its own connection.
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: PG_URL, max: 1 }));
    try {
      const results = await Promise.all(pools.map((p) => migrate(p, { schema })));
      const applied = results.map((r) => r.applied.length).sort();
      expect(applied).toEqual([0, 0, 0, 2]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('rejects a schema name that is not a plain identifier', async () => {
    await expect(migrate(pool, { schema: 'x"; DROP TABLE y; --' })).rejects.toThrow(/schema must be/);
  });
});
