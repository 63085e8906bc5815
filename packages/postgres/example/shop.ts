// The README's example: an order and its OrderPlaced event committed together, relayed to the
// broker, and handled exactly once by a consumer that records an invoice through the inbox.
// Run it: node --conditions=wharf-source --import tsx packages/postgres/example/shop.ts
import { pathToFileURL } from 'node:url';
import { createBus } from '@wharf/core';
import pg from 'pg';
import { createInbox, createOutbox, migrate } from '../src/index.js';

export async function shop(
  postgresUrl = 'postgres://postgres@127.0.0.1:5432/test',
  schema = 'shop_example',
): Promise<{ invoices: number; duplicates: number }> {
  const pool = new pg.Pool({ connectionString: postgresUrl });
  const bus = createBus({ url: 'memory://' });
  await migrate(pool, { schema });
  await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".orders (id text PRIMARY KEY)`);
  await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".invoices (order_id text PRIMARY KEY)`);

  const outbox = createOutbox(pool, { schema });
  const inbox = createInbox(pool, { schema, afterCommit: () => outbox.nudge() });
  const relay = outbox.startRelay(bus);

  let duplicates = 0;
  let invoiced: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    invoiced = resolve;
  });
  // dedup: false — the inbox decides, in the same transaction as the invoice.
  await bus.subscribe<{ id: string }>('orders', { group: 'billing', dedup: false }, async (event) => {
    const outcome = await inbox.handle(event, 'billing', async (client) => {
      await client.query(`INSERT INTO "${schema}".invoices (order_id) VALUES ($1)`, [event.data?.id]);
    });
    if (outcome.duplicate) duplicates++;
    invoiced();
  });

  // The order row and its event commit together, or neither does.
  const placed = await outbox.transaction(async (client) => {
    await client.query(`INSERT INTO "${schema}".orders (id) VALUES ($1)`, ['o-1']);
    return outbox.append(client, 'orders', { type: 'OrderPlaced', partitionkey: 'o-1', data: { id: 'o-1' } });
  });
  await done;
  // The broker redelivers (a lost ack, say): the inbox recognises the event and nothing runs twice.
  await bus.publish('orders', { ...placed, data: placed.data });
  while (duplicates === 0) await new Promise((resolve) => setTimeout(resolve, 10));

  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".invoices`);
  await relay.stop();
  await bus.close();
  await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
  await pool.end();
  return { invoices: rows[0].n, duplicates };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(await shop());
}
