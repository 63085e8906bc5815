import { randomBytes } from 'node:crypto';
import { createBus, silentLogger } from '@wharf/core';
import { createOutbox } from '@wharf/postgres';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { postgres } from '../src/commands/postgres.js';
import { main } from '../src/main.js';

const PG_URL = process.env.WHARF_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, output: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
}

describe('wharf postgres', () => {
  const schema = `wt_cli_${randomBytes(4).toString('hex')}`;
  const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
  afterAll(async () => {
    // A --cdc run on a server with wal_level = logical makes a slot and a publication: never leave them.
    await pool.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
      `wharf_${schema}`,
    ]);
    await pool.query(`DROP PUBLICATION IF EXISTS "wharf_outbox_${schema}"`);
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('migrate applies the SQL files once, then reports the schema up to date', async () => {
    const first = capture();
    expect(await main(['postgres', 'migrate', '--url', PG_URL, '--schema', schema, '--json'], first.output)).toBe(0);
    expect(JSON.parse(first.out.join(''))).toMatchObject({ schema, applied: ['001_outbox.sql', '002_inbox.sql'] });
    const second = capture();
    expect(await main(['postgres', 'migrate', '--url', PG_URL, '--schema', schema], second.output)).toBe(0);
    expect(second.out.join('')).toContain('up to date');
  });

  it('needs an action and a URL', async () => {
    const none = capture();
    expect(await main(['postgres', 'migrate'], none.output)).toBe(2);
    expect(none.err.join('')).toContain('--url');
    const bad = capture();
    expect(await main(['postgres', 'nope', '--url', PG_URL], bad.output)).toBe(2);
    expect(bad.err.join('')).toContain('migrate or relay');
  });

  it('relay publishes the outbox to the broker until stopped', async () => {
    // memory:// lives in one process: the relay's bus and this test's subscriber must share it,
    // so the relay publishes to NATS and the test reads from NATS.
    const url = 'nats://127.0.0.1:4222';
    const channel = `pgcli-${randomBytes(3).toString('hex')}`;
    const bus = createBus({ url, logger: silentLogger });
    const received: string[] = [];
    await bus.subscribe(channel, { group: 'g' }, async (event) => {
      received.push(event.id);
    });
    const outbox = createOutbox(pool, { schema });
    const event = await outbox.transaction((client) => outbox.append(client, channel, { type: 'E', data: {} }));
    const stop = new AbortController();
    const run = postgres(
      ['relay', '--url', PG_URL, '--schema', schema, '--broker', url, '--lease-ttl', '2000'],
      capture().output,
      stop.signal,
    );
    const deadline = Date.now() + 15_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    expect(await run).toBe(0);
    expect(received).toEqual([event.id]);
    expect((await outbox.stats()).unsent).toBe(0);
    const { conformanceHarness } = await import('@wharf/nats');
    await bus.close();
    await conformanceHarness(url).cleanup(channel);
  });

  it('relay --cdc streams from a slot where wal_level is logical, and falls back to polling elsewhere', async () => {
    const url = 'nats://127.0.0.1:4222';
    const channel = `pgclic-${randomBytes(3).toString('hex')}`;
    const bus = createBus({ url, logger: silentLogger });
    const received: string[] = [];
    await bus.subscribe(channel, { group: 'g' }, async (event) => {
      received.push(event.id);
    });
    const walLevel = (await pool.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
    const outbox = createOutbox(pool, { schema });
    const event = await outbox.transaction((client) => outbox.append(client, channel, { type: 'E', data: {} }));
    const stop = new AbortController();
    const c = capture();
    const run = postgres(
      ['relay', '--url', PG_URL, '--schema', schema, '--broker', url, '--cdc'],
      c.output,
      stop.signal,
    );
    const deadline = Date.now() + 15_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    expect(await run).toBe(0);
    expect(received).toEqual([event.id]);
    expect((await outbox.stats()).unsent).toBe(0);
    const err = c.err.join('\n');
    expect(err).toContain(`CDC relay on slot "wharf_${schema}"`);
    expect(err).toContain(
      walLevel === 'logical'
        ? 'relay mode: cdc'
        : `relay mode: polling (fallback: wal_level is "${walLevel}", not "logical"`,
    );
    expect(err).toContain('relay stopped after publishing 1 events');
    const { conformanceHarness } = await import('@wharf/nats');
    await bus.close();
    await conformanceHarness(url).cleanup(channel);
  });
});

describe('wharf saga --store postgres', () => {
  it('prints the same summary as the memory store, every invariant holding', async () => {
    const run = async (...extra: string[]) => {
      const c = capture();
      const code = await main(
        ['saga', '--broker', 'memory://cli-pg', '--orders', '40', '--seed', '5', '--json', ...extra],
        c.output,
      );
      return { code, summary: JSON.parse(c.out.join('')) };
    };
    const memory = await run();
    const postgres = await run('--store', 'postgres', '--postgres-url', PG_URL);
    expect(memory.code).toBe(0);
    expect(postgres.code).toBe(0);
    const strip = ({ run: _r, timings: _t, ...rest }: Record<string, unknown>) => rest;
    expect(strip(postgres.summary)).toEqual(strip(memory.summary));
    expect(postgres.summary.ok).toBe(true);
  });

  it('refuses an unknown store and --store postgres with --services', async () => {
    const bad = capture();
    expect(await main(['saga', '--broker', 'memory://', '--store', 'disk'], bad.output)).toBe(2);
    expect(bad.err.join('')).toContain('--store must be memory or postgres');
    const split = capture();
    expect(
      await main(
        ['saga', '--broker', 'nats://127.0.0.1:4222', '--store', 'postgres', '--services', 'order'],
        split.output,
      ),
    ).toBe(2);
    expect(split.err.join('')).toContain('cannot be combined with --services');
  });
});
